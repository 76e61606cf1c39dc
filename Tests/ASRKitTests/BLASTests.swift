import Foundation
import Testing
@testable import ASRKit

@Suite(.serialized) struct BLASTests {
    /// Debian's OpenBLAS falls back to SSE3 "Prescott" kernels on CPUs it does not know. Simulate that and check that
    /// the selection moves to the kernel the CPU's instruction set allows.
    @Test func slowFallbackKernelIsReplacedByTheFastestTheCPUSupports() throws {
        let original = BLAS.currentKernel()
        // forceKernel leaves OPENBLAS_CORETYPE unset (which selectFastestKernel needs); put the environment back as
        // it was, or every asr the other tests start afterwards picks another kernel than this process uses.
        let coretype = getenv("OPENBLAS_CORETYPE").map { String(cString: $0) }
        defer {
            BLAS.forceKernel(original.uppercased())
            if let coretype { setenv("OPENBLAS_CORETYPE", coretype, 1) }
        }
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

    /// Products big enough to be split across threads (by rows), tall and wide, in every operand layout, with alpha
    /// and accumulation, against a Double reference. Leading dimensions wider than the operands catch a part reading
    /// or writing outside its block.
    @Test(arguments: [(700, 64, 80), (100, 600, 64), (333, 333, 40), (64, 2000, 17)])
    func splitProductsMatchTheDefinition(m: Int, n: Int, k: Int) {
        let threads = BLAS.threads
        BLAS.setThreads(max(2, threads))   // the split needs at least two; the result must not depend on it
        defer { BLAS.setThreads(threads) }
        #expect(m * n * k >= 1 << 21, "too small to be split")
        var state: UInt64 = UInt64(m * 1_000_003 + n * 1009 + k)
        func random() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return Float(state >> 40) / Float(1 << 24) * 2 - 1
        }
        for transposeA in [false, true] {
            for transposeB in [false, true] {
                let (lda, ldb, ldc) = ((transposeA ? m : k) + 3, (transposeB ? k : n) + 5, n + 7)
                let a = (0..<((transposeA ? k : m) * lda)).map { _ in random() }
                let b = (0..<((transposeB ? n : k) * ldb)).map { _ in random() }
                let original = (0..<(m * ldc)).map { _ in random() }
                var c = original
                BLAS.gemm(m: m, n: n, k: k, a: a, lda: lda, transposeA: transposeA, b: b, ldb: ldb,
                          transposeB: transposeB, c: &c, ldc: ldc, alpha: 0.5, beta: 1)
                var worst = 0.0
                for i in 0..<m {
                    for j in 0..<n {
                        var sum = 0.0
                        for p in 0..<k {
                            let x = transposeA ? a[p * lda + i] : a[i * lda + p]
                            let y = transposeB ? b[j * ldb + p] : b[p * ldb + j]
                            sum += Double(x) * Double(y)
                        }
                        worst = max(worst, abs(Double(c[i * ldc + j]) - (0.5 * sum + Double(original[i * ldc + j]))))
                    }
                    // Padding columns past n are not C's: untouched.
                    #expect(c[(i * ldc + n)..<(i * ldc + ldc)] == original[(i * ldc + n)..<(i * ldc + ldc)])
                }
                #expect(worst < 1e-4, "\(m)×\(n)×\(k), Aᵀ \(transposeA), Bᵀ \(transposeB): max |Δ| \(worst)")
            }
        }
    }
}
