import Foundation
import Testing
@testable import ASRKit

/// w2v-BERT's front end against transformers' SeamlessM4TFeatureExtractor, and its padded, masked last frame
/// (tools/fixtures/make_model_fixtures.py wrote the references).
@Suite struct FilterbankTests {
    /// The features alone: (77 + 1 stacked frames, 160) of the fixture speech, 155 filterbank frames.
    @Test func featuresMatchSeamlessM4TFeatureExtractor() throws {
        let transcriber = try Transcriber(modelDirectory: Fixtures.model("w2v-bert-layout"))
        #expect(!transcriber.preprocessor.doNormalize)
        let samples = try transcriber.loadAudio(file: Fixtures.speech)
        let c = transcriber.configuration
        let frames = try #require(c.filterbankFrames(forSamples: samples.count))
        #expect(frames.filterbank == 155 && frames.stacked == 78 && frames.valid == 77)
        let features = Filterbank(bins: 80)(samples, frames: frames.filterbank)
        let reference = try Fixtures.npy(Fixtures.model("w2v-bert-layout").appendingPathComponent("input_features.npy"))
        #expect([features.rows, features.cols] == reference.shape)
        // Every value but the padded half of the last row (the extractor's padding_value, masked in the model).
        let compared = 155 * 80
        let maxDelta = zip(features.storage[..<compared], reference.values[..<compared]).map { abs($0 - $1) }.max() ?? .infinity
        print("filterbank: features \(reference.shape), max |Δ| \(maxDelta)")
        #expect(maxDelta <= 1e-4, "max |Δ| = \(maxDelta)")
    }

    /// An even count of filterbank frames: nothing padded, nothing masked (the fixture audio less 160 samples).
    @Test(arguments: Fixtures.filterbankModelNames)
    func evenFrameCountMatchesTransformers(model name: String) throws {
        let transcriber = try Transcriber(modelDirectory: Fixtures.model(name))
        let samples = try transcriber.loadAudio(file: Fixtures.speech)
        let emissions = transcriber.emissions(samples: Array(samples.dropLast(160)))
        let reference = try Fixtures.npy(Fixtures.model(name).appendingPathComponent("logits.even.npy"))
        #expect([emissions.frames, emissions.vocabularySize] == reference.shape)
        let maxDelta = zip(emissions.logits, reference.values).map { abs($0 - $1) }.max() ?? .infinity
        print("parity \(name), even frames: logits \(reference.shape), max |Δ| \(maxDelta)")
        #expect(maxDelta <= 1e-4, "max |Δ| = \(maxDelta)")
    }

    /// What the engine cannot run exactly is refused at load, naming the field.
    @Test func mismatchedFeatureExtractorsAndPositionsAreRefused() throws {
        let model = try Fixtures.copyModel("w2v-bert-layout")
        defer { try? FileManager.default.removeItem(at: model.deletingLastPathComponent()) }
        let preprocessor = model.appendingPathComponent("preprocessor_config.json")
        let original = try String(contentsOf: preprocessor, encoding: .utf8)
        func expectRefusal(_ field: String) {
            #expect { try Transcriber(modelDirectory: model) } throws: { error in
                guard let error = error as? ASRError else { return false }
                return "\(error)".contains(field)
            }
        }
        try original.replacingOccurrences(of: "\"num_mel_bins\": 80", with: "\"num_mel_bins\": 40")
            .write(to: preprocessor, atomically: true, encoding: .utf8)
        expectRefusal("num_mel_bins")
        try original.replacingOccurrences(of: "\"stride\": 2", with: "\"stride\": 3").write(to: preprocessor, atomically: true, encoding: .utf8)
        expectRefusal("stride")
        try original.replacingOccurrences(of: "SeamlessM4TFeatureExtractor", with: "Wav2Vec2FeatureExtractor")
            .write(to: preprocessor, atomically: true, encoding: .utf8)
        expectRefusal("feature_extractor_type")
        try original.write(to: preprocessor, atomically: true, encoding: .utf8)
        let config = model.appendingPathComponent("config.json")
        let configText = try String(contentsOf: config, encoding: .utf8)
        try configText.replacingOccurrences(of: "\"relative_key\"", with: "\"alibi\"").write(to: config, atomically: true, encoding: .utf8)
        expectRefusal("position_embeddings_type")
        // relative_key is w2v-BERT's; a wav2vec2-conformer config asking for it is refused, not run wrongly.
        var conformer = Wav2Vec2Configuration()
        conformer.modelType = "wav2vec2-conformer"
        conformer.positionEmbeddingsType = "relative_key"
        #expect(throws: ASRError.self) { try conformer.validate() }
    }

    /// Below two filterbank frames (560 samples) the extractor's normalisation is undefined: no frames, no crash.
    @Test func audioShorterThanTwoFramesGivesNoFrames() throws {
        let transcriber = try Transcriber(modelDirectory: Fixtures.model("w2v-bert-adapter"))
        #expect(transcriber.configuration.receptiveField == 560)
        #expect(transcriber.emissions(samples: [Float](repeating: 0.1, count: 559)).frames == 0)
        #expect(transcriber.emissions(samples: (0..<560).map { sinf(Float($0) / 7) }).frames == 1)
        #expect(transcriber.transcribe(samples: [Float](repeating: 0, count: 3000)).text.count >= 0)  // silence: no NaN trap
    }
}

/// One loaded model, several per-run settings (issue 23's "weights apart from per-run state").
@Suite struct SharedModelTests {
    @Test func runningWithOtherSettingsSharesTheWeights() throws {
        let transcriber = try Transcriber(modelDirectory: Fixtures.model("w2v-bert-relative"))
        let single = transcriber.running(with: ExecutionOptions(threads: 1, attention: .blas))
        #expect(single.model === transcriber.model)
        #expect(single.execution.threads == 1 && transcriber.execution.threads == nil)
        let samples = try transcriber.loadAudio(file: Fixtures.speech)
        let a = transcriber.emissions(samples: samples), b = single.emissions(samples: samples)
        #expect(a.frames == b.frames)
        #expect(zip(a.logits, b.logits).map { abs($0 - $1) }.max() ?? 1 <= 1e-4)
    }
}

/// The one timed-transcript model behind every renderer (issue 24): the JSON file is its document, its numbers are
/// rounded once, and an alignment adds its two flags to the same schema.
@Suite struct TimedTranscriptTests {
    @Test func everyRendererWritesTheSameNumbers() throws {
        let t = Transcription(
            text: "HI THERE", duration: 1.23456,
            words: [Word(text: "HI", start: 0.10049, end: 0.30051, confidence: 0.987654),
                    Word(text: "THERE", start: 0.4, end: 0.9, confidence: 0.5)],
            characters: [TimedCharacter(text: "H", start: 0.1, end: 0.12, confidence: 0.9)])
        let timed = TimedTranscript(t, file: "a.wav")
        #expect(OutputFormat.json.render(t, source: "a.wav") == timed.json)
        #expect(timed.duration == 1.235 && timed.words[0].start == 0.1 && timed.words[0].end == 0.301)
        #expect(timed.words[0].confidence == 0.9877 && timed.words[0].aligned == nil)
        #expect(timed.json.contains("\"start\": 0.1, \"end\": 0.301, \"confidence\": 0.9877}"))

        let alignment = ForcedAlignment(
            text: "HI THERE", duration: 1.23456,
            words: [AlignedWord(text: "HI", start: 0.1, end: 0.3, confidence: 0.9, aligned: true),
                    AlignedWord(text: "THERE", start: 0.4, end: 0.9, confidence: 0.01, aligned: true)],
            characters: [])
        let aligned = TimedTranscript(alignment, file: nil)
        #expect(aligned.words.map(\.confident) == [true, false])
        #expect(AlignmentFormat.json.render(alignment) == aligned.json)
        #expect(aligned.json.contains("\"aligned\": true, \"confident\": false}"))
    }
}

@Suite struct VocabularySpellingTests {
    /// What the server asks of a prompt word before boosting it, without building a decoder.
    @Test func canSpellFoldsCaseAndRefusesMissingLetters() throws {
        let vocabulary = try Transcriber(modelDirectory: Fixtures.model("base-layout")).vocabulary
        #expect(vocabulary.canSpell("HELLO") && vocabulary.canSpell("hello world") && vocabulary.canSpell("don't"))
        #expect(!vocabulary.canSpell("café") && !vocabulary.canSpell("5pm") && !vocabulary.canSpell("hello wörld"))
    }
}
