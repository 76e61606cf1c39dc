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

    /// Below two filterbank frames (560 samples) the extractor's normalisation is undefined: no frames, no crash.
    @Test func audioShorterThanTwoFramesGivesNoFrames() throws {
        let transcriber = try Transcriber(modelDirectory: Fixtures.model("w2v-bert-adapter"))
        #expect(transcriber.configuration.receptiveField == 560)
        #expect(transcriber.emissions(samples: [Float](repeating: 0.1, count: 559)).frames == 0)
        #expect(transcriber.emissions(samples: (0..<560).map { sinf(Float($0) / 7) }).frames == 1)
        #expect(transcriber.transcribe(samples: [Float](repeating: 0, count: 3000)).text.count >= 0)  // silence: no NaN trap
    }
}
