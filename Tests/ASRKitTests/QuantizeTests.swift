import CLowPrecision
import Foundation
import Testing
@testable import ASRKit

/// `ModelQuantizer` (`asr quantize`): the files it writes, and that loading them gives exactly what loading the
/// source at the same precision gives.
@Suite struct QuantizeTests {
    /// The vectorised weight quantizer rounds exactly as roundf (half away from zero, what the asr_int8 format and
    /// tools/precision/check_quantized.py specify), ties included, on rows whose length is not a multiple of the
    /// vector width; the row sums are the codes' sums.
    @Test func weightCodesRoundHalfAwayFromZero() {
        let (n, k) = (5, 37)
        var values = [Float](repeating: 0, count: n * k)
        var generator = SeededGenerator(seed: 26)
        for r in 0..<n {
            for j in 0..<k { values[r * k + j] = Float.random(in: -1.9...1.9, using: &generator) }
            // The row's largest magnitude is 127 steps of 1/64, so multiples of 1/128 are exact ties.
            values[r * k] = 127.0 / 64
            for (j, tie) in [0.5, 1.5, -1.5, 2.5, -2.5, -126.5, 126.5].enumerated() { values[r * k + 1 + j] = Float(tie) / 64 }
        }
        var q = [Int8](repeating: 0, count: n * k), s = [Float](repeating: 0, count: n), sums = [Int32](repeating: 0, count: n)
        asr_quantize_weights_s8(Int32(n), Int32(k), values, 127, &q, &s, &sums)
        for r in 0..<n {
            let scale = values[r * k..<(r + 1) * k].map(abs).max()! / 127
            #expect(s[r] == scale)
            let expected = (0..<k).map { j in Int8(max(-127, min(127, (values[r * k + j] / scale).rounded(.toNearestOrAwayFromZero)))) }
            #expect(Array(q[r * k..<(r + 1) * k]) == expected, "row \(r)")
            #expect(Array(q[r * k + 1...r * k + 7]) == [1, 2, -2, 3, -3, -127, 127])
            #expect(sums[r] == expected.reduce(0) { $0 + Int32($1) })
        }
        // Stored codes are copied as they are, with the same sums and each row's largest |code| (128 for a -128).
        q[k + 3] = -128
        var copied = [Int8](repeating: 0, count: n * k), copiedSums = [Int32](repeating: 0, count: n)
        var largest = [Int32](repeating: 0, count: n)
        asr_copy_weights_s8(Int32(n), Int32(k), q, &copied, &copiedSums, &largest)
        #expect(copied == q)
        for r in 0..<n {
            let row = q[r * k..<(r + 1) * k]
            #expect(copiedSums[r] == row.reduce(0) { $0 + Int32($1) })
            #expect(largest[r] == row.map { abs(Int32($0)) }.max()!)
        }
        #expect(largest[1] == 128)
    }

    /// Quantizes a fixture model into a fresh temporary directory.
    func quantize(_ name: String, _ precision: Precision) throws -> (URL, ModelQuantizer.Report) {
        let output = try Fixtures.temporaryDirectory().appendingPathComponent("\(name)-\(precision.rawValue)")
        let report = try ModelQuantizer.quantize(modelDirectory: Fixtures.model(name), to: output, precision: precision)
        return (output, report)
    }

    func logits(_ directory: URL, _ precision: Precision) throws -> (Transcriber, Emissions) {
        let transcriber = try Transcriber(modelDirectory: directory, precision: precision)
        return (transcriber, transcriber.emissions(samples: try transcriber.loadAudio(file: Fixtures.speech)))
    }

    func config(_ directory: URL) throws -> [String: Any] {
        try JSONSerialization.jsonObject(with: Data(contentsOf: directory.appendingPathComponent("config.json"))) as! [String: Any]
    }

    // MARK: bf16

    @Test func bf16WritesABF16CheckpointHalfTheSize() throws {
        let (output, report) = try quantize("base-layout", .bf16)
        let names = try FileManager.default.contentsOfDirectory(atPath: output.path).sorted()
        #expect(names == ["config.json", "model.safetensors", "preprocessor_config.json", "tokenizer_config.json", "vocab.json"])
        let config = try config(output)
        #expect(config["torch_dtype"] as? String == "bfloat16")
        #expect(config["quantization_config"] == nil)
        #expect(config["hidden_size"] as? Int == 32 && config["layer_norm_eps"] as? Double == 1e-5)

        let source = try SafeTensorsFile(path: Fixtures.model("base-layout").appendingPathComponent("model.safetensors").path)
        let written = try SafeTensorsFile(path: output.appendingPathComponent("model.safetensors").path)
        #expect(written.metadata == ["format": "pt"])
        #expect(Set(written.tensors.keys) == Set(source.tensors.keys))
        for (name, info) in written.tensors {
            #expect(info.dtype == .bf16 && info.shape == source.tensors[name]!.shape, "\(name)")
            // Each value is the source's rounded to nearest even, as torch's .to(torch.bfloat16) does.
            let values = try source.floats(name)
            var expected = [UInt16](repeating: 0, count: values.count)
            asr_f32_to_bf16(values.count, values, &expected)
            let stored = written.raw(name)!.bytes.assumingMemoryBound(to: UInt16.self)
            #expect(Array(stored) == expected, "\(name)")
        }
        #expect(report.inputWeightBytes == 166_752)
        #expect(report.outputWeightBytes == MappedFileSize.of(output.appendingPathComponent("model.safetensors")))
        let ratio = Double(report.inputWeightBytes) / Double(report.outputWeightBytes)
        print("bf16 base-layout: \(report.inputWeightBytes) → \(report.outputWeightBytes) bytes (\(ratio)×)")
        #expect(ratio > 1.9 && ratio <= 2)
        #expect(report.outputWeightTypes == ["BF16"] && report.inputWeightTypes == ["F32"])
    }

    /// The bf16 checkpoint's Linear weights are used as stored at bf16: loading it gives exactly what loading the
    /// same values through Float gives (a copy of it with every tensor widened to F32). Against the fp32 source at bf16
    /// it differs by the rounding of the tensors the bf16 path keeps in fp32 (norms, biases, the CTC head), which a
    /// BF16 checkpoint (like `model.to(torch.bfloat16).save_pretrained`) rounds too.
    @Test(arguments: Fixtures.modelNames)
    func bf16CheckpointAtBF16IsReadAsStored(model name: String) throws {
        let (output, _) = try quantize(name, .bf16)
        let widened = try Fixtures.temporaryDirectory().appendingPathComponent("widened")
        try FileManager.default.copyItem(at: output, to: widened)
        try SafeTensorsWriter.rewrite(widened.appendingPathComponent("model.safetensors")) { entries in
            for i in entries.indices {
                #expect(entries[i].dtype == "BF16")
                let bits = stride(from: 0, to: entries[i].bytes.count, by: 2).map {
                    UInt32(entries[i].bytes[$0]) | UInt32(entries[i].bytes[$0 + 1]) << 8
                }
                entries[i].dtype = "F32"
                entries[i].bytes = SafeTensorsWriter.floatBytes(bits.map { Float(bitPattern: $0 << 16) })
            }
        }
        let (quantized, a) = try logits(output, .bf16)
        let (float, b) = try logits(widened, .bf16)
        let same = a.logits == b.logits
        #expect(same, "\(name): max |Δ| \(zip(a.logits, b.logits).map { abs($0 - $1) }.max() ?? 0)")
        #expect(quantized.warnings == float.warnings)
        if ReducedPrecisionKernels.bf16Available {
            // The transformer's weights come straight from the file's bits; the CTC head stays fp32.
            #expect(quantized.model.firstQuery.precision == .bf16)
            #expect(quantized.model.head.weight.precision == .fp32)
        }

        let (source, c) = try logits(Fixtures.model(name), .bf16)
        #expect(quantized.parameterCount == source.parameterCount)
        let range = (c.logits.max() ?? 0) - (c.logits.min() ?? 0)
        let delta = zip(a.logits, c.logits).map { abs($0 - $1) }.max() ?? 0
        print("bf16 checkpoint vs fp32 checkpoint, both at bf16, \(name): max |Δ| \(delta) (logit range \(range))")
        #expect(delta <= 0.02 * range, "\(name): max |Δ| \(delta), logit range \(range)")
    }

    @Test func bf16CheckpointAtFP32IsTheRoundedModel() throws {
        let (output, _) = try quantize("base-layout", .bf16)
        let (_, exact) = try logits(Fixtures.model("base-layout"), .fp32)
        let (transcriber, rounded) = try logits(output, .fp32)
        #expect(transcriber.warnings.isEmpty)
        #expect(transcriber.weightTypes == ["BF16"])
        let range = (exact.logits.max() ?? 0) - (exact.logits.min() ?? 0)
        let delta = zip(exact.logits, rounded.logits).map { abs($0 - $1) }.max() ?? 0
        #expect(delta > 0 && delta < 0.03 * range)
    }

    // MARK: int8

    @Test func int8WritesCodesAndScalesRecordedInConfig() throws {
        let (output, report) = try quantize("base-layout", .int8)
        let names = try FileManager.default.contentsOfDirectory(atPath: output.path).sorted()
        #expect(names == ["config.json", "model.safetensors", "preprocessor_config.json", "tokenizer_config.json", "vocab.json"])
        let quantization = try config(output)["quantization_config"] as? [String: Any]
        #expect(quantization?["quant_method"] as? String == "asr_int8")
        #expect(quantization?["bits"] as? Int == 8)
        #expect(quantization?["scheme"] as? String == "per-output-channel symmetric")
        let modules = quantization?["modules"] as? [String] ?? []
        #expect(modules.count == 1 + 2 * 6)
        #expect(modules.first == "wav2vec2.feature_projection.projection")
        #expect(modules.contains("wav2vec2.encoder.layers.1.feed_forward.output_dense"))

        let source = try SafeTensorsFile(path: Fixtures.model("base-layout").appendingPathComponent("model.safetensors").path)
        let written = try SafeTensorsFile(path: output.appendingPathComponent("model.safetensors").path)
        #expect(written.tensors.count == source.tensors.count + modules.count)
        var expectedBytes = 0
        for (name, info) in source.tensors {
            let module = String(name.dropLast(".weight".count))
            guard name.hasSuffix(".weight"), modules.contains(module) else {
                // Everything else as the source stores it, byte for byte.
                #expect(written.tensors[name]?.dtype == info.dtype, "\(name)")
                #expect(Array(written.raw(name)!.bytes) == Array(source.raw(name)!.bytes), "\(name)")
                expectedBytes += info.byteRange.count
                continue
            }
            let (n, k) = (info.shape[0], info.shape[1])
            let codes = written.tensors[name]!, scales = written.tensors[name + "_scale"]!
            #expect(codes.dtype == .i8 && codes.shape == [n, k])
            #expect(scales.dtype == .f32 && scales.shape == [n])
            expectedBytes += n * k + 4 * n
            // The codes and scales of a load at int8: the same function, limit 127.
            let values = try source.floats(name)
            var q = [Int8](repeating: 0, count: n * k), s = [Float](repeating: 0, count: n), sums = [Int32](repeating: 0, count: n)
            asr_quantize_weights_s8(Int32(n), Int32(k), values, 127, &q, &s, &sums)
            let stored = Array(written.raw(name)!.bytes.assumingMemoryBound(to: Int8.self))
            #expect(stored == q)
            #expect(try written.floats(name + "_scale") == s)
            #expect(stored.allSatisfy { abs(Int($0)) <= 127 } && stored.contains { abs(Int($0)) == 127 })
            // code · scale is within half a step of each weight.
            for r in 0..<n {
                for j in 0..<k { #expect(abs(Float(stored[r * k + j]) * s[r] - values[r * k + j]) <= s[r] * 0.5001) }
            }
        }
        let headerBytes = MappedFileSize.of(output.appendingPathComponent("model.safetensors")) - expectedBytes
        #expect(headerBytes > 8 && headerBytes < 16_384)
        let ratio = Double(report.inputWeightBytes) / Double(report.outputWeightBytes)
        // The fixture's Linear layers hold 43 % of its weights (base-960h's: 90 %, where int8 files are ~3× smaller;
        // see tools/precision/check_quantized.py).
        print("int8 base-layout: \(report.inputWeightBytes) → \(report.outputWeightBytes) bytes (\(ratio)×)")
        #expect(ratio > 1.4)
        #expect(report.convertedCount == modules.count)
        #expect(report.outputWeightTypes == ["F32", "I8"])
    }

    /// The key property: the int8 checkpoint's codes are the ones a load of the source at int8 computes, so the two
    /// give identical logits (on CPUs without VNNI the stored codes are requantized to 7 bits, which adds a rounding).
    @Test(arguments: Fixtures.modelNames)
    func int8CheckpointAtInt8EqualsSourceAtInt8(model name: String) throws {
        let (output, _) = try quantize(name, .int8)
        let (source, a) = try logits(Fixtures.model(name), .int8)
        let (quantized, b) = try logits(output, .int8)
        #expect(quantized.warnings == source.warnings)
        #expect(quantized.parameterCount == source.parameterCount)
        #expect(a.frames == b.frames && a.frames > 0)
        if ReducedPrecisionKernels.int8VNNI {
            let same = a.logits == b.logits
            #expect(same, "\(name): max |Δ| \(zip(a.logits, b.logits).map { abs($0 - $1) }.max() ?? 0)")
        } else {
            let range = (a.logits.max() ?? 0) - (a.logits.min() ?? 0)
            #expect(zip(a.logits, b.logits).allSatisfy { abs($0 - $1) <= 0.03 * range })
        }
        #expect(quantized.model.firstIntermediate.precision == .int8)
        #expect(quantized.model.head.weight.precision == .fp32)
        #expect(quantized.weightTypes.contains("I8"))
        // With VNNI the codes are packed at load for oneDNN's int8 matmul, from the file and from the F32 source
        // alike. Without it they are read in place from the mapped file, except where they had to be requantized to
        // 7 bits; a load of the F32 source quantizes into its own memory.
        let packs = ReducedPrecisionKernels.int8VNNI && asr_packed_weights_bytes(2, 32, 32) > 0
        #expect(quantized.model.firstIntermediate.isPacked == packs)
        #expect(source.model.firstIntermediate.isPacked == packs)
        #expect(!quantized.model.firstIntermediate.readsMappedCodes || !packs)
        #expect(!source.model.firstIntermediate.readsMappedCodes)
    }

    @Test(arguments: [Precision.fp32, .bf16])
    func int8CheckpointAtOtherPrecisionsIsDequantizedWithAWarning(precision: Precision) throws {
        let (output, _) = try quantize("base-layout", .int8)
        let (_, exact) = try logits(Fixtures.model("base-layout"), .fp32)
        let (transcriber, dequantized) = try logits(output, precision)
        #expect(transcriber.warnings.count { $0.contains("quantized to int8") } == 1, "\(transcriber.warnings)")
        #expect(transcriber.model.layers[0].q.weight.precision == transcriber.precision)
        let range = (exact.logits.max() ?? 0) - (exact.logits.min() ?? 0)
        let delta = zip(exact.logits, dequantized.logits).map { abs($0 - $1) }.max() ?? 0
        #expect(delta > 0 && delta < 0.03 * range, "max |Δ| \(delta), range \(range)")
    }

    /// A bf16 checkpoint can be quantized to int8 (other tensors stay BF16); it loads at int8 as the bf16 source does.
    @Test func int8OfABF16Checkpoint() throws {
        let (bf16, _) = try quantize("base-layout", .bf16)
        let output = try Fixtures.temporaryDirectory().appendingPathComponent("int8")
        let report = try ModelQuantizer.quantize(modelDirectory: bf16, to: output, precision: .int8)
        #expect(report.outputWeightTypes == ["BF16", "F32", "I8"])  // F32: the scales
        let (_, a) = try logits(bf16, .int8), (_, b) = try logits(output, .int8)
        let same = a.logits == b.logits
        if ReducedPrecisionKernels.int8VNNI { #expect(same) }
    }

    // MARK: Refusals and output handling

    @Test func refusesToQuantizeAQuantizedModel() throws {
        let (int8, _) = try quantize("base-layout", .int8)
        let (bf16, _) = try quantize("base-layout", .bf16)
        let target = try Fixtures.temporaryDirectory().appendingPathComponent("again")
        for (input, precision, phrase) in [(int8, Precision.int8, "quant_method \"asr_int8\""), (int8, .bf16, "asr_int8"),
                                           (bf16, .bf16, "already BF16")] {
            do {
                _ = try ModelQuantizer.quantize(modelDirectory: input, to: target, precision: precision)
                Issue.record("quantized \(input.lastPathComponent) to \(precision) again")
            } catch ASRError.quantizationRefused(let directory, let reason) {
                #expect(directory == input.path)
                #expect(reason.contains(phrase), "\(reason)")
            }
            #expect(!FileManager.default.fileExists(atPath: target.path))
        }
        // I8 tensors without a quantization_config are refused too.
        let stripped = try Fixtures.temporaryDirectory().appendingPathComponent("stripped")
        try FileManager.default.copyItem(at: int8, to: stripped)
        var config = try config(stripped)
        config["quantization_config"] = nil
        try JSONSerialization.data(withJSONObject: config).write(to: stripped.appendingPathComponent("config.json"))
        #expect(throws: ASRError.quantizationRefused(directory: stripped.path, reason: "it is already quantized (tensor 'wav2vec2.encoder.layers.0.attention.k_proj.weight' is I8)")) {
            try ModelQuantizer.quantize(modelDirectory: stripped, to: target, precision: .int8)
        }
        #expect(throws: ASRError.quantizationRefused(directory: Fixtures.model("base-layout").path, reason: "fp32 is not a reduced precision (choose bf16 or int8)")) {
            try ModelQuantizer.quantize(modelDirectory: Fixtures.model("base-layout"), to: target, precision: .fp32)
        }
    }

    @Test func refusesANonEmptyOutputUnlessOverwriting() throws {
        let output = try Fixtures.temporaryDirectory()
        try Data("keep".utf8).write(to: output.appendingPathComponent("notes.txt"))
        #expect(throws: ASRError.outputNotEmpty(directory: output.path)) {
            try ModelQuantizer.quantize(modelDirectory: Fixtures.model("base-layout"), to: output, precision: .bf16)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: output.path) == ["notes.txt"])
        _ = try ModelQuantizer.quantize(modelDirectory: Fixtures.model("base-layout"), to: output, precision: .bf16, overwrite: true)
        let names = try FileManager.default.contentsOfDirectory(atPath: output.path)
        // --overwrite replaces the files it writes and never deletes others.
        #expect(names.contains("notes.txt") && names.contains("model.safetensors"))
        #expect(!names.contains { $0.hasPrefix(".") }, "no temporary folder left inside: \(names)")
        // No temporary or old directory is left beside it.
        let siblings = try FileManager.default.contentsOfDirectory(atPath: output.deletingLastPathComponent().path)
        #expect(!siblings.contains { $0.hasPrefix(".\(output.lastPathComponent).") }, "\(siblings)")
        // An existing empty directory is simply filled.
        let empty = try Fixtures.temporaryDirectory()
        _ = try ModelQuantizer.quantize(modelDirectory: Fixtures.model("base-layout"), to: empty, precision: .int8)
        #expect(FileManager.default.fileExists(atPath: empty.appendingPathComponent("model.safetensors").path))
        // The input itself is never an output.
        let copy = try Fixtures.copyModel("base-layout")
        #expect(throws: ASRError.quantizationRefused(directory: copy.path, reason: "the output directory is the input directory")) {
            try ModelQuantizer.quantize(modelDirectory: copy, to: copy, precision: .int8, overwrite: true)
        }
    }

    @Test func failedQuantizationLeavesNothingBehind() throws {
        let input = try Fixtures.copyModel("base-layout")
        try SafeTensorsWriter.rewrite(input.appendingPathComponent("model.safetensors")) { entries in
            let i = entries.firstIndex { $0.name == "wav2vec2.encoder.layers.1.attention.v_proj.weight" }!
            var values = [Float](repeating: 0.5, count: 32 * 32)
            values[7] = .nan
            entries[i].bytes = SafeTensorsWriter.floatBytes(values)
        }
        let parent = try Fixtures.temporaryDirectory()
        let output = parent.appendingPathComponent("out")
        #expect(throws: ASRError.invalidQuantizedTensor(name: "wav2vec2.encoder.layers.1.attention.v_proj.weight",
                                                        reason: "has 1 NaN or infinite values; it cannot be quantized")) {
            try ModelQuantizer.quantize(modelDirectory: input, to: output, precision: .int8)
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: parent.path).isEmpty)
    }

    // MARK: Loading broken int8 checkpoints

    @Test func brokenInt8CheckpointsAreClearErrors() throws {
        let (int8, _) = try quantize("base-layout", .int8)
        let weight = "wav2vec2.encoder.layers.0.attention.q_proj.weight"

        func variant(_ transform: (inout [SafeTensorsWriter.Entry]) -> Void) throws -> URL {
            let dir = try Fixtures.temporaryDirectory().appendingPathComponent("m")
            try FileManager.default.copyItem(at: int8, to: dir)
            try SafeTensorsWriter.rewrite(dir.appendingPathComponent("model.safetensors"), transform)
            return dir
        }
        let noScale = try variant { $0.removeAll { $0.name == weight + "_scale" } }
        #expect(throws: ASRError.invalidQuantizedTensor(name: weight, reason: "I8 weight without its scale tensor '\(weight)_scale'")) {
            try Transcriber(modelDirectory: noScale, precision: .int8)
        }
        let badCode = try variant { entries in
            let i = entries.firstIndex { $0.name == weight }!
            entries[i].bytes[5] = 0x80  // -128
        }
        #expect(throws: ASRError.invalidQuantizedTensor(name: weight, reason: "holds code -128; codes must lie within ±127")) {
            try Transcriber(modelDirectory: badCode, precision: .int8)
        }
        #expect(throws: ASRError.self) { try Transcriber(modelDirectory: badCode, precision: .fp32) }
        let zeroScale = try variant { entries in
            let i = entries.firstIndex { $0.name == weight + "_scale" }!
            entries[i].bytes = SafeTensorsWriter.floatBytes([0] + [Float](repeating: 0.01, count: 31))
        }
        #expect(throws: ASRError.invalidQuantizedTensor(name: weight + "_scale", reason: "scale 0.0 of row 0 is not a positive finite number")) {
            try Transcriber(modelDirectory: zeroScale, precision: .int8)
        }
        // A quantization method this engine does not know is refused before any weight is read.
        let other = try Fixtures.copyModel("base-layout")
        var config = try config(other)
        config["quantization_config"] = ["quant_method": "bitsandbytes", "load_in_8bit": true]
        try JSONSerialization.data(withJSONObject: config).write(to: other.appendingPathComponent("config.json"))
        #expect(throws: ASRError.unsupportedConfiguration(field: "quantization_config.quant_method", value: "\"bitsandbytes\" (supported: asr_int8)")) {
            try Transcriber(modelDirectory: other)
        }
    }
}

/// Bytes of a file on disk.
enum MappedFileSize {
    static func of(_ url: URL) -> Int {
        (try? FileManager.default.attributesOfItem(atPath: url.path)[.size] as? Int) ?? -1
    }
}

extension Wav2Vec2Model {
    /// The first layer's query projection, whichever kind of layers the family has.
    var firstQuery: WeightMatrix { layers.first?.q.weight ?? conformerLayers[0].attention.q.weight }
    /// The first layer's first feed-forward product, whichever kind of layers the family has.
    var firstIntermediate: WeightMatrix { layers.first?.intermediate.weight ?? conformerLayers[0].ffn1.intermediate.weight }
}
