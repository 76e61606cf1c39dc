import Foundation
import Testing
@testable import ASRKit

/// bf16 and int8: the kernels against independent references, and whole models against fp32 on every fixture
/// checkpoint (fp32 itself is held to transformers by ParityTests, unchanged).
@Suite struct ReducedPrecisionTests {
    @Test func kernelsMatchIndependentReferences() {
        let failures = ReducedPrecisionCheck.run()
        #expect(failures.isEmpty, "\(failures.joined(separator: "\n"))")
    }

    @Test func precisionIsAPropertyOfTheLoadedModel() throws {
        let fp32 = try Transcriber(modelDirectory: Fixtures.model("base-layout"))
        let int8 = try Transcriber(modelDirectory: Fixtures.model("base-layout"), precision: .int8)
        #expect(fp32.precision == .fp32)
        #expect(int8.precision == .int8)
        let bf16 = try Transcriber(modelDirectory: Fixtures.model("base-layout"), precision: .bf16)
        // Where oneDNN cannot run bf16 the load falls back to fp32 and says so.
        #expect(bf16.precision == (ReducedPrecisionKernels.bf16Available ? .bf16 : .fp32))
        #expect(bf16.warnings.contains { $0.contains("bf16") } == !ReducedPrecisionKernels.bf16Available)
        // Both models loaded side by side give their own results: no process-wide switch.
        let samples = try fp32.loadAudio(file: Fixtures.speech)
        let a = fp32.emissions(samples: samples), b = int8.emissions(samples: samples)
        #expect(a.logits != b.logits)
        #expect(fp32.emissions(samples: samples).logits == a.logits)
    }

    /// The bounds below are what this suite measured on the fixture checkpoints (tiny random models, where near-ties
    /// between classes are common) with some margin (measured: bf16 ≤ 1/78 frames changed, max |Δ| ≤ 0.9 % of the
    /// logit range; int8 ≤ 2/78 and ≤ 1.0 %); tools/precision/accuracy.py sets them beside transformers' own
    /// bf16 autocast and dynamic int8 on the same inputs (README, "Reduced precision").
    static let bounds: [Precision: (argmaxChanged: Double, relativeDelta: Float)] = [
        .bf16: (0.05, 0.02),
        .int8: (0.08, 0.03),
    ]

    /// int8 on a CPU without VNNI (AVX2 only): its kernels need weights within ±63, so they are 7-bit, with twice
    /// the rounding step. Measured on an AMD EPYC without AVX-512 (2026-12-05): argmax changed in ≤ 14/78 frames
    /// (hubert-layout; base-layout 4/78) and max |Δ| ≤ 5.6 % of the logit range (base-layout 3.6 %), about twice the
    /// VNNI path's error; bounded here with some margin.
    static let int8WithoutVNNI: (argmaxChanged: Double, relativeDelta: Float) = (0.25, 0.07)

    @Test(arguments: Fixtures.modelNames, [Precision.bf16, .int8])
    func reducedPrecisionStaysNearFP32(model name: String, precision: Precision) throws {
        let exact = try Transcriber(modelDirectory: Fixtures.model(name))
        let reduced = try Transcriber(modelDirectory: Fixtures.model(name), precision: precision)
        let samples = try exact.loadAudio(file: Fixtures.speech)
        let a = exact.emissions(samples: samples), b = reduced.emissions(samples: samples)
        #expect(a.frames == b.frames && a.vocabularySize == b.vocabularySize)
        let v = a.vocabularySize
        var changed = 0
        for f in 0..<a.frames {
            let rowA = a.logits[(f * v)..<((f + 1) * v)], rowB = b.logits[(f * v)..<((f + 1) * v)]
            if rowA.indices.max(by: { rowA[$0] < rowA[$1] }) != rowB.indices.max(by: { rowB[$0] < rowB[$1] }) { changed += 1 }
        }
        let share = Double(changed) / Double(max(1, a.frames))
        let maxDelta = zip(a.logits, b.logits).map { abs($0 - $1) }.max() ?? 0
        let range = (a.logits.max() ?? 0) - (a.logits.min() ?? 0)
        print("precision \(precision.rawValue) \(name): argmax changed \(changed)/\(a.frames), max |Δ| \(maxDelta) (logit range \(range))")
        // Where the CPU has no bf16 products, bf16 runs as fp32 (with a warning at load): exactly fp32's logits.
        if precision == .bf16 && !ReducedPrecisionKernels.bf16Available {
            #expect(reduced.precision == .fp32 && maxDelta == 0, "\(name): the fp32 fallback must be fp32")
            return
        }
        let bound = precision == .int8 && !ReducedPrecisionKernels.int8VNNI ? Self.int8WithoutVNNI : Self.bounds[precision]!
        #expect(share <= bound.argmaxChanged, "\(name) \(precision): \(changed)/\(a.frames) frames changed argmax")
        #expect(maxDelta <= bound.relativeDelta * range, "\(name) \(precision): max |Δ| \(maxDelta), logit range \(range)")
        #expect(maxDelta > 0, "\(precision) must actually change the products")
    }
}

/// What `asr bench` divides by the measured peaks (issue 26): each stage's operations, split by the format its
/// products run in.
@Suite struct StageOperationsTests {
    @Test(arguments: Fixtures.modelNames)
    func stagesAddUpToTheWholePassAndNameTheirFormats(model name: String) throws {
        let data = try Data(contentsOf: Fixtures.model(name).appendingPathComponent("config.json"))
        let c = try Wav2Vec2Configuration.decode(data)
        let samples = 3 * 16000
        for precision in Precision.allCases {
            let stages = c.stageFlops(forSamples: samples, precision: precision)
            let whole = c.flops(forSamples: samples)
            #expect(whole > 0 && abs(stages.total - whole) <= 1e-9 * whole, "\(name) \(precision)")
            #expect(stages.stages.count == StageProfile().stages.count)
            let formats = Set(stages.stages.flatMap(\.keys))
            if precision == .fp32 { #expect(formats == [.fp32]) } else { #expect(formats.contains(precision)) }
            // The feed-forward products run in the precision asked for, the CTC head in fp32, attention scores in
            // fp32 or (reduced precision, bf16 dot products, the fused kernel's families) bf16.
            #expect((stages.feedForward[precision] ?? 0) > 0)
            #expect(Set(stages.head.keys) == [.fp32])
            let fusedFamily = c.family != .conformer && c.family != .wav2vec2Bert && c.family != .wavLM
            let scores = fusedFamily ? ReducedPrecisionKernels.attentionScores(for: precision) : .fp32
            #expect((stages.attention[scores] ?? 0) > 0)
            if c.family != .wav2vec2Bert {
                #expect((stages.featureEncoder[.fp32] ?? 0) > 0, "the first conv layer is fp32")
                // int8: the second layer in int8 after a GroupNorm, the rest in bf16 where bf16 is native
                // (ConvFeatureEncoder.precision).
                let group = c.featureEncoderNorm == .group
                let conv = Set(c.convDim.indices.map { ConvFeatureEncoder.precision(for: precision, layer: $0, groupNorm: group) })
                #expect(Set(stages.featureEncoder.keys) == conv)
                if precision == .int8 && (group || !ReducedPrecisionKernels.bf16Native) {
                    #expect((stages.featureEncoder[.int8] ?? 0) > 0)
                }
            }
        }
    }

    @Test func peaksAreMeasuredOnThisCPU() throws {
        #if arch(x86_64)
        let fp32 = try #require(ComputePeak.measure(.fp32, seconds: 0.02))
        #expect(fp32.opsPerSecond > 1e9 && fp32.instruction.contains("FMA"))
        let bf16 = try #require(ComputePeak.measure(.bf16, seconds: 0.02))
        #expect(bf16.instruction.contains(ReducedPrecisionKernels.bf16Native ? "VDPBF16PS" : "emulated"))
        let int8 = try #require(ComputePeak.measure(.int8, seconds: 0.02))
        #expect(int8.instruction.contains(ReducedPrecisionKernels.int8VNNI ? "VPDPBUSD" : "VPMADDUBSW"))
        // Each int8 instruction does 2-4× the multiply-adds of an fp32 FMA of the same width.
        #expect(int8.opsPerSecond > fp32.opsPerSecond)
        #else
        #expect(ComputePeak.measure(.fp32) == nil)
        #endif
    }
}

/// Threads and the attention path belong to each `Transcriber` (issue 16): no process-wide switch.
@Suite struct ExecutionOptionsTests {
    @Test func threadCountTravelsWithTheCall() {
        let global = BLAS.threads
        ThreadBudget.$current.withValue(1) { #expect(BLAS.threads == 1) }
        ThreadBudget.$current.withValue(3) { #expect(BLAS.threads == 3) }
        #expect(BLAS.threads == global)
    }

    @Test func transcribersWithDifferentSettingsRunSideBySide() async throws {
        let reference = try Fixtures.npy(Fixtures.model("base-layout").appendingPathComponent("logits.npy"))
        let settings = [ExecutionOptions(threads: 1, attention: .blas), ExecutionOptions(threads: 2, attention: .fused),
                        ExecutionOptions()]
        let transcribers = try settings.map { try Transcriber(modelDirectory: Fixtures.model("base-layout"), execution: $0) }
        #expect(transcribers.map(\.execution) == settings)
        let samples = try transcribers[0].loadAudio(file: Fixtures.speech)
        // All three at once, each with its own thread count and attention path, all exact.
        let results = await withTaskGroup(of: [Float].self) { group in
            for transcriber in transcribers { group.addTask { transcriber.emissions(samples: samples).logits } }
            return await group.reduce(into: []) { $0.append($1) }
        }
        for logits in results {
            let maxDelta = zip(logits, reference.values).map { abs($0 - $1) }.max() ?? .infinity
            #expect(maxDelta <= 1e-4)
        }
    }
}
