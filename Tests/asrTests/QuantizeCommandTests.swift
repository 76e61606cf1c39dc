import Foundation
import Testing
import ASRKit

/// `asr quantize`: exit codes, messages, and that the written models run.
@Suite struct QuantizeCommandTests {
    let model = CLI.fixtures.appendingPathComponent("models/base-layout").path
    let speech = CLI.fixtures.appendingPathComponent("speech_16k.wav").path

    func scratch() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("asr-quantize-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    @Test func quantizesAndReportsSizes() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        for precision in ["bf16", "int8"] {
            let output = dir.appendingPathComponent(precision).path
            let result = try CLI.run(["quantize", model, output, "--precision", precision])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(result.stdout.contains("weights before: 166752 bytes"), "\(result.stdout)")
            #expect(result.stdout.contains("weights after:") && result.stdout.contains("× smaller"), "\(result.stdout)")
            #expect(result.stderr.isEmpty, "\(result.stderr)")
            let quantized = try CLI.run(["transcribe", speech, "--model", output, "--precision", precision])
            #expect(quantized.status == 0 && !quantized.stdout.isEmpty, "\(quantized.stderr)")
            // A CPU without bf16 products (AVX2 only) runs bf16 in fp32 and says so; nothing else is said.
            let fallback = precision == "bf16" && !ReducedPrecisionKernels.bf16Available
            #expect(fallback ? quantized.stderr.contains("bf16 products are not available") : quantized.stderr.isEmpty,
                    "\(quantized.stderr)")
        }
        // The int8 model transcribes at int8 exactly as the source does (the same codes).
        let int8 = try CLI.run(["logits", speech, "--model", dir.appendingPathComponent("int8").path, "--precision", "int8",
                                "-o", dir.appendingPathComponent("a.npy").path])
        let source = try CLI.run(["logits", speech, "--model", model, "--precision", "int8", "-o", dir.appendingPathComponent("b.npy").path])
        #expect(int8.status == 0 && source.status == 0, "\(int8.stderr)")
        let same = try Data(contentsOf: dir.appendingPathComponent("a.npy")) == Data(contentsOf: dir.appendingPathComponent("b.npy"))
        #expect(same || !ReducedPrecisionKernels.int8VNNI)
        // The int8 model at fp32 runs, with a warning that its weights were quantized.
        let fp32 = try CLI.run(["transcribe", speech, "--model", dir.appendingPathComponent("int8").path])
        #expect(fp32.status == 0)
        #expect(fp32.stderr.contains("warning:") && fp32.stderr.contains("quantized to int8"), "\(fp32.stderr)")
    }

    @Test func refusalsExitWith1AndUsageErrorsWith2() throws {
        let dir = try scratch()
        defer { try? FileManager.default.removeItem(at: dir) }
        let int8 = dir.appendingPathComponent("int8").path
        #expect(try CLI.run(["quantize", model, int8, "--precision", "int8"]).status == 0)

        let again = try CLI.run(["quantize", int8, dir.appendingPathComponent("again").path, "--precision", "int8"])
        #expect(again.status == 1)
        #expect(again.stderr.contains("already quantized") && again.stderr.contains(int8), "\(again.stderr)")

        let occupied = try CLI.run(["quantize", model, int8, "--precision", "bf16"])
        #expect(occupied.status == 1)
        #expect(occupied.stderr.contains("not empty") && occupied.stderr.contains("--overwrite"), "\(occupied.stderr)")
        let replaced = try CLI.run(["quantize", model, int8, "--precision", "bf16", "--overwrite"])
        #expect(replaced.status == 0, "\(replaced.stderr)")
        let config = try String(contentsOfFile: int8 + "/config.json", encoding: .utf8)
        #expect(config.contains("\"torch_dtype\": \"bfloat16\"") && !config.contains("quantization_config"))

        let missing = try CLI.run(["quantize", "/nonexistent-model", dir.appendingPathComponent("x").path, "--precision", "int8"])
        #expect(missing.status == 1 && missing.stderr.contains("/nonexistent-model"))

        #expect(try CLI.run(["quantize", model, dir.appendingPathComponent("y").path, "--precision", "fp32"]).status == 2)
        #expect(try CLI.run(["quantize", model, dir.appendingPathComponent("y").path]).status == 2)
        #expect(try CLI.run(["quantize", model]).status == 2)
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("y").path))
    }
}
