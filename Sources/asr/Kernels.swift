import ArgumentParser
import ASRKit
import Foundation

struct Kernels: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show which kernels each precision runs on here; with --check, test them against references.",
        discussion: """
            The bf16 and int8 products run on oneDNN, which picks its kernels from the CPU's instruction set. Set \
            ONEDNN_MAX_CPU_ISA (e.g. AVX2, AVX512_CORE, AVX512_CORE_VNNI, AVX512_CORE_BF16) to force an older set: \
            the test suite runs --check under each, so every kernel a machine may use is checked.
            """)

    @Flag(help: "Check the bf16 and int8 products against independent references (odd shapes and strides).")
    var check = false

    func run() throws {
        print(ReducedPrecisionKernels.summary)
        guard check else { return }
        let failures = ReducedPrecisionCheck.run()
        for failure in failures { printError(failure) }
        if !failures.isEmpty { throw ExitStatus.failure }
        print("kernel checks passed (oneDNN ISA \(ReducedPrecisionKernels.instructionSet))")
    }
}
