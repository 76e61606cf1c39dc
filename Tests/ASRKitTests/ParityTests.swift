import Foundation
import Testing
@testable import ASRKit

/// Our logits against transformers' Wav2Vec2ForCTC on the seeded fixture checkpoints
/// (tools/fixtures/make_model_fixtures.py wrote the references).
@Suite struct ParityTests {
    @Test(arguments: Fixtures.modelNames)
    func logitsMatchTransformers(model name: String) throws {
        let transcriber = try Transcriber(modelDirectory: Fixtures.model(name))
        let samples = try transcriber.loadAudio(file: Fixtures.speech)
        let emissions = transcriber.emissions(samples: samples)
        let reference = try Fixtures.npy(Fixtures.model(name).appendingPathComponent("logits.npy"))

        #expect([emissions.frames, emissions.vocabularySize] == reference.shape)
        let maxDelta = zip(emissions.logits, reference.values).map { abs($0 - $1) }.max() ?? .infinity
        let maxLogit = reference.values.map { abs($0) }.max() ?? 0
        print("parity \(name): logits \(reference.shape), max |logit| \(maxLogit), max |Δ| \(maxDelta)")
        #expect(maxDelta <= 1e-4, "max |Δ| = \(maxDelta)")

        let ours = CTCGreedyDecoder.bestPath(logits: emissions.logits, frames: emissions.frames, vocabularySize: emissions.vocabularySize)
        let theirs = CTCGreedyDecoder.bestPath(logits: reference.values, frames: reference.shape[0], vocabularySize: reference.shape[1])
        #expect(ours == theirs)
    }

    /// Attention has two implementations (the fused kernel where the CPU has AVX-512, BLAS products elsewhere):
    /// both are held to the same reference, whichever this machine uses by default.
    @Test(arguments: Fixtures.modelNames)
    func bothAttentionPathsMatchTransformers(model name: String) throws {
        let transcriber = try Transcriber(modelDirectory: Fixtures.model(name))
        let samples = try transcriber.loadAudio(file: Fixtures.speech)
        let input = transcriber.preprocessor.doNormalize ? Normalizer.zeroMeanUnitVariance(samples) : samples
        let reference = try Fixtures.npy(Fixtures.model(name).appendingPathComponent("logits.npy"))
        for fused in [true, false] {
            let logits = transcriber.model.logits(for: input, fusedAttention: fused)
            #expect([logits.rows, logits.cols] == reference.shape)
            let maxDelta = zip(logits.storage, reference.values).map { abs($0 - $1) }.max() ?? .infinity
            #expect(maxDelta <= 1e-4, "\(name), fused attention \(fused): max |Δ| = \(maxDelta)")
        }
    }

    @Test(arguments: Fixtures.modelNames)
    func transcriptMatchesTokenizer(model name: String) throws {
        let transcriber = try Transcriber(modelDirectory: Fixtures.model(name))
        let expected = try String(contentsOf: Fixtures.model(name).appendingPathComponent("transcript.txt"), encoding: .utf8)
            .trimmingCharacters(in: .newlines)
        #expect(try transcriber.transcribe(file: Fixtures.speech).text == expected)
    }

    @Test(arguments: Fixtures.modelNames.filter { !Fixtures.filterbankModelNames.contains($0) })
    func normalizerMatchesFeatureExtractor(model name: String) throws {
        let transcriber = try Transcriber(modelDirectory: Fixtures.model(name))
        let samples = try transcriber.loadAudio(file: Fixtures.speech)
        let reference = try Fixtures.npy(Fixtures.model(name).appendingPathComponent("input_values.npy"))
        let normalized = Normalizer.zeroMeanUnitVariance(samples)
        #expect(normalized.count == reference.values.count)
        let maxDelta = zip(normalized, reference.values).map { abs($0 - $1) }.max() ?? .infinity
        #expect(maxDelta <= 1e-6, "max |Δ| = \(maxDelta)")
    }

    @Test func modelVariantsAreWhatTheFixturesClaim() throws {
        let base = try Transcriber(modelDirectory: Fixtures.model("base-layout"))
        #expect(base.configuration.featExtractNorm == .group && !base.configuration.doStableLayerNorm && !base.configuration.convBias)
        #expect(base.configuration.numConvPosEmbeddings % 2 == 0)
        let large = try Transcriber(modelDirectory: Fixtures.model("large-layout"))
        #expect(large.configuration.featExtractNorm == .layer && large.configuration.doStableLayerNorm && large.configuration.convBias)
        #expect(large.configuration.numConvPosEmbeddings % 2 == 1)
        #expect(Set(large.configuration.convDim).count > 1)
        let fp16 = try Transcriber(modelDirectory: Fixtures.model("fp16-community-vocab"))
        #expect(fp16.weightTypes == ["F16"])
        #expect(fp16.vocabulary.blankID != 0)
    }

    @Test func audioShorterThanTheReceptiveFieldGivesNoFrames() throws {
        let transcriber = try Transcriber(modelDirectory: Fixtures.model("base-layout"))
        #expect(transcriber.emissions(samples: [Float](repeating: 0.1, count: 399)).frames == 0)
        #expect(transcriber.transcribe(samples: [Float](repeating: 0.1, count: 399)).text == "")
        #expect(transcriber.emissions(samples: (0..<400).map { Float($0 % 7) }).frames == 1)
        #expect(transcriber.transcribe(samples: []).text == "")
    }

    @Test func frameArithmeticFollowsTheConvStack() {
        let c = Wav2Vec2Configuration()
        #expect(c.samplesPerFrame == 320)
        #expect(c.receptiveField == 400)
        #expect(c.frameCount(forSamples: 16000) == 49)
        #expect(c.frameCount(forSamples: 160000) == 499)
        #expect(c.frameCount(forSamples: 400) == 1)
        #expect(c.frameCount(forSamples: 399) == 0)
    }
}
