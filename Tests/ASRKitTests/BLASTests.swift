import Foundation
import Testing
@testable import ASRKit

@Suite(.serialized) struct BLASTests {
    /// Debian's OpenBLAS falls back to SSE3 "Prescott" kernels on CPUs it does not know. Simulate that and check that
    /// the selection moves to the kernel the CPU's instruction set allows.
    @Test func slowFallbackKernelIsReplacedByTheFastestTheCPUSupports() throws {
        let original = BLAS.currentKernel()
        defer { BLAS.forceKernel(original.uppercased()) }
        BLAS.forceKernel("PRESCOTT")
        #expect(BLAS.currentKernel() == "Prescott")
        let selection = BLAS.selectFastestKernel()
        #expect(selection.detected == "Prescott")
        if let best = BLAS.bestKernelForThisCPU() {
            #expect(selection.active.uppercased() == best.name)
            #expect(selection.override != nil)
        } else {
            #expect(selection.active == "Prescott")
            #expect(selection.override == nil)
        }
        // Products still right after the switch.
        var c = [Float](repeating: 0, count: 4)
        let a: [Float] = [1, 2, 3, 4], b: [Float] = [5, 6, 7, 8]
        BLAS.gemm(m: 2, n: 2, k: 2, a: a, lda: 2, b: b, ldb: 2, transposeB: false, c: &c, ldc: 2)
        #expect(c == [19, 22, 43, 50])
    }

    @Test func gemmHandlesTransposedWeightsAndAccumulation() {
        // C = A · Bᵀ + C with B stored n×k (Linear layout).
        let a: [Float] = [1, 2, 3, 4, 5, 6]        // 2×3
        let b: [Float] = [1, 0, 1, 0, 1, 0]        // 2×3 → Bᵀ is 3×2
        var c: [Float] = [10, 20, 30, 40]
        BLAS.gemm(m: 2, n: 2, k: 3, a: a, lda: 3, b: b, ldb: 3, transposeB: true, c: &c, ldc: 2, beta: 1)
        #expect(c == [14, 22, 40, 45])
    }
}
