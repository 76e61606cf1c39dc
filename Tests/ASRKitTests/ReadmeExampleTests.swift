import Foundation
import Testing
import ASRKit

/// The README's library example, compiled and run here against a fixture model. The code between the markers must
/// stay identical to the README's block (checked below).
@Suite struct ReadmeExampleTests {
    func example(modelDirectory: String, audio: String, files: [URL], lmPath: String) async throws -> [String] {
        var printed: [String] = []
        func print(_ items: Any...) { printed.append(items.map { "\($0)" }.joined(separator: " ")) }
        // README-EXAMPLE-BEGIN
        let transcriber = try Transcriber(modelDirectory: URL(fileURLWithPath: modelDirectory))
        let result = try await transcriber.transcribe(file: URL(fileURLWithPath: audio))
        print(result.text)
        for word in result.words {
            print(word.start, word.end, word.text, word.confidence)
        }

        // Many files: one Result per file, in order; a failing file does not stop the others.
        for (file, outcome) in zip(files, try await transcriber.transcribe(files: files)) {
            switch outcome {
            case .success(let transcription): print(file.lastPathComponent, transcription.text)
            case .failure(let error): print(file.lastPathComponent, "failed:", error)
            }
        }

        // Live audio (a microphone, a socket, a pipe): push buffers as they come, read each segment once it is final.
        let live = try LiveTranscription(transcriber: transcriber, sampleRate: 16_000)
        let samples = try transcriber.loadAudio(file: URL(fileURLWithPath: audio))
        Task {
            for start in stride(from: 0, to: samples.count, by: 1_600) {
                try await live.append(Array(samples[start..<min(start + 1_600, samples.count)]))
            }
            live.finish()
        }
        for try await result in live {
            if case .final(let segment) = result { print("live:", segment.start, segment.end, segment.text) }
        }

        // Errors are ASRError values that name the file, field or tensor at fault.
        do {
            _ = try await transcriber.transcribe(file: URL(fileURLWithPath: "missing.wav"))
        } catch let error as ASRError {
            print("error:", error)
        }
        // Beam search with an n-gram language model (ARPA, plain or gzip) and hotwords.
        var options = BeamSearchOptions()
        options.hotwords = [Hotword("Kubernetes", weight: 8)]
        let (lm, lmOptions) = try DecodingLanguageModel.load(path: lmPath, options: options)
        let decoder = try BeamSearchDecoder(vocabulary: transcriber.vocabulary, languageModel: lm, options: lmOptions)
        print(try await transcriber.transcribe(file: URL(fileURLWithPath: audio), decoder: decoder).text)
        // README-EXAMPLE-END
        return printed
    }

    @Test func exampleRuns() async throws {
        let files = [Fixtures.speech, Fixtures.root.appendingPathComponent("audio/broken_text.wav")]
        let printed = try await example(
            modelDirectory: Fixtures.model("base-layout").path, audio: Fixtures.speech.path, files: files,
            lmPath: Fixtures.root.appendingPathComponent("lm/tiny_corpus.lmplz.order3.arpa").path)
        let expected = try String(contentsOf: Fixtures.model("base-layout").appendingPathComponent("transcript.txt"), encoding: .utf8)
            .trimmingCharacters(in: .newlines)
        #expect(printed.first == expected)
        #expect(printed.contains("speech_16k.wav \(expected)"))
        #expect(printed.contains { $0.hasPrefix("broken_text.wav failed:") })
        // The live segments' texts are the file's transcript; the missing file is an ASRError naming it.
        let live = printed.filter { $0.hasPrefix("live: ") }.map { $0.split(separator: " ", maxSplits: 3).dropFirst(3).joined() }
        #expect(live.joined(separator: " ") == expected)
        #expect(printed.contains { $0.hasPrefix("error: ") && $0.contains("missing.wav") })
        // The last line is the beam-search transcript (printed after the batch lines).
        #expect(printed.count >= 4)
        #expect(printed.last.map { !$0.hasPrefix("broken_text.wav") && !$0.hasPrefix("speech_16k.wav") } == true)
    }

    @Test func readmeShowsThisExample() throws {
        let source = try String(contentsOf: URL(fileURLWithPath: #filePath), encoding: .utf8)
        let readme = try String(contentsOf: Fixtures.root.deletingLastPathComponent().appendingPathComponent("README.md"), encoding: .utf8)
        func block(_ text: String, from begin: String, to end: String) -> [String] {
            guard let a = text.range(of: begin), let b = text.range(of: end, range: a.upperBound..<text.endIndex) else { return [] }
            return text[a.upperBound..<b.lowerBound].split(separator: "\n", omittingEmptySubsequences: false)
                .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        }
        let code = block(source, from: "// README-EXAMPLE-" + "BEGIN", to: "// README-EXAMPLE-" + "END")
        let shown = block(readme, from: "<!-- consumer: ASRKit -->\n```swift", to: "```")
        #expect(!code.isEmpty)
        // The README's block is a whole main.swift: imports and command-line arguments, then exactly these lines.
        #expect(shown.first == "import ASRKit")
        #expect(Array(shown.suffix(code.count)) == code)
    }
}
