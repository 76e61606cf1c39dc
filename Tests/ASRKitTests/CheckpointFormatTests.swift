import Foundation
import Testing
@testable import ASRKit

/// PyTorch files, shards and hostile pickles (parity of the loadable ones is in ParityTests).
@Suite struct CheckpointFormatTests {
    func loadWith(_ weights: String) throws -> ASRError? {
        let dir = try Fixtures.temporaryDirectory()
        for name in ["config.json", "vocab.json"] {
            try FileManager.default.copyItem(at: Fixtures.model("base-layout").appendingPathComponent(name), to: dir.appendingPathComponent(name))
        }
        try FileManager.default.copyItem(at: Fixtures.root.appendingPathComponent("checkpoints/\(weights)"),
                                         to: dir.appendingPathComponent("pytorch_model.bin"))
        do {
            _ = try Transcriber(modelDirectory: dir)
            return nil
        } catch let error as ASRError {
            return error
        }
    }

    @Test func picklesCallingAnythingButTheStateDictGlobalsAreRefusedAndNothingRuns() throws {
        let marker = "/tmp/asr-pwned"
        try? FileManager.default.removeItem(atPath: marker)
        let error = try loadWith("malicious_os_system.bin")
        #expect(error == .invalidCheckpoint(
            file: "pytorch_model.bin",
            reason: "data.pkl: refusing global 'posix.system': a state dict never needs it, and loading must not run code"))
        #expect(!FileManager.default.fileExists(atPath: marker))
    }

    @Test func tensorViewsPastTheirStorageAreRefused() throws {
        #expect(try loadWith("storage_offset_out_of_range.bin") == .invalidCheckpoint(
            file: "pytorch_model.bin",
            reason: "data.pkl: tensor view (offset 9, shape [4], strides [1]) reaches past its storage of 4 elements"))
    }

    @Test func legacyFormatGetsAConversionHint() throws {
        guard case .invalidCheckpoint(_, let reason)? = try loadWith("legacy_format.bin") else {
            Issue.record("legacy format was not refused")
            return
        }
        #expect(reason.contains("legacy") && reason.contains("save_pretrained"))
    }

    @Test func viewsAreGatheredThroughTheirStrides() throws {
        // base-layout-torch-save stores lm_head.weight transposed and layer 0's q/k/v as slices of one storage.
        let bin = try PyTorchCheckpoint(path: Fixtures.model("base-layout-torch-save").appendingPathComponent("pytorch_model.bin").path)
        let reference = try SafeTensorsFile(path: Fixtures.model("base-layout").appendingPathComponent("model.safetensors").path)
        #expect(bin.records["lm_head.weight"]?.strides == [1, 32])
        #expect(bin.records["wav2vec2.encoder.layers.0.attention.k_proj.weight"]?.offset == 32 * 32)
        for name in ["lm_head.weight", "wav2vec2.encoder.layers.0.attention.k_proj.weight", "wav2vec2.encoder.layers.0.attention.v_proj.weight"] {
            #expect(try bin.floats(name) == reference.floats(name), "\(name)")
        }
    }

    @Test func pickleInterpreterRefusesUnknownOpcodesAndTruncation() throws {
        func run(_ bytes: [UInt8]) -> String? {
            bytes.withUnsafeBytes { raw in
                var machine = Unpickler(bytes: raw, fileName: "x.bin")
                do { _ = try machine.run(); return nil } catch { return "\(error)" }
            }
        }
        #expect(run([0x80, 0x02, 0x81])?.contains("refusing pickle opcode 0x81") == true)       // NEWOBJ
        #expect(run([0x80, 0x02, 0x63] + Array("builtins\neval\n".utf8))?.contains("refusing global 'builtins.eval'") == true)
        #expect(run([0x80, 0x02, 0x58, 0xFF, 0xFF, 0xFF, 0x7F])?.contains("truncated") == true)
        #expect(run([0x80, 0x02, 0x52])?.contains("underflow") == true)
        #expect(run([0x80, 0x02, 0x7D, 0x2E]) == nil)                                           // {} then STOP
    }

    @Test func shardIndexMustPointAtRealFiles() throws {
        let dir = try Fixtures.copyModel("base-layout-sharded")
        let index = dir.appendingPathComponent("model.safetensors.index.json")
        let text = try String(contentsOf: index, encoding: .utf8).replacingOccurrences(of: "model-00002-of-00003", with: "../../etc/passwd")
        try text.write(to: index, atomically: true, encoding: .utf8)
        #expect(throws: ASRError.self) { try Transcriber(modelDirectory: dir) }
    }
}
