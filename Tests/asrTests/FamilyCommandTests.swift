import ASRKit
import Foundation
import Testing

/// Issue 23 from the command line: every family through `asr logits`/`info`, and MMS languages (`--language`).
@Suite struct FamilyCommandTests {
    static let mms = CLI.fixtures.appendingPathComponent("models/mms-layout")
    static let speech = CLI.fixtures.appendingPathComponent("speech_16k.wav").path

    static func logits(_ model: URL, _ extra: [String] = []) throws -> (values: [Float], shape: [Int]) {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let output = dir.appendingPathComponent("logits.npy")
        let result = try Runner.run(["logits", speech, "--model", model.path, "-o", output.path] + extra, limit: 60)
        #expect(result.status == 0, "\(result.stderr)")
        return try NPY.decode(Data(contentsOf: output))
    }

    static func maxDelta(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? .infinity }

    @Test(arguments: ["data2vec-audio-layout", "unispeech-sat-layout", "unispeech-sat-large-layout", "mms-layout",
                      "w2v-bert-layout", "w2v-bert-adapter"])
    func logitsOfEachFamilyMatchTransformers(name: String) throws {
        let model = CLI.fixtures.appendingPathComponent("models/\(name)")
        let ours = try Self.logits(model)
        let reference = try NPY.decode(Data(contentsOf: model.appendingPathComponent("logits.npy")))
        #expect(ours.shape == reference.shape)
        #expect(Self.maxDelta(ours.values, reference.values) <= 1e-4)
    }

    @Test(arguments: ["deu", "eng", "fra"])
    func languageChoosesTheAdapterHeadAndVocabulary(language: String) throws {
        let ours = try Self.logits(Self.mms, ["--language", language])
        let reference = try NPY.decode(Data(contentsOf: Self.mms.appendingPathComponent("logits.\(language).npy")))
        #expect(ours.shape == reference.shape)
        #expect(Self.maxDelta(ours.values, reference.values) <= 1e-4)

        let text = try Runner.run(["transcribe", Self.speech, "--model", Self.mms.path, "--language", language], limit: 60)
        #expect(text.status == 0, "\(text.stderr)")
        let expected = try String(contentsOf: Self.mms.appendingPathComponent("transcript.\(language).txt"), encoding: .utf8)
        #expect(text.output == expected)
    }

    @Test func infoListsTheLanguagesAndSaysWhichRuns() throws {
        let result = try Runner.run(["info", "--model", Self.mms.path], limit: 60)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.output.contains("MMS language adapters (width 8)"), "\(result.output)")
        #expect(result.output.contains("languages: 3 with adapters (deu eng fra); running eng (the stored adapters, tokenizer target_lang)"),
                "\(result.output)")
        let french = try Runner.run(["info", "--model", Self.mms.path, "--language", "fra"], limit: 60)
        #expect(french.output.contains("running fra\n") && french.output.contains("vocabulary: 44 tokens"), "\(french.output)")
        let data2vec = try Runner.run(["info", "--model", CLI.fixtures.appendingPathComponent("models/data2vec-audio-layout").path], limit: 60)
        #expect(data2vec.output.contains("architecture: Data2VecAudioForCTC (data2vec-audio), post-LN encoder, layer-norm conv front end"),
                "\(data2vec.output)")
    }

    @Test func anUnknownOrMisplacedLanguageIsAClearError() throws {
        let unknown = try Runner.run(["transcribe", Self.speech, "--model", Self.mms.path, "--language", "xyz"], limit: 60)
        #expect(unknown.status == 1)
        #expect(unknown.stderr.contains("language 'xyz': not in this checkpoint (available: deu, eng, fra)"), "\(unknown.stderr)")
        let base = CLI.fixtures.appendingPathComponent("models/base-layout").path
        let single = try Runner.run(["transcribe", Self.speech, "--model", base, "--language", "fra"], limit: 60)
        #expect(single.status == 1)
        #expect(single.stderr.contains("language 'fra': this model has one vocabulary"), "\(single.stderr)")
        let builtin = try Runner.run(["transcribe", Self.speech, "--language", "fra"], limit: 60)
        #expect(builtin.status == 1 && builtin.stderr.contains("built-in model has one vocabulary"), "\(builtin.stderr)")
    }

    /// A quantized MMS model keeps its languages: the adapter files come along and still switch.
    @Test func quantizedMMSKeepsItsLanguages() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let output = dir.appendingPathComponent("mms-int8")
        let result = try Runner.run(["quantize", Self.mms.path, output.path, "--precision", "int8"], limit: 120)
        #expect(result.status == 0, "\(result.stderr)")
        for language in ["deu", "eng", "fra"] {
            #expect(FileManager.default.fileExists(atPath: output.appendingPathComponent("adapter.\(language).safetensors").path))
        }
        let ours = try Self.logits(output, ["--language", "deu"])
        let reference = try NPY.decode(Data(contentsOf: Self.mms.appendingPathComponent("logits.deu.npy")))
        #expect(ours.shape == reference.shape)
        // int8 body: near, not equal (the bounds of ReducedPrecisionTests apply; here only that German ran).
        let scale = reference.values.map { abs($0) }.max() ?? 1
        #expect(Self.maxDelta(ours.values, reference.values) <= 0.25 * scale)
    }
}
