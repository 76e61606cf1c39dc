import Foundation
import Testing
@testable import ASRKit

/// Issue 24, the aligner's core: CTCViterbi against torchaudio's own paths, the length error, and ForcedAligner's
/// promise that every word of the transcript comes back, in order and in its own spelling.
@Suite struct ForcedAlignmentTests {
    struct Golden: Decodable {
        struct Case: Decodable {
            let name: String
            let frames: Int
            let classes: Int
            let blank: Int
            let targets: [Int]
            let log_probs: [Float]
            let path: [Int]
        }
        let generator: String
        let cases: [Case]
    }

    /// Paths torchaudio 2.8's `forced_align` gave (tools/align/make_goldens.py): random emissions, repeated tokens,
    /// transcripts that fill every frame, and emissions rounded so that many scores tie.
    @Test func viterbiEqualsTorchaudiosForcedAlign() throws {
        let data = try Data(contentsOf: Fixtures.root.appendingPathComponent("align/viterbi_golden.json"))
        let golden = try JSONDecoder().decode(Golden.self, from: data)
        #expect(golden.generator.hasPrefix("torchaudio 2.8"))
        #expect(golden.cases.count >= 20)
        for c in golden.cases {
            let path = try CTCViterbi.align(logProbabilities: c.log_probs, frames: c.frames, classes: c.classes,
                                            targets: c.targets, blank: c.blank)
            #expect(path == c.path, "\(c.name)")
            // The path spells the targets: collapse repeats, drop blanks.
            let states = try CTCViterbi.states(logProbabilities: c.log_probs, frames: c.frames, classes: c.classes,
                                               targets: c.targets, blank: c.blank)
            var spelled: [Int] = []
            var previous = -1
            for (label, state) in zip(path, states) {
                if state >= 0 && state != previous { spelled.append(label) }
                previous = state
            }
            #expect(spelled == c.targets, "\(c.name)")
        }
    }

    @Test func aTranscriptLongerThanTheAudioIsAnErrorInNumbers() throws {
        let logProbs = [Float](repeating: -1.0986123, count: 4 * 3)
        #expect(throws: ASRError.transcriptTooLong(frames: 4, tokens: 4, repeats: 1, frameDuration: nil)) {
            try CTCViterbi.align(logProbabilities: logProbs, frames: 4, classes: 3, targets: [1, 1, 2, 1], blank: 0)
        }
        // Exactly enough frames (no room for an extra blank) is fine.
        let tight = try CTCViterbi.align(logProbabilities: logProbs + [Float](repeating: -1.0986123, count: 3),
                                         frames: 5, classes: 3, targets: [1, 1, 2, 1], blank: 0)
        #expect(tight == [1, 0, 1, 2, 1])
        let message = "\(ASRError.transcriptTooLong(frames: 100, tokens: 120, repeats: 5, frameDuration: 0.02))"
        #expect(message.contains("2.00 s of audio") && message.contains("120 characters") && message.contains("at least 125"), "\(message)")
    }

    static let builtin = Fixtures.root.deletingLastPathComponent().appendingPathComponent("Sources/CBuiltinModel/model")

    @Test func everyWordComesBackInItsOwnSpelling() throws {
        let transcriber = try Transcriber(modelDirectory: Self.builtin)
        let samples = try transcriber.loadAudio(file: Fixtures.root.appendingPathComponent("audio/builtin/01.wav"))
        // "SET A TIMER FOR SEVEN MINUTES", written as a person would: case, punctuation, a digit, an accent.
        let transcript = "Set a timer — for 7 minutés!"
        let alignment = try transcriber.align(samples, transcript: transcript)
        #expect(alignment.words.map(\.text) == ["Set", "a", "timer", "—", "for", "7", "minutés!"])
        // "7" is spelled out (SEVEN: the vocabulary is English letters), so it is aligned by the model's own tokens.
        #expect(alignment.words.map(\.aligned) == [true, true, true, false, true, true, true])
        // Times are in order and within the audio; the dash (punctuation only) sits at a boundary, zero length.
        for (a, b) in zip(alignment.words, alignment.words.dropFirst()) { #expect(a.end <= b.start + 1e-9, "\(a) \(b)") }
        #expect(alignment.words.allSatisfy { $0.start >= 0 && $0.end <= alignment.duration && $0.start <= $0.end })
        let dash = alignment.words[3]
        #expect(dash.start == dash.end && dash.start == alignment.words[2].end)
        // "7" gets the frames of S-E-V-E-N, one character of output; "é" is one wildcard inside the word.
        #expect(alignment.words[5].end > alignment.words[5].start)
        let seven = try #require(alignment.characters.first { $0.text == "7" })
        #expect(seven.start == alignment.words[5].start && seven.end == alignment.words[5].end)
        #expect(alignment.characters.contains { $0.text == "7" } && alignment.characters.contains { $0.text == "é" })
        // Characters: the spoken ones in the transcript's spelling, "!" not aligned, word boundaries as spaces.
        #expect(alignment.characters.map(\.text).joined() == "Set a timer for 7 minutés")
    }

    @Test func alignedWordsMatchTheModelsOwnTranscript() throws {
        // Where the model transcribes the sentence right, aligning that sentence lands each word where greedy
        // decoding put it (within a frame at each edge: the two paths may split a blank run differently).
        let transcriber = try Transcriber(modelDirectory: Self.builtin)
        let samples = try transcriber.loadAudio(file: Fixtures.root.appendingPathComponent("audio/builtin/01.wav"))
        let decoded = transcriber.transcribe(samples: samples)
        #expect(decoded.text == "SET A TIMER FOR SEVEN MINUTES")
        let aligned = try transcriber.align(samples, transcript: decoded.text)
        #expect(aligned.words.count == decoded.words.count)
        for (a, d) in zip(aligned.words, decoded.words) {
            #expect(a.text == d.text)
            #expect(abs(a.start - d.start) <= 0.021 && abs(a.end - d.end) <= 0.021, "\(a) vs \(d)")
        }
    }

    /// A word of the transcript that is not in the audio still gets times (the path must place it) but is flagged;
    /// the words that are spoken are not.
    @Test func aWordThatIsNotSpokenIsFlaggedLowConfidence() throws {
        let transcriber = try Transcriber(modelDirectory: Self.builtin)
        let samples = try transcriber.loadAudio(file: Fixtures.root.appendingPathComponent("audio/builtin/01.wav"))
        let alignment = try transcriber.align(samples, transcript: "SET A TIMER FOR ELEPHANT SEVEN MINUTES")
        #expect(alignment.words.map(\.text) == ["SET", "A", "TIMER", "FOR", "ELEPHANT", "SEVEN", "MINUTES"])
        let flagged = alignment.words.filter { !$0.confident }.map(\.text)
        print("confidences: \(alignment.words.map { "\($0.text) \(String(format: "%.3f", $0.confidence))" })")
        #expect(flagged == ["ELEPHANT"])
        #expect(alignment.words.allSatisfy { $0.aligned })
        let json = AlignmentFormat.json.render(alignment)
        #expect(json.contains("\"text\": \"ELEPHANT\"") && json.contains("\"confident\": false"))
    }

    @Test func aTranscriptTooLongForItsAudioNamesSecondsAndCharacters() throws {
        let transcriber = try Transcriber(modelDirectory: Self.builtin)
        let samples = [Float](repeating: 0, count: 16_000 / 2)  // half a second: 24 frames
        let long = String(repeating: "HELLO THERE ", count: 10)
        do {
            _ = try transcriber.align(samples, transcript: long)
            Issue.record("a transcript of \(long.count) characters fitted half a second")
        } catch let error as ASRError {
            guard case .transcriptTooLong(let frames, let tokens, _, let frameDuration) = error else {
                Issue.record("\(error)"); return
            }
            #expect(frames == 24 && tokens > 100 && frameDuration == 0.02)
            #expect("\(error)".contains("0.48 s of audio"), "\(error)")
        }
    }

    /// Checkpointing changes memory, not the path: every segment length gives what the full table gives.
    @Test func checkpointedBackPointersGiveTheFullTablesPath() throws {
        let data = try Data(contentsOf: Fixtures.root.appendingPathComponent("align/viterbi_golden.json"))
        let golden = try JSONDecoder().decode(Golden.self, from: data)
        for c in golden.cases {
            let full = try CTCViterbi.states(logProbabilities: c.log_probs, frames: c.frames, classes: c.classes,
                                             targets: c.targets, blank: c.blank, segment: c.frames)
            for segment in [1, 2, 3, 7, 16, c.frames - 1, c.frames + 5] where segment >= 1 {
                let cut = try CTCViterbi.states(logProbabilities: c.log_probs, frames: c.frames, classes: c.classes,
                                                targets: c.targets, blank: c.blank, segment: segment)
                #expect(cut == full, "\(c.name), segments of \(segment)")
            }
        }
        // A long random case: 6,000 frames, 1,500 tokens, default segment (77 frames).
        var generator = SeededGenerator(seed: 7)
        let T = 6000, C = 30
        var logits = [Float](repeating: 0, count: T * C)
        for i in logits.indices { logits[i] = Float.random(in: -4...4, using: &generator) }
        let logProbs = CTCViterbi.logSoftmax(logits, frames: T, classes: C)
        let targets = (0..<1500).map { _ in Int.random(in: 1..<C, using: &generator) }
        let full = try CTCViterbi.states(logProbabilities: logProbs, frames: T, classes: C, targets: targets, blank: 0, segment: T)
        let cut = try CTCViterbi.states(logProbabilities: logProbs, frames: T, classes: C, targets: targets, blank: 0)
        #expect(cut == full)
        #expect(CTCViterbi.memory(frames: T, tokens: 1500) < T * (2 * 1500 + 1) / 4, "a quarter of the full table or less")
        // An hour at 50 frames/s with 50,000 characters: about 0.2 GB, not the full table's 18 GB.
        #expect(CTCViterbi.memory(frames: 180_000, tokens: 50_000) < 300_000_000)
    }

    /// Numbers as a speaker reads them (the spelling benchmarks/align.py --numbers measured), and when they stay
    /// with the wildcard.
    @Test func numbersAreSpokenInEnglishWords() throws {
        #expect(ForcedAligner.englishWords(7) == ["seven"])
        #expect(ForcedAligner.englishWords(280).joined(separator: " ") == "two hundred and eighty")
        #expect(ForcedAligner.englishWords(7005).joined(separator: " ") == "seven thousand and five")
        #expect(ForcedAligner.englishWords(1_200_345).joined(separator: " ") == "one million two hundred thousand three hundred and forty five")
        let letters = Dictionary(uniqueKeysWithValues: "ABCDEFGHIJKLMNOPQRSTUVWXYZ".enumerated().map { (String($1), $0) })
        #expect(ForcedAligner.spokenNumber("42,", ids: letters)?.map { $0.map { String(UnicodeScalar(UInt8(65 + $0))) }.joined() }
                == ["FORTY", "TWO"])
        #expect(ForcedAligner.spokenNumber("1", ids: letters.merging(["1": 30]) { $1 }) == nil)    // the vocabulary writes digits
        #expect(ForcedAligner.spokenNumber("7", ids: ["A": 0]) == nil)                            // cannot write SEVEN
        #expect(ForcedAligner.spokenNumber("5pm", ids: letters) == nil)                           // not a plain number
        #expect(ForcedAligner.spokenNumber("1234567890", ids: letters) == nil)                    // over 9 digits
    }

    @Test func alignmentFormatsKeepTheTranscriptsLinesAndEveryWord() throws {
        let transcriber = try Transcriber(modelDirectory: Self.builtin)
        let samples = try transcriber.loadAudio(file: Fixtures.root.appendingPathComponent("audio/builtin/01.wav"))
        let alignment = try transcriber.align(samples, transcript: "Set a timer\n\nfor 7 minutes.\n")
        let srt = AlignmentFormat.srt.render(alignment)
        #expect(srt.hasPrefix("1\n00:00:00,") && srt.contains("\nSet a timer\n") && srt.contains("2\n") && srt.contains("\nfor 7 minutes.\n"), "\(srt)")
        let cues = AlignmentFormat.lineCues(alignment)
        #expect(cues.count == 2 && cues[0].end <= cues[1].start)
        let json = try JSONSerialization.jsonObject(with: Data(AlignmentFormat.json.render(alignment, source: "a.wav").utf8)) as! [String: Any]
        let words = json["words"] as! [[String: Any]]
        #expect(words.map { $0["text"] as! String } == ["Set", "a", "timer", "for", "7", "minutes."])
        #expect(words.map { $0["aligned"] as! Bool } == [true, true, true, true, true, true])
        #expect(json["file"] as? String == "a.wav" && json["characters"] != nil)
        let grid = AlignmentFormat.textgrid.render(alignment)
        #expect(grid.hasPrefix("File type = \"ooTextFile\"\nObject class = \"TextGrid\""))
        #expect(grid.contains("name = \"words\"") && grid.contains("name = \"chars\"") && grid.contains("text = \"minutes.\""))
        let ctm = AlignmentFormat.ctm.render(alignment, source: "dir/a.wav").split(separator: "\n")
        #expect(ctm.count == 6 && ctm[0].hasPrefix("a 1 "))
        #expect(AlignmentFormat.textgrid.fileExtension == "TextGrid")
    }
}
