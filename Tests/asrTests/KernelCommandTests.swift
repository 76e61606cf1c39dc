import ASRKit
import Foundation
import Testing

/// oneDNN picks its kernels from the CPU's instruction set; ONEDNN_MAX_CPU_ISA limits that choice, so each kernel a
/// machine of this kind may run (AVX2 without VNNI and its 7-bit weights, AVX-512, VNNI, BF16) is checked here
/// against the references, whatever this machine has (oneDNN caps the request at what the CPU supports).
@Suite struct KernelCommandTests {
    static let instructionSets = ["SSE41", "AVX2", "AVX512_CORE", "AVX512_CORE_VNNI", "AVX512_CORE_BF16", "ALL"]

    @Test(arguments: instructionSets)
    func kernelChecksPassOnEachInstructionSet(_ isa: String) throws {
        let process = Process()
        process.executableURL = CLI.executable
        process.arguments = ["kernels", "--check"]
        process.environment = ProcessInfo.processInfo.environment.merging(["ONEDNN_MAX_CPU_ISA": isa]) { $1 }
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let stdout = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(isa): \(stdout)\(stderr)")
        #expect(stdout.contains("kernel checks passed"))
    }

    @Test func infoNamesTheKernelsOfEachPrecision() throws {
        let result = try CLI.run(["info"])
        #expect(result.status == 0)
        // fp32 weight products on oneDNN's matmul (packed weights) where oneDNN runs AVX-512, else OpenBLAS (which also
        // runs the rest).
        #expect(result.stdout.contains(ReducedPrecisionKernels.fp32OnOneDNN ? "reduced-precision kernels: fp32: oneDNN matmul, weights packed at load (OpenBLAS"
                                                                          : "reduced-precision kernels: fp32: OpenBLAS"), "\(result.stdout)")
        #expect(result.stdout.contains(ReducedPrecisionKernels.int8VNNI ? "int8: oneDNN int8 matmul on VNNI" : "int8: oneDNN u8s8s32"))
    }

    @Test func unknownPrecisionIsAUsageError() throws {
        let result = try CLI.run(["transcribe", "fixtures/audio/builtin/08.wav", "--precision", "fp8"])
        #expect(result.status == 2)
        #expect(result.stderr.contains("precision"))
    }

    @Test func builtinModelTranscribesTheSampleInEveryPrecision() throws {
        for precision in ["fp32", "bf16", "int8"] {
            let result = try CLI.run(["transcribe", "fixtures/audio/builtin/08.wav", "--precision", precision])
            #expect(result.status == 0, "\(precision): \(result.stderr)")
            #expect(result.stdout.trimmingCharacters(in: .whitespacesAndNewlines) == "THE TEMPERATURE TODAY IS SEVENTY ONE DEGREES",
                    "\(precision)")
        }
    }
}
