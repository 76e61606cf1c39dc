import Foundation
import Testing

/// Beam search from the command line: --lm, a model directory's language_model/, --no-lm, hotwords, asr decode.
@Suite struct BeamSearchCommandTests {
    let lm = CLI.fixtures.appendingPathComponent("lm/tiny_corpus.lmplz.order3.arpa").path
    let speech = CLI.fixtures.appendingPathComponent("speech_16k.wav").path
    let model = CLI.fixtures.appendingPathComponent("models/base-layout").path

    @Test func transcribeWithAnLMReportsItAndPrintsATranscript() throws {
        let result = try CLI.run(["transcribe", speech, "--model", model, "--lm", lm, "--beam", "8"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("language model: \(lm) (1-grams 856, 2-grams 2273, 3-grams 2539"), "\(result.stderr)")
        #expect(!result.stdout.isEmpty)
    }

    @Test func modelDirectoryLanguageModelIsPickedUpUnlessNoLM() throws {
        let (directory, lmDirectory) = try modelWithLanguageModelDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try FileManager.default.copyItem(at: URL(fileURLWithPath: lm), to: lmDirectory.appendingPathComponent("lm.arpa"))
        let with = try CLI.run(["transcribe", speech, "--model", directory.path])
        #expect(with.status == 0, "\(with.stderr)")
        #expect(with.stderr.contains("language model: \(lmDirectory.path)"), "\(with.stderr)")
        let without = try CLI.run(["transcribe", speech, "--model", directory.path, "--no-lm"])
        #expect(without.status == 0)
        #expect(!without.stderr.contains("language model"))
        let greedy = try CLI.run(["transcribe", speech, "--model", model])
        #expect(without.stdout == greedy.stdout, "--no-lm decodes greedily")
    }

    /// A temporary copy of the test model with an empty `language_model/` in it (the caller removes `directory`).
    func modelWithLanguageModelDirectory() throws -> (directory: URL, lmDirectory: URL) {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("asr-lmdir-\(UUID().uuidString)")
        try FileManager.default.copyItem(at: URL(fileURLWithPath: model), to: directory)
        let lmDirectory = directory.appendingPathComponent("language_model")
        try FileManager.default.createDirectory(at: lmDirectory, withIntermediateDirectories: true)
        return (directory, lmDirectory)
    }

    @Test func decodeMatchesTranscribeOnSavedEmissions() throws {
        let npy = FileManager.default.temporaryDirectory.appendingPathComponent("asr-emissions-\(UUID().uuidString).npy")
        defer { try? FileManager.default.removeItem(at: npy) }
        #expect(try CLI.run(["logits", speech, "--model", model, "-o", npy.path]).status == 0)
        for extra in [[String](), ["--lm", lm], ["--hotword", "THE:5", "--beam", "4"]] {
            let decoded = try CLI.run(["decode", npy.path, "--model", model] + extra)
            let transcribed = try CLI.run(["transcribe", speech, "--model", model] + extra)
            #expect(decoded.status == 0 && transcribed.status == 0, "\(decoded.stderr) \(transcribed.stderr)")
            #expect(decoded.stdout.trimmingCharacters(in: .newlines) == transcribed.stdout.trimmingCharacters(in: .newlines), "\(extra)")
        }
    }

    @Test func badDecoderInputsAreClearErrors() throws {
        #expect(try CLI.run(["transcribe", speech, "--beam", "0"]).status == 2)
        #expect(try CLI.run(["transcribe", speech, "--lm", lm, "--no-lm"]).status == 2)
        #expect(try CLI.run(["transcribe", speech, "--hotword", ":4"]).status == 2)
        let missing = try CLI.run(["transcribe", speech, "--lm", "/nonexistent/lm.arpa"])
        #expect(missing.status == 1)
        #expect(missing.stderr.contains("/nonexistent/lm.arpa") && missing.stderr.contains("no such file"), "\(missing.stderr)")
        let notARPA = try CLI.run(["transcribe", speech, "--lm", speech])
        #expect(notARPA.status == 1)
        #expect(notARPA.stderr.contains("not an ARPA file"), "\(notARPA.stderr)")
    }
}

extension BeamSearchCommandTests {
    @Test func aBundledKenLMBinaryIsSkippedWithAWarning() throws {
        let (directory, lmDirectory) = try modelWithLanguageModelDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        try Data("mmap lm http://kheafield.com/code format version 5\n\0\0\0".utf8).write(to: lmDirectory.appendingPathComponent("lm.binary"))
        let result = try CLI.run(["transcribe", speech, "--model", directory.path])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stderr.contains("warning: not using the model's language model") && result.stderr.contains("KenLM binary"), "\(result.stderr)")
        let greedy = try CLI.run(["transcribe", speech, "--model", model])
        #expect(result.stdout == greedy.stdout)
        // Asked for explicitly, the same file is an error.
        let explicit = try CLI.run(["transcribe", speech, "--model", model, "--lm", lmDirectory.appendingPathComponent("lm.binary").path])
        #expect(explicit.status == 1)
        #expect(explicit.stderr.contains("KenLM binary"), "\(explicit.stderr)")
    }
}
