import Foundation
import Testing
@testable import ASRKit

@Suite struct SafeTensorsTests {
    func write(_ data: Data) throws -> String {
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("model.safetensors")
        try data.write(to: url)
        return url.path
    }

    func reason(_ data: Data) throws -> String? {
        do {
            _ = try SafeTensorsFile(path: try write(data))
            return nil
        } catch ASRError.invalidSafeTensors(_, let reason) {
            return reason
        }
    }

    @Test func readsF32F16AndBF16() throws {
        let f32 = SafeTensorsWriter.Entry(name: "a", shape: [2, 2], bytes: SafeTensorsWriter.floatBytes([1, -2, 0.5, 3e-5]))
        // 1.0, -2.0, 65504 (max half), 2^-24 (smallest subnormal) as F16
        let f16 = SafeTensorsWriter.Entry(name: "b", dtype: "F16", shape: [4], bytes: [0x00, 0x3C, 0x00, 0xC0, 0xFF, 0x7B, 0x01, 0x00])
        // 1.0 and -0.5 as BF16
        let bf16 = SafeTensorsWriter.Entry(name: "c", dtype: "BF16", shape: [2], bytes: [0x80, 0x3F, 0x00, 0xBF])
        let file = try SafeTensorsFile(path: try write(SafeTensorsWriter.file([f32, f16, bf16])))
        #expect(try file.floats("a") == [1, -2, 0.5, 3e-5])
        #expect(try file.floats("b") == [1, -2, 65504, Float(sign: .plus, exponent: -24, significand: 1)])
        #expect(try file.floats("c") == [1, -0.5])
        #expect(file.tensors["a"]?.shape == [2, 2])
    }

    @Test func halfConversionIsExactForEveryBitPattern() {
        #if arch(x86_64) || arch(arm64)
        for bits in 0...UInt16.max {
            let expected = Float(Float16(bitPattern: bits))
            let actual = halfToFloat(bits)
            #expect(expected.bitPattern == actual.bitPattern || (expected.isNaN && actual.isNaN), "bits \(bits)")
            if !(expected.bitPattern == actual.bitPattern || (expected.isNaN && actual.isNaN)) { return }
        }
        #endif
    }

    @Test func refusesHeaderLengthBeyondTheFile() throws {
        let data = SafeTensorsWriter.raw(header: "{}", data: [], declaredLength: 1 << 20)
        #expect(try reason(data)?.contains("runs past the end") == true)
    }

    @Test func refusesTinyAndNonJSONFiles() throws {
        #expect(try reason(Data([1, 2, 3]))?.contains("too short") == true)
        #expect(try reason(SafeTensorsWriter.raw(header: "{\"a\":", data: []))?.contains("not valid JSON") == true)
        #expect(try reason(SafeTensorsWriter.raw(header: "[1,2]", data: []))?.contains("JSON object") == true)
        var invalidUTF8 = SafeTensorsWriter.raw(header: "{\"ab\":1}", data: [])
        invalidUTF8[10] = 0xFF
        #expect(try reason(invalidUTF8) != nil)
    }

    @Test func refusesUnknownDTypeAndBadShapes() throws {
        let unknown = #"{"a":{"dtype":"F17","shape":[1],"data_offsets":[0,4]}}"#
        #expect(try reason(SafeTensorsWriter.raw(header: unknown, data: [0, 0, 0, 0]))?.contains("unknown dtype") == true)
        let negative = #"{"a":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#
        #expect(try reason(SafeTensorsWriter.raw(header: negative, data: [0, 0, 0, 0]))?.contains("invalid dimension") == true)
        let huge = #"{"a":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}}"#
        #expect(try reason(SafeTensorsWriter.raw(header: huge, data: [0, 0, 0, 0]))?.contains("overflows") == true)
    }

    @Test func refusesOffsetsThatDoNotTileTheBuffer() throws {
        let outside = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}"#
        #expect(try reason(SafeTensorsWriter.raw(header: outside, data: [0, 0, 0, 0]))?.contains("outside") == true)
        let mismatch = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#
        #expect(try reason(SafeTensorsWriter.raw(header: mismatch, data: [0, 0, 0, 0]))?.contains("needs 8") == true)
        let overlap = #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        #expect(try reason(SafeTensorsWriter.raw(header: overlap, data: [UInt8](repeating: 0, count: 8)))?.contains("overlaps") == true)
        let gap = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        #expect(try reason(SafeTensorsWriter.raw(header: gap, data: [UInt8](repeating: 0, count: 8)))?.contains("gap") == true)
        let trailing = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#
        #expect(try reason(SafeTensorsWriter.raw(header: trailing, data: [UInt8](repeating: 0, count: 8)))?.contains("trailing") == true)
    }

    @Test func refusesDuplicateTensorNames() throws {
        let duplicate = #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#
        #expect(try reason(SafeTensorsWriter.raw(header: duplicate, data: [UInt8](repeating: 0, count: 8)))?.contains("duplicate") == true)
    }

    @Test func refusesNonFloatTensorsWhenRead() throws {
        let file = try SafeTensorsFile(path: try write(SafeTensorsWriter.file([.init(name: "i", dtype: "I64", shape: [1], bytes: [UInt8](repeating: 0, count: 8))])))
        #expect(throws: ASRError.unsupportedDType(name: "i", dtype: "I64")) { try file.floats("i") }
    }
}

@Suite struct ConfigurationTests {
    func load(_ json: String) throws -> Wav2Vec2Configuration {
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("config.json")
        try json.write(to: url, atomically: true, encoding: .utf8)
        return try Wav2Vec2Configuration.load(from: url)
    }

    @Test func emptyObjectMeansBase960h() throws {
        #expect(try load("{}") == Wav2Vec2Configuration())
    }

    @Test func namesTheFieldOfAWrongType() throws {
        #expect(throws: ASRError.invalidConfiguration(field: "hidden_size", reason: "expected Int")) { try load(#"{"hidden_size": "768"}"#) }
        #expect(throws: ASRError.invalidConfiguration(field: "conv_dim[1]", reason: "expected Int")) { try load(#"{"conv_dim": [512, "x"]}"#) }
    }

    @Test func refusesUnsupportedVariants() throws {
        #expect(throws: ASRError.unsupportedConfiguration(field: "feat_extract_norm", value: "\"batch\" (expected \"group\" or \"layer\")")) {
            try load(#"{"feat_extract_norm": "batch"}"#)
        }
        #expect(throws: ASRError.unsupportedConfiguration(field: "add_adapter", value: "true")) { try load(#"{"add_adapter": true}"#) }
        #expect(throws: ASRError.self) { try load(#"{"hidden_act": "mystery"}"#) }
        #expect(throws: ASRError.self) { try load(#"{"model_type": "whisper"}"#) }
        #expect(throws: ASRError.self) { try load(#"{"architectures": ["Wav2Vec2ForPreTraining"]}"#) }
    }

    @Test func refusesImpossibleDimensions() throws {
        #expect(throws: ASRError.self) { try load(#"{"hidden_size": 0}"#) }
        #expect(throws: ASRError.self) { try load(#"{"hidden_size": -4}"#) }
        #expect(throws: ASRError.self) { try load(#"{"hidden_size": 10000000000}"#) }
        #expect(throws: ASRError.self) { try load(#"{"num_attention_heads": 7}"#) }
        #expect(throws: ASRError.self) { try load(#"{"conv_dim": [512, 512], "conv_kernel": [10], "conv_stride": [5]}"#) }
        #expect(throws: ASRError.self) { try load(#"{"pad_token_id": 32}"#) }
    }

    @Test func malformedJSONIsReportedAsSuch() throws {
        #expect(throws: ASRError.self) { try load("{hidden_size: 1}") }
    }
}

@Suite struct CheckpointLoaderTests {
    let name = "base-layout"

    func loadError(_ modify: (URL) throws -> Void) throws -> ASRError? {
        let dir = try Fixtures.copyModel(name)
        try modify(dir)
        do {
            _ = try Transcriber(modelDirectory: dir)
            return nil
        } catch let error as ASRError {
            return error
        }
    }

    func weights(_ dir: URL) -> URL { dir.appendingPathComponent("model.safetensors") }

    @Test func missingTensorIsNamed() throws {
        let error = try loadError { dir in
            try SafeTensorsWriter.rewrite(weights(dir)) { $0.removeAll { $0.name == "wav2vec2.encoder.layers.1.attention.k_proj.bias" } }
        }
        #expect(error == .missingTensor(name: "wav2vec2.encoder.layers.1.attention.k_proj.bias"))
    }

    @Test func misShapedTensorIsNamed() throws {
        let key = "wav2vec2.encoder.layers.0.feed_forward.intermediate_dense.weight"
        let error = try loadError { dir in
            try SafeTensorsWriter.rewrite(weights(dir)) { entries in
                let i = entries.firstIndex { $0.name == key }!
                entries[i].shape = [entries[i].shape[1], entries[i].shape[0]]
            }
        }
        #expect(error == .tensorShapeMismatch(name: key, expected: [64, 32], found: [32, 64]))
    }

    @Test func unexpectedTensorsAreRefused() throws {
        let error = try loadError { dir in
            try SafeTensorsWriter.rewrite(weights(dir)) {
                $0.append(.init(name: "wav2vec2.encoder.layers.2.attention.q_proj.weight", shape: [1], bytes: [0, 0, 0, 0]))
            }
        }
        #expect(error == .unexpectedTensors(names: ["wav2vec2.encoder.layers.2.attention.q_proj.weight"]))
    }

    @Test func configDimensionMustMatchTheWeights() throws {
        let error = try loadError { dir in
            let url = dir.appendingPathComponent("config.json")
            let text = try String(contentsOf: url, encoding: .utf8).replacingOccurrences(of: "\"intermediate_size\": 64", with: "\"intermediate_size\": 65")
            try text.write(to: url, atomically: true, encoding: .utf8)
        }
        #expect(error == .tensorShapeMismatch(name: "wav2vec2.encoder.layers.0.feed_forward.intermediate_dense.weight", expected: [65, 32], found: [64, 32]))
    }

    @Test func missingFilesAreNamed() throws {
        let error = try loadError { try FileManager.default.removeItem(at: $0.appendingPathComponent("config.json")) }
        if case .missingModelFile(_, let file)? = error { #expect(file == "config.json") } else { Issue.record("got \(String(describing: error))") }
        let noWeights = try loadError { try FileManager.default.removeItem(at: weights($0)) }
        if case .missingModelFile(_, let file)? = noWeights { #expect(file == "model.safetensors") } else { Issue.record("got \(String(describing: noWeights))") }
        let noVocab = try loadError { try FileManager.default.removeItem(at: $0.appendingPathComponent("vocab.json")) }
        if case .missingModelFile(_, let file)? = noVocab { #expect(file == "vocab.json") } else { Issue.record("got \(String(describing: noVocab))") }
    }

    @Test func weightNormUnderEitherNameGivesTheSameModel() throws {
        // base-layout stores weight_g/weight_v; rename them to transformers 5's parametrizations names.
        let dir = try Fixtures.copyModel(name)
        try SafeTensorsWriter.rewrite(weights(dir)) { entries in
            for i in entries.indices {
                entries[i].name = entries[i].name
                    .replacingOccurrences(of: "conv.weight_g", with: "conv.parametrizations.weight.original0")
                    .replacingOccurrences(of: "conv.weight_v", with: "conv.parametrizations.weight.original1")
            }
        }
        let samples = (0..<8000).map { Float(sin(Double($0) * 0.05)) }
        let renamed = try Transcriber(modelDirectory: dir).emissions(samples: samples)
        let original = try Transcriber(modelDirectory: Fixtures.model(name)).emissions(samples: samples)
        #expect(renamed == original)
    }
}

@Suite struct NPYTests {
    @Test func roundTrips() throws {
        let values: [Float] = [1, -2.5, .pi, 0, 1e-30, 7]
        let decoded = try NPY.decode(NPY.encode(values, shape: [2, 3]))
        #expect(decoded.values == values && decoded.shape == [2, 3])
        #expect((NPY.encode(values, shape: [2, 3]).count - 4 * values.count) % 64 == 0)
        let header = NPY.encode([], shape: [0, 32]).dropFirst(10)
        #expect(String(decoding: header, as: UTF8.self).contains("'shape': (0, 32)"))
    }
}
