import Foundation
import Testing
@testable import ASRKit

@Suite struct OutputFormatTests {
    static func word(_ text: String, _ start: Double, _ end: Double) -> Word {
        Word(text: text, start: start, end: end, confidence: 0.5)
    }

    @Test func cuesRespectLengthDurationAndPauses() {
        let words = (0..<20).map { Self.word("WORD\($0)", Double($0) * 0.5, Double($0) * 0.5 + 0.4) }
        let cues = OutputFormat.cues(words)
        #expect(cues.allSatisfy { $0.text.count <= 42 })
        #expect(cues.allSatisfy { $0.end - $0.start <= 7 })
        #expect(cues.map(\.text).joined(separator: " ") == words.map(\.text).joined(separator: " "))
        // A pause longer than a second starts a new cue.
        let paused = [Self.word("A", 0, 0.2), Self.word("B", 0.3, 0.5), Self.word("C", 2.0, 2.2)]
        #expect(OutputFormat.cues(paused).map(\.text) == ["A B", "C"])
        // Seven seconds at most.
        let slow = (0..<6).map { Self.word("W", Double($0) * 1.5, Double($0) * 1.5 + 0.9) }
        #expect(OutputFormat.cues(slow).map(\.text) == ["W W W W W", "W"])
    }

    /// Issue 19: an 80 ms cue ("BI" at 20.06-20.14) cannot be read: it is extended into the pause after it, or
    /// merged with the next cue when that follows at once.
    @Test func shortCuesAreExtendedOrMerged() {
        let lone = [Self.word("HELLO", 18.0, 18.9), Self.word("BI", 20.06, 20.14), Self.word("THERE", 22.0, 22.6)]
        let extended = OutputFormat.cues(lone)
        #expect(extended.map(\.text) == ["HELLO", "BI", "THERE"])
        #expect(extended[1].start == 20.06 && abs(extended[1].end - 20.56) < 1e-9)
        #expect(extended.allSatisfy { $0.end - $0.start >= 0.5 - 1e-9 })
        // Too close to the next cue to be extended (a new cue starts there because the first is full): merged.
        let crowded = [Self.word(String(repeating: "A", count: 40), 0, 2), Self.word("BI", 2.0, 2.08),
                       Self.word(String(repeating: "C", count: 40), 2.1, 4)]
        let merged = OutputFormat.cues(crowded)
        #expect(merged.allSatisfy { $0.end - $0.start >= 0.5 - 1e-9 }, "\(merged)")
        #expect(merged.map(\.text).joined(separator: " ") == crowded.map(\.text).joined(separator: " "))
        // Cues never overlap.
        for (a, b) in zip(merged, merged.dropFirst()) { #expect(a.end <= b.start) }
    }

    @Test func subtitleTimestamps() {
        #expect(OutputFormat.timestamp(3723.456, vtt: false) == "01:02:03,456")
        #expect(OutputFormat.timestamp(0.02, vtt: true) == "00:00:00.020")
    }

    @Test func rendersEveryFormat() {
        let t = Transcription(
            text: "HI THERE", duration: 1.5,
            words: [Self.word("HI", 0.1, 0.3), Self.word("THERE", 0.5, 0.9)],
            characters: [])
        #expect(OutputFormat.txt.render(t) == "HI THERE\n")
        #expect(OutputFormat.srt.render(t) == "1\n00:00:00,100 --> 00:00:00,900\nHI THERE\n\n")
        #expect(OutputFormat.vtt.render(t) == "WEBVTT\n\n00:00:00.100 --> 00:00:00.900\nHI THERE\n\n")
        #expect(OutputFormat.tsv.render(t) == "start\tend\tword\tconfidence\n100\t300\tHI\t0.5\n500\t900\tTHERE\t0.5\n")
        let json = try? JSONSerialization.jsonObject(with: Data(OutputFormat.json.render(t, source: "a.wav").utf8)) as? [String: Any]
        #expect(json?["text"] as? String == "HI THERE")
        #expect(json?["file"] as? String == "a.wav")
        #expect((json?["words"] as? [[String: Any]])?.count == 2)
    }
}

@Suite struct TimestampTests {
    @Test func wordsSpanTheirCharactersAndStayInsideTheAudio() throws {
        let vocabulary = Vocabulary(tokens: ["<pad>", "|", "A", "B"], blankID: 0)
        // frames: _ A A | B B _   (7 frames at 20 ms)
        var logits = [Float](repeating: 0, count: 7 * 4)
        for (t, id) in [0, 2, 2, 1, 3, 3, 0].enumerated() { logits[t * 4 + id] = 10 }
        let decoded = CTCGreedyDecoder.decode(logits: logits, frames: 7, vocabulary: vocabulary)
        let (characters, words) = Alignment.align(
            decoding: decoded, logits: logits, vocabularySize: 4, frameDuration: 0.02, duration: 0.11, wordDelimiter: "|")
        #expect(words.map(\.text) == ["A", "B"])
        #expect(abs(words[0].start - 0.02) < 1e-12 && abs(words[0].end - 0.06) < 1e-12)
        // B's frames end at 0.12 s, past the 0.11 s of audio: clamped.
        #expect(abs(words[1].start - 0.08) < 1e-12 && words[1].end == 0.11)
        let p = Foundation.exp(10.0) / (Foundation.exp(10.0) + 3)
        #expect(abs(words[0].confidence - p) < 1e-9)
        #expect(characters.map(\.text) == ["A", " ", "B"])
    }

    @Test func frameDurationComesFromTheConvStrides() throws {
        let transcriber = try Transcriber(modelDirectory: Fixtures.model("base-layout"))
        #expect(transcriber.frameDuration == 0.02)
    }
}

@Suite struct ChunkingTests {
    /// Chunked emissions have exactly as many frames as one pass, whatever the length.
    @Test(arguments: [3 * 16000 - 1, 3 * 16000, 3 * 16000 + 1, 7 * 16000 + 123, 10 * 16000, 500])
    func chunkedFrameCountEqualsOnePass(samples: Int) throws {
        let transcriber = try Transcriber(modelDirectory: Fixtures.model("base-layout"))
        let audio = (0..<samples).map { Float(sin(Double($0) * 0.01)) * 0.3 }
        let onePass = transcriber.emissions(samples: audio)
        var blocks = stride(from: 0, to: audio.count, by: 4000).map { Array(audio[$0..<min(audio.count, $0 + 4000)]) }.makeIterator()
        let chunked = try transcriber.emissions(chunking: ChunkingOptions(chunkSeconds: 3, strideSeconds: 0.5)) { blocks.next() }
        #expect(chunked.samples == samples)
        #expect(chunked.emissions.frames == onePass.frames)
    }

    /// Inside one chunk nothing changes: audio shorter than a chunk gives the one-pass logits exactly.
    @Test func shortAudioIsOnePass() throws {
        let transcriber = try Transcriber(modelDirectory: Fixtures.model("base-layout"))
        let audio = try transcriber.loadAudio(file: Fixtures.speech)
        let chunked = transcriber.transcribe(samples: audio)
        let onePass = transcriber.decode(transcriber.emissions(samples: audio), duration: Double(audio.count) / 16000)
        #expect(chunked == onePass)
    }

    /// Away from the chunk edges, the kept logits are those of the chunk's own pass: check a middle chunk.
    @Test func keptFramesComeFromTheRightPlace() throws {
        let transcriber = try Transcriber(modelDirectory: Fixtures.model("base-layout"))
        let audio = (0..<(9 * 16000)).map { Float(sin(Double($0) * 0.003) * sin(Double($0) * 0.05)) }
        var once = false
        let chunked = try transcriber.emissions(chunking: ChunkingOptions(chunkSeconds: 4, strideSeconds: 1)) {
            defer { once = true }
            return once ? nil : audio
        }.emissions
        // Second chunk: samples [2 s, 6 s); its kept frames are global frames [150, 250).
        let second = transcriber.emissions(samples: Array(audio[(2 * 16000)..<(6 * 16000)]))
        let v = transcriber.configuration.vocabSize
        let kept = Array(chunked.logits[(150 * v)..<(250 * v)])
        let fromChunk = Array(second.logits[(50 * v)..<(150 * v)])
        // Equal up to rounding: the vectorised kernels may sum in another order when a buffer lands at another
        // alignment (seen once in a full run: bit-level differences); a frame from the wrong place differs by O(1).
        let delta = zip(kept, fromChunk).map { abs($0 - $1) }.max() ?? .infinity
        #expect(kept.count == fromChunk.count && delta <= 1e-4, "max |Δ| \(delta)")
    }
}

@Suite struct AtomicFileTests {
    @Test func writesAndCleansUpAfterADeadWriter() throws {
        let dir = try Fixtures.temporaryDirectory()
        let target = dir.appendingPathComponent("out.txt")
        // A partial file from a writer that no longer exists (PID 2^22 + 1 is above Linux's default pid_max range in use).
        let stale = dir.appendingPathComponent(".out.txt.4194305" + AtomicFile.temporarySuffix)
        try Data("half".utf8).write(to: stale)
        AtomicFile.removeStalePartials(for: target)
        #expect(!FileManager.default.fileExists(atPath: stale.path))
        try AtomicFile.write(Data("complete".utf8), to: target)
        #expect(try String(contentsOf: target, encoding: .utf8) == "complete")
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["out.txt"])
    }

    @Test func unwritableDirectoryIsAClearError() throws {
        let target = URL(fileURLWithPath: "/nonexistent-dir/out.txt")
        #expect(throws: ASRError.self) { try AtomicFile.write(Data("x".utf8), to: target) }
    }
}

/// Issue 19, item 3: chunking settings are validated by the library, so no caller can make the chunked path run
/// (nearly) forever or overflow.
@Suite struct ChunkingOptionsTests {
    @Test func invalidSettingsThrowATypedError() {
        for (chunk, stride) in [(5.0, 5.0), (30, -1), (30, 0), (.nan, 5), (30, .infinity), (0.5, 0.1), (1e300, 5), (-30, 5), (10, 4.6)] {
            #expect(throws: ASRError.self, "chunk \(chunk) s, stride \(stride) s") {
                try ChunkingOptions(chunkSeconds: chunk, strideSeconds: stride)
            }
        }
        do {
            _ = try ChunkingOptions(chunkSeconds: 5, strideSeconds: 5)
        } catch let error as ASRError {
            guard case .invalidChunking = error else { Issue.record("got \(error)"); return }
            #expect("\(error)".contains("stride"))
        } catch { Issue.record("got \(error)") }
    }

    @Test func validSettingsAreKept() throws {
        #expect(ChunkingOptions.default.chunkSeconds == 30 && ChunkingOptions.default.strideSeconds == 5)
        let options = try ChunkingOptions(chunkSeconds: 3, strideSeconds: 1)
        #expect(options.chunkSeconds == 3 && options.strideSeconds == 1)
        #expect(throws: Never.self) { try ChunkingOptions(chunkSeconds: 30, strideSeconds: 14.5) }
    }
}
