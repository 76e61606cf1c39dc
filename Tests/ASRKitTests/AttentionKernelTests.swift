import CKernels
import CLowPrecision
import Foundation
import Testing
@testable import ASRKit

/// The fused attention kernel (Sources/CKernels/attention.c) against the definition, computed in Double:
/// out = softmax(scale · q·kᵀ) · v, per query. Shapes cover partial tiles (t and d not multiples of 12 or 32), one
/// and several key chunks (192 keys each), and q, k, v interleaved in one wide matrix as the model lays them out.
@Suite struct AttentionKernelTests {
    @Test(arguments: [(1, 64), (13, 64), (33, 7), (145, 80), (300, 64), (500, 12)])
    func fusedHeadMatchesTheDefinition(frames t: Int, headSize d: Int) {
        let (q, k, v, ld) = interleavedHead(frames: t, headSize: d, magnitude: 1.5)
        let out = runKernel(t: t, d: d, q: q, k: k, v: v, ld: ld)
        let reference = referenceAttention(t: t, d: d, q: q, k: k, v: v, ld: ld)
        let worst = zip(out, reference).map { abs(Double($0) - $1) }.max()!
        #expect(worst < 2e-5, "t \(t), d \(d): max |Δ| \(worst)")
    }

    /// Scores of several hundred (far beyond exp's range) with the largest ones late in the sequence: the running
    /// softmax must rescale what earlier chunks accumulated rather than overflow or lose them.
    @Test func largeScoresLateInTheSequenceAreRescaledNotLost() {
        let (t, d) = (400, 16)
        var (q, k, v, ld) = interleavedHead(frames: t, headSize: d, magnitude: 1)
        for key in 300..<t { for p in 0..<d { k[key * ld + p] *= 40 } }   // keys in the third chunk dominate
        for query in 0..<t { for p in 0..<d { q[query * ld + p] *= 8 } }
        let out = runKernel(t: t, d: d, q: q, k: k, v: v, ld: ld)
        let reference = referenceAttention(t: t, d: d, q: q, k: k, v: v, ld: ld)
        #expect(out.allSatisfy { $0.isFinite })
        let worst = zip(out, reference).map { abs(Double($0) - $1) }.max()!
        #expect(worst < 1e-4, "max |Δ| \(worst)")
    }

    /// The bf16 kernel (reduced-precision models on AVX512_BF16) against the definition with q·scale, k and v rounded
    /// to bf16 as the kernel rounds them, computed in Double: what is left is the probabilities' own rounding to bf16
    /// (relative 2⁻⁹ each), so the output is within a few thousandths of |v|. Odd head sizes and odd frame counts
    /// exercise the zero padding of the last dim pair and key pair. Elsewhere the kernel is not run.
    @Test(arguments: [(1, 64), (13, 64), (33, 7), (145, 80), (193, 64), (300, 64), (500, 12)])
    func bf16HeadMatchesTheDefinitionOnRoundedInputs(frames t: Int, headSize d: Int) throws {
        guard asr_attention_bf16_available() != 0 else { return }
        let (q, k, v, ld) = interleavedHead(frames: t, headSize: d, magnitude: 1.5)
        let scale = 1 / Float(d).squareRoot()
        let ldo = d + 3
        var out = [Float](repeating: .nan, count: t * ldo)
        var workspace = [Float](repeating: .nan, count: asr_attention_workspace_bf16(t, d))
        asr_attention_head_bf16(t, d, q, k, v, ld, scale, &out, ldo, &workspace)
        #expect((0..<t).allSatisfy { row in out[(row * ldo + d)..<(row * ldo + ldo)].allSatisfy(\.isNaN) })
        let result = (0..<t).flatMap { row in out[(row * ldo)..<(row * ldo + d)] }
        func bf16(_ x: Float) -> Float {
            var bits: [UInt16] = [0]
            asr_f32_to_bf16(1, [x], &bits)
            return Float(bitPattern: UInt32(bits[0]) << 16)
        }
        // The kernel scales q before rounding, as transformers scales q before its product.
        let rq = q.map { bf16($0 * scale) }, rk = k.map(bf16), rv = v.map(bf16)
        let reference = referenceAttention(t: t, d: d, q: rq, k: rk, v: rv, ld: ld, scale: 1)
        let worst = zip(result, reference).map { abs(Double($0) - $1) }.max()!
        #expect(worst < 6e-3, "t \(t), d \(d): max |Δ| \(worst)")
        // And it is not the fp32 kernel: the rounding shows.
        let exact = runKernel(t: t, d: d, q: q, k: k, v: v, ld: ld)
        #expect(zip(result, exact).contains { $0 != $1 })
    }

    /// q, k and v for one head as slices of a (t × 3·ld/3) matrix, like the model's fused projection output, with
    /// a deterministic pseudo-random fill; `ld` is wider than 3·d so reading past a head's slice would show.
    private func interleavedHead(frames t: Int, headSize d: Int, magnitude: Float)
        -> (q: [Float], k: [Float], v: [Float], ld: Int) {
        let ld = 3 * d + 5
        var state: UInt64 = 0x9E37_79B9_7F4A_7C15 &+ UInt64(t * 131 + d)
        func next() -> Float {
            state = state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
            return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * magnitude
        }
        let wide = (0..<(t * ld)).map { _ in next() }
        return (wide, Array(wide.dropFirst(d)) + [Float](repeating: 0, count: d),
                Array(wide.dropFirst(2 * d)) + [Float](repeating: 0, count: 2 * d), ld)
    }

    private func runKernel(t: Int, d: Int, q: [Float], k: [Float], v: [Float], ld: Int) -> [Float] {
        let ldo = d + 3
        var out = [Float](repeating: .nan, count: t * ldo)
        var workspace = [Float](repeating: .nan, count: asr_attention_workspace(t, d))
        asr_attention_head(t, d, q, k, v, ld, 1 / Float(d).squareRoot(), &out, ldo, &workspace)
        // Only each row's first d values are the head's output; the rest of the row must be untouched.
        #expect((0..<t).allSatisfy { row in out[(row * ldo + d)..<(row * ldo + ldo)].allSatisfy(\.isNaN) })
        return (0..<t).flatMap { row in out[(row * ldo)..<(row * ldo + d)] }
    }

    private func referenceAttention(t: Int, d: Int, q: [Float], k: [Float], v: [Float], ld: Int, scale: Double? = nil) -> [Double] {
        let scale = scale ?? 1 / Double(d).squareRoot()
        var result = [Double]()
        for i in 0..<t {
            let scores = (0..<t).map { j in (0..<d).reduce(0.0) { $0 + Double(q[i * ld + $1]) * Double(k[j * ld + $1]) } * scale }
            let top = scores.max()!
            let weights = scores.map { Foundation.exp($0 - top) }
            let sum = weights.reduce(0, +)
            for p in 0..<d { result.append((0..<t).reduce(0.0) { $0 + weights[$1] * Double(v[$1 * ld + p]) } / sum) }
        }
        return result
    }
}
