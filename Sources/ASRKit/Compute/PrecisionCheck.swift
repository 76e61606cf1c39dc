import CLowPrecision
import Foundation

/// Checks of the reduced-precision kernels against references written independently here, on odd shapes and
/// strides. Run by the test suite in-process and, through `asr kernels --check`, once per instruction set that
/// oneDNN can be limited to (`ONEDNN_MAX_CPU_ISA`), so that every kernel a machine may run is checked.
package enum ReducedPrecisionCheck {
    /// (m, n, k) shapes: degenerate, odd, not multiples of any vector width, and one of the model's.
    /// Row counts that are multiples of 16 with dense rows take the packed products' direct path (read and written in
    /// place, bias and accumulation inside oneDNN's matmul); the others go through its scratch.
    static let shapes = [(1, 1, 1), (3, 5, 7), (17, 33, 65), (40, 19, 131), (67, 96, 768), (130, 48, 517), (32, 48, 96),
                         (64, 100, 768), (16, 40, 3072)]

    /// How A's and C's rows lie in memory: dense (lda = k, ldc = n), with padding between them, or A's overlapping
    /// (a convolution's windows read in place: lda < k).
    enum RowLayout: CaseIterable { case dense, padded, overlapping }

    /// Failures, one line each; empty when every check passed.
    package static func run() -> [String] {
        var failures: [String] = []
        failures += checkBF16Rounding()
        for (m, n, k) in shapes {
            for layout in [RowLayout.dense, .padded] { failures += checkEpilogue(m: m, n: n, k: k, layout: layout) }
            for accumulate in [false, true] {
                for layout in RowLayout.allCases {
                    // fp32 on BLAS needs rows apart by at least k; packed fp32 reads overlapping rows too.
                    failures += checkAgainstDouble(.fp32, m: m, n: n, k: k, accumulate: accumulate, layout: layout)
                    failures += checkInt8(m: m, n: n, k: k, accumulate: accumulate, layout: layout)
                    if ReducedPrecisionKernels.bf16Available {
                        failures += checkAgainstDouble(.bf16, m: m, n: n, k: k, accumulate: accumulate, layout: layout)
                    }
                }
            }
        }
        return failures
    }

    /// Deterministic values in ±scale, with a zero row and a row of one large outlier (per-row ranges matter).
    static func values(_ count: Int, seed: UInt64, scale: Float) -> [Float] {
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        return (0..<count).map { _ in
            state = state &* 6364136223846793005 &+ 1442695040888963407
            return (Float(Int64(bitPattern: state >> 11) % 20001) / 10000) * scale
        }
    }

    static func inputs(m: Int, n: Int, k: Int, layout: RowLayout) -> (a: [Float], lda: Int, w: [Float], c: [Float], ldc: Int) {
        let overlapping = layout == .overlapping
        let lda = switch layout {
        case .dense: k
        case .padded: k + 3
        case .overlapping: max(1, k / 3)
        }
        let ldc = layout == .padded ? n + 5 : n
        var a = values((m - 1) * lda + k, seed: UInt64(m * 7919 + k), scale: 2)
        if m > 2 && !overlapping { for j in 0..<k { a[lda + j] = 0 } }   // an all-zero row
        if m > 3 { a[2 * lda + k / 2] = 300 }                             // an outlier stretching some rows' range
        let w = values(n * k, seed: UInt64(n * 104729 + k), scale: 0.1)
        let c = values(m * ldc, seed: 99, scale: 1)
        return (a, lda, w, c, ldc)
    }

    /// int8: the kernel's result must equal, bit for bit, the same quantized codes multiplied with exact integer
    /// sums here and scaled the same way (a saturating int16 pair sum or a wrong zero-point fold shows up at once).
    static func checkInt8(m: Int, n: Int, k: Int, accumulate: Bool, layout: RowLayout) -> [String] {
        let (a, lda, wf, c0, ldc) = inputs(m: m, n: n, k: k, layout: layout)
        let weight = WeightMatrix(FloatStorage(copying: wf), n: n, k: k, precision: .int8)
        let (scales, sums): ([Float], [Int32])
        switch weight.storage {
        case .int8(_, let s, let r), .int8Packed(_, let s, let r): (scales, sums) = (s, r)
        default: return ["int8: weights not quantized"]
        }
        // The codes the product used (packed ones are not readable as a matrix): the same quantizer, the same input.
        let unpacked = WeightMatrix(FloatStorage(copying: wf), n: n, k: k, precision: .int8, pack: false)
        guard case .int8(let codes, let unpackedScales, _) = unpacked.storage, unpackedScales == scales else {
            return ["int8: weights quantized differently when packed"]
        }
        var c = c0
        a.withUnsafeBufferPointer { a in
            c.withUnsafeMutableBufferPointer { c in
                weight.multiply(m: m, a: a.baseAddress!, lda: lda, into: c.baseAddress!, ldc: ldc, accumulate: accumulate, split: false)
            }
        }
        // Reference: the same activation codes (quantization itself is checked against its definition below).
        var qa = [UInt8](repeating: 0, count: m * k), sa = [Float](repeating: 0, count: m), za = [Int32](repeating: 0, count: m)
        asr_quantize_rows_u8(Int32(m), Int32(k), a, Int32(lda), &qa, &sa, &za)
        var failures: [String] = []
        let maxCode = ReducedPrecisionKernels.int8VNNI ? 127 : 63
        for j in 0..<(n * k) where abs(Int(codes.pointer[j])) > maxCode {
            failures.append("int8 weight code \(codes.pointer[j]) outside ±\(maxCode)"); break
        }
        for i in 0..<m {
            // Each code must be the rounded value it stands for (within half a step, plus float slack).
            for j in 0..<k {
                let x = a[i * lda + j], q = Float(Int32(qa[i * k + j]) - za[i]) * sa[i]
                if abs(q - x) > sa[i] * 0.5001 + 1e-6, x >= -za[i].floatValue * sa[i], x <= Float(255 - za[i]) * sa[i] {
                    failures.append("int8 activation code off: row \(i) col \(j): \(x) coded as \(q)"); break
                }
            }
            for j in 0..<n {
                var exact: Int64 = 0
                for p in 0..<k { exact += Int64(qa[i * k + p]) * Int64(codes.pointer[j * k + p]) }
                let corrected = Int32(exact) - za[i] * sums[j]
                let term = sa[i] * scales[j] * Float(corrected)
                let expected = accumulate ? c0[i * ldc + j] + term : term
                let got = c[i * ldc + j]
                // Without accumulation: bit-exact. With it the C compiler may fuse the add into an FMA: one rounding.
                let ok = accumulate ? abs(got - expected) <= abs(expected) * 2e-7 + abs(term) * 2e-7 + 1e-30 : got == expected
                if !ok {
                    failures.append("int8 \(m)×\(n)×\(k)\(accumulate ? " +C" : ""): C[\(i),\(j)] = \(got), expected \(expected) (ISA \(ReducedPrecisionKernels.instructionSet))")
                    return failures
                }
            }
        }
        // Padding between rows of C (columns n..<ldc) is never written.
        for i in 0..<m { for j in n..<ldc where c[i * ldc + j] != c0[i * ldc + j] {
            failures.append("int8 \(m)×\(n)×\(k): wrote outside C's rows"); return failures
        } }
        return failures
    }

    /// bf16 round to nearest even, written independently of the C kernel.
    static func bf16(_ x: Float) -> Float {
        if x.isNaN { return x }
        let bits = x.bitPattern
        let lower = bits & 0xFFFF, upper = bits >> 16
        let roundUp = lower > 0x8000 || (lower == 0x8000 && upper & 1 == 1)
        return Float(bitPattern: (roundUp ? upper &+ 1 : upper) << 16)
    }

    static func checkBF16Rounding() -> [String] {
        var samples: [Float] = [0, -0, 1, -1, .infinity, -.infinity, .greatestFiniteMagnitude, .leastNonzeroMagnitude,
                                Float(bitPattern: 0x3F80_8000), Float(bitPattern: 0x3F81_8000), Float(bitPattern: 0x3F80_8001),
                                Float(bitPattern: 0x3F80_7FFF), Float(bitPattern: 0x7F7F_FFFF)]
        samples += values(4096, seed: 5, scale: 1000)
        var codes = [UInt16](repeating: 0, count: samples.count)
        asr_f32_to_bf16(samples.count, samples, &codes)
        var back = [Float](repeating: 0, count: samples.count)
        asr_bf16_to_f32(codes.count, codes, &back)
        for (x, y) in zip(samples, back) where bf16(x).bitPattern != y.bitPattern {
            return ["bf16 rounding: \(x) → \(y), expected \(bf16(x))"]
        }
        var nan: UInt16 = 0
        asr_f32_to_bf16(1, [Float.nan], &nan)
        var nanBack: Float = 0
        asr_bf16_to_f32(1, [nan], &nanBack)
        return nanBack.isNaN ? [] : ["bf16 rounding: NaN became \(nanBack)"]
    }

    /// fp32 and bf16 products: within the bound of fp32 accumulation of the inputs as the product sees them (exactly
    /// rounded to bf16, or as they are), against a Double reference.
    static func checkAgainstDouble(_ precision: Precision, m: Int, n: Int, k: Int, accumulate: Bool, layout: RowLayout) -> [String] {
        precondition(precision != .int8, "int8 is checked bit for bit by checkInt8")
        let (a, lda, wf, c0, ldc) = inputs(m: m, n: n, k: k, layout: layout)
        let weight = WeightMatrix(FloatStorage(copying: wf), n: n, k: k, precision: precision)
        if layout == .overlapping && !weight.readsOverlappingRows { return [] }
        // The inputs as the product sees them: rounded to bf16, or as they are.
        func seen(_ x: Float) -> Float { precision == .bf16 ? bf16(x) : x }
        let library = switch weight.storage {
        case .packed: "oneDNN matmul, packed weights"
        case .fp32: ReducedPrecisionKernels.fp32OnOneDNN ? "oneDNN sgemm" : "OpenBLAS"
        default: "oneDNN matmul"
        }
        let label = "\(precision.rawValue) (\(library), ISA \(ReducedPrecisionKernels.instructionSet), \(layout) rows)"
        var c = c0
        a.withUnsafeBufferPointer { a in
            c.withUnsafeMutableBufferPointer { c in
                weight.multiply(m: m, a: a.baseAddress!, lda: lda, into: c.baseAddress!, ldc: ldc, accumulate: accumulate, split: false)
            }
        }
        for i in 0..<m {
            for j in 0..<n {
                var exact = 0.0, magnitude = 0.0
                for p in 0..<k {
                    let term = Double(seen(a[i * lda + p])) * Double(seen(wf[j * k + p]))
                    exact += term
                    magnitude += abs(term)
                }
                let expected = accumulate ? Double(c0[i * ldc + j]) + exact : exact
                // fp32 sums of k products: error at most ~k·2⁻²⁴·Σ|terms| (a generous form of the classical bound).
                let bound = Double(k + 2) * 0x1p-24 * (magnitude + abs(Double(c0[i * ldc + j]))) + 1e-30
                if abs(Double(c[i * ldc + j]) - expected) > bound {
                    return ["\(label) \(m)×\(n)×\(k)\(accumulate ? " +C" : ""): C[\(i),\(j)] = \(c[i * ldc + j]), expected \(expected) ± \(bound)"]
                }
            }
        }
        for i in 0..<m { for j in n..<ldc where c[i * ldc + j] != c0[i * ldc + j] {
            return ["\(label) \(m)×\(n)×\(k): wrote outside C's rows"]
        } }
        return []
    }
}

extension ReducedPrecisionCheck {
    /// The bias and activation a product adds per row block as it ends (`multiply(bias:activation:)`) give, bit for
    /// bit, what filling C with the bias, accumulating the product and applying the activation afterwards gives, in
    /// every precision this machine runs, with the rows split across threads.
    static func checkEpilogue(m: Int, n: Int, k: Int, layout: RowLayout) -> [String] {
        let (a, lda, w, _, ldc) = inputs(m: m, n: n, k: k, layout: layout)
        let bias = values(n, seed: 7, scale: 0.5)
        var failures: [String] = []
        let precisions: [Precision] = ReducedPrecisionKernels.bf16Available ? [.fp32, .bf16, .int8] : [.fp32, .int8]
        for precision in precisions {
            let weight = WeightMatrix(FloatStorage(copying: w), n: n, k: k, precision: precision)
            var fused = [Float](repeating: .nan, count: m * ldc), separate = fused
            a.withUnsafeBufferPointer { a in
                bias.withUnsafeBufferPointer { b in
                    fused.withUnsafeMutableBufferPointer { c in
                        weight.multiply(m: m, a: a.baseAddress!, lda: lda, into: c.baseAddress!, ldc: ldc, accumulate: false,
                                        bias: b.baseAddress!, activation: .gelu)
                    }
                    separate.withUnsafeMutableBufferPointer { c in
                        c.baseAddress!.fillRows(m, stride: ldc, with: bias)
                        weight.multiply(m: m, a: a.baseAddress!, lda: lda, into: c.baseAddress!, ldc: ldc, accumulate: true)
                        for i in 0..<m { Activation.gelu.apply(UnsafeMutableBufferPointer(start: c.baseAddress! + i * ldc, count: n)) }
                    }
                }
            }
            for i in 0..<m {
                for j in 0..<n where fused[i * ldc + j].bitPattern != separate[i * ldc + j].bitPattern {
                    failures.append("\(precision.rawValue) \(m)×\(n)×\(k) with bias and GELU: C[\(i),\(j)] = \(fused[i * ldc + j]), "
                                    + "separately \(separate[i * ldc + j])")
                    break
                }
                if !failures.isEmpty { break }
                if (n..<ldc).contains(where: { !fused[i * ldc + $0].isNaN }) {
                    failures.append("\(precision.rawValue) \(m)×\(n)×\(k) with bias: wrote outside C's rows"); break
                }
            }
        }
        return failures
    }
}

private extension Int32 {
    var floatValue: Float { Float(self) }
}
