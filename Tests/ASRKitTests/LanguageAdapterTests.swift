import Foundation
import Testing
@testable import ASRKit

/// MMS checkpoints: one body, a per-language attention adapter in each layer and CTC head, nested vocab.json.
/// References from tools/fixtures/make_model_fixtures.py: transformers' `from_pretrained(dir, target_lang=L)`.
@Suite struct LanguageAdapterTests {
    static let model = Fixtures.model("mms-layout")
    static let languages = ["deu", "eng", "fra"]

    static func maxDelta(_ emissions: Emissions, _ language: String) throws -> Float {
        let reference = try Fixtures.npy(model.appendingPathComponent("logits.\(language).npy"))
        #expect([emissions.frames, emissions.vocabularySize] == reference.shape)
        let ours = CTCGreedyDecoder.bestPath(logits: emissions.logits, frames: emissions.frames, vocabularySize: emissions.vocabularySize)
        let theirs = CTCGreedyDecoder.bestPath(logits: reference.values, frames: reference.shape[0], vocabularySize: reference.shape[1])
        #expect(ours == theirs, "\(language): argmax path differs")
        return zip(emissions.logits, reference.values).map { abs($0 - $1) }.max() ?? .infinity
    }

    @Test(arguments: languages)
    func eachLanguageMatchesTransformersLoadAdapter(language: String) throws {
        let transcriber = try Transcriber(modelDirectory: Self.model, language: language)
        #expect(transcriber.language == language)
        #expect(transcriber.vocabulary.count == transcriber.configuration.vocabSize)
        let samples = try transcriber.loadAudio(file: Fixtures.speech)
        let delta = try Self.maxDelta(transcriber.emissions(samples: samples), language)
        print("parity mms-layout \(language): max |Δ| \(delta)")
        #expect(delta <= 1e-4)
        let expected = try String(contentsOf: Self.model.appendingPathComponent("transcript.\(language).txt"), encoding: .utf8)
            .trimmingCharacters(in: .newlines)
        #expect(try transcriber.transcribe(file: Fixtures.speech).text == expected)
    }

    @Test func noLanguageRunsTheStoredAdaptersWithTheTokenizersTargetLanguage() throws {
        let transcriber = try Transcriber(modelDirectory: Self.model)
        #expect(transcriber.language == "eng")
        #expect(transcriber.languages == Self.languages)
    }

    /// Switching shares the body: the result equals a fresh load in that language, and the weights of the layers are
    /// the same buffers.
    @Test func switchingLanguageReloadsOnlyTheAdaptersAndHead() throws {
        let english = try Transcriber(modelDirectory: Self.model)
        let samples = try english.loadAudio(file: Fixtures.speech)
        for language in Self.languages {
            let switched = try english.switching(to: language)
            #expect(switched.language == language)
            #expect(try Self.maxDelta(switched.emissions(samples: samples), language) <= 1e-4)
            let fresh = try Transcriber(modelDirectory: Self.model, language: language)
            #expect(switched.emissions(samples: samples).logits == fresh.emissions(samples: samples).logits)
            #expect(switched.model.layers[0].q.weight.sharesStorage(with: english.model.layers[0].q.weight))
        }
        // And back again.
        let back = try english.switching(to: "fra").switching(to: "eng")
        #expect(back.emissions(samples: samples).logits == english.emissions(samples: samples).logits)
    }

    @Test func anUnknownLanguageListsTheAvailableOnes() throws {
        #expect(throws: ASRError.invalidLanguage(language: "xyz", reason: "not in this checkpoint", available: Self.languages)) {
            try Transcriber(modelDirectory: Self.model, language: "xyz")
        }
        let error = ASRError.invalidLanguage(language: "xyz", reason: "not in this checkpoint", available: Self.languages)
        #expect(error.description == "language 'xyz': not in this checkpoint (available: deu, eng, fra)")
    }

    @Test func aLanguageOnAModelWithOneVocabularyIsRefused() throws {
        #expect(throws: ASRError.self) { try Transcriber(modelDirectory: Fixtures.model("base-layout"), language: "eng") }
        let base = try Transcriber(modelDirectory: Fixtures.model("base-layout"))
        #expect(base.language == nil && base.languages.isEmpty)
        #expect(throws: ASRError.self) { try base.switching(to: "fra") }
    }

    @Test func aVocabularyWithoutItsAdapterFileIsNamed() throws {
        let copy = try Fixtures.copyModel("mms-layout")
        defer { try? FileManager.default.removeItem(at: copy.deletingLastPathComponent()) }
        try FileManager.default.removeItem(at: copy.appendingPathComponent("adapter.deu.safetensors"))
        let transcriber = try Transcriber(modelDirectory: copy)
        #expect(transcriber.languages == ["eng", "fra"])
        #expect(throws: ASRError.invalidLanguage(language: "deu", reason: "the checkpoint has no adapter.deu.safetensors",
                                                 available: ["eng", "fra"])) {
            try Transcriber(modelDirectory: copy, language: "deu")
        }
    }

    @Test func anAdapterFileWithForeignTensorsIsRefused() throws {
        let copy = try Fixtures.copyModel("mms-layout")
        defer { try? FileManager.default.removeItem(at: copy.deletingLastPathComponent()) }
        let file = copy.appendingPathComponent("adapter.fra.safetensors")
        try SafeTensorsWriter.rewrite(file) {
            $0.append(.init(name: "wav2vec2.encoder.layers.0.attention.q_proj.weight", shape: [1], bytes: [0, 0, 0, 0]))
        }
        #expect(throws: ASRError.invalidCheckpoint(
            file: "adapter.fra.safetensors",
            reason: "tensor 'wav2vec2.encoder.layers.0.attention.q_proj.weight' is not an adapter or head tensor of this model")) {
            try Transcriber(modelDirectory: copy, language: "fra")
        }
    }
}

extension WeightMatrix {
    /// Whether both hold the very same buffer (shared, not copied).
    func sharesStorage(with other: WeightMatrix) -> Bool {
        switch (storage, other.storage) {
        case (.fp32(let a), .fp32(let b)): a === b
        case (.bf16(let a), .bf16(let b)): a === b
        case (.packed(let a, _), .packed(let b, _)): a === b
        case (.int8(let a, _, _), .int8(let b, _, _)): a === b
        case (.int8Packed(let a, _, _), .int8Packed(let b, _, _)): a === b
        default: false
        }
    }
}
