import CKernels
import CLowPrecision
import Foundation

/// The number format of the model's large matrix products, chosen when a model is loaded.
///
/// - `fp32`: the default; exact to transformers (1e-4 on every fixture checkpoint).
/// - `bf16`: weights rounded to bfloat16 once at load, activations rounded to bfloat16 before each product, sums in
///   fp32 (AVX512_BF16 dot products where the CPU has them).
/// - `int8`: weights quantized per output channel (symmetric int8), activations per row at run time (asymmetric
///   uint8), products summed in int32 (VNNI where the CPU has it) and scaled back to fp32.
///
/// Either reduced precision applies to the feature encoder's convolutions after the first, the feature projection,
/// the positional convolution and the transformer's projections and feed-forward layers, and (on AVX512_BF16, see
/// ``ReducedPrecisionKernels/bf16Attention``) to the attention scores in bf16. Layer norms, group norm, softmax, the
/// first convolution (one input channel) and the CTC head stay fp32. Their error
/// against fp32 is measured by `tools/precision/accuracy.py` and the parity tests (see the README).
public enum Precision: String, Sendable, CaseIterable, Codable {
    case fp32, bf16, int8
}

/// What this machine runs the reduced-precision products on (oneDNN's dispatch, after `ONEDNN_MAX_CPU_ISA`).
public enum ReducedPrecisionKernels {
    /// The instruction set oneDNN uses here ("avx512_core_bf16", "avx512_core_vnni", "avx2", ...).
    public static var instructionSet: String { String(cString: asr_lowp_isa()) }

    /// bf16 products run natively on AVX512_BF16 dot products.
    public static var bf16Native: Bool { asr_lowp_bf16_native() != 0 }

    /// bf16 products can run here at all (natively, or emulated on AVX-512 without BF16).
    public static var bf16Available: Bool { bf16Probe }
    private static let bf16Probe = asr_lowp_bf16_available() != 0

    /// int8 products use VNNI (int32 sums). Without it weights are kept within ±63 so that oneDNN's int16 pair sums
    /// cannot saturate.
    public static var int8VNNI: Bool { asr_lowp_int8_vnni() != 0 }

    /// The fp32 weight products (every Linear layer and convolution of an fp32 model) run on oneDNN where oneDNN runs
    /// AVX-512 (it dispatches on the CPU itself, so `OPENBLAS_CORETYPE` does not hold it back): on its matmul with the
    /// weights packed once at load into its own layout (`WeightMatrix.Storage.packed`; 2-16 % faster than its sgemm,
    /// which packs W on every call, on the model's shapes), or its sgemm for the few matrices made per call (the first
    /// conv layer with its GroupNorm folded in). Elsewhere OpenBLAS, the measured choice there.
    /// `ONEDNN_MAX_CPU_ISA=AVX2` selects OpenBLAS.
    public static var fp32OnOneDNN: Bool { fp32OnOneDNNProbe }
    private static let fp32OnOneDNNProbe = asr_lowp_sgemm_preferred() != 0

    /// Models loaded in bf16 or int8 compute their attention scores and the product with V on AVX512_BF16 dot
    /// products (`asr_attention_head_bf16`) where oneDNN runs bf16 natively and the CPU has the instructions; fp32
    /// elsewhere (and always for fp32 models).
    public static var bf16Attention: Bool { bf16AttentionProbe }
    private static let bf16AttentionProbe = asr_lowp_bf16_native() != 0 && asr_attention_bf16_available() != 0

    /// The format the fused attention kernel computes scores in for a model loaded in `precision`.
    static func attentionScores(for precision: Precision) -> Precision {
        precision != .fp32 && bf16Attention ? .bf16 : .fp32
    }

    /// One line for `asr info`: which kernel each precision runs on here.
    public static var summary: String {
        let bf16 = bf16Available
            ? (bf16Native ? "oneDNN matmul on AVX512_BF16, weights packed at load" : "oneDNN matmul, bf16 emulated (no AVX512_BF16)")
            : "not available on this CPU (falls back to fp32)"
        let int8 = int8VNNI ? "oneDNN int8 matmul on VNNI, codes packed at load" : "oneDNN u8s8s32 without VNNI (7-bit weights)"
        let scores = bf16Attention ? "bf16 (AVX512_BF16)" : "fp32"
        let fp32 = fp32OnOneDNN ? "oneDNN matmul, weights packed at load (OpenBLAS \(BLAS.kernel) for the rest)"
            : "OpenBLAS \(BLAS.kernel)"
        return "fp32: \(fp32); bf16: \(bf16); int8: \(int8); attention scores of bf16 and int8 models: "
            + "\(scores); oneDNN ISA \(instructionSet)"
    }

    /// What a model loaded in `precision` runs on here, stage by stage (for `--verbose`): the product kernels, the
    /// format of the conv front end, the positional convolution and the attention scores.
    public static func kernels(for precision: Precision) -> String {
        let scores = attentionScores(for: precision).rawValue
        switch precision {
        case .fp32:
            return (fp32OnOneDNN ? "oneDNN matmul, packed weights (AVX-512)" : "OpenBLAS \(BLAS.kernel) sgemm")
                + "; attention scores fp32"
        case .bf16:
            return (bf16Native ? "oneDNN bf16 matmul, packed weights (AVX512_BF16)" : "oneDNN bf16 matmul (emulated)")
                + "; attention scores \(scores)"
        case .int8:
            let conv = ConvFeatureEncoder.precision(for: .int8, layer: 2, groupNorm: false)
            let positional = GroupedTimeConvolution.precision(for: .int8)
            let front = conv == .int8 ? "int8" : "\(conv.rawValue) (its second layer int8 after a GroupNorm)"
            return (int8VNNI ? "oneDNN int8 matmul (VNNI)" : "oneDNN u8s8s32 (7-bit weights, no VNNI)")
                + "; conv front end \(front); positional conv \(positional.rawValue); attention scores \(scores)"
        }
    }

    /// The precision a load with `requested` actually runs, and a warning when it differs.
    static func effective(_ requested: Precision) -> (Precision, warning: String?) {
        if requested == .bf16 && !bf16Available {
            return (.fp32, "bf16 products are not available on this CPU (oneDNN ISA \(instructionSet)); using fp32")
        }
        return (requested, nil)
    }
}

/// Memory the product kernels read: owned, freed with the last reference.
final class OwnedBuffer<Element>: @unchecked Sendable {  // immutable after init
    let pointer: UnsafeMutablePointer<Element>
    let count: Int
    /// The mapped file whose bytes `pointer` reads (never written), or nil when the memory is this buffer's own.
    let mapping: MappedFile?

    init(count: Int) {
        pointer = .allocate(capacity: max(1, count))
        self.count = count
        mapping = nil
        pages = 0
    }

    /// `count` uninitialized elements starting on a cache line (what oneDNN's packed weights prefer).
    init(cacheAlignedCount count: Int) {
        pointer = UnsafeMutableRawPointer.allocate(byteCount: max(1, count) * MemoryLayout<Element>.stride, alignment: 64)
            .bindMemory(to: Element.self, capacity: max(1, count))
        self.count = count
        mapping = nil
        pages = 0
    }

    /// `count` zeroed elements in pages of their own (an anonymous mapping), given back to the kernel when the buffer
    /// goes: for temporaries of a load (weights before packing), which in the heap would leave holes the process
    /// keeps (the CLI keeps freed memory for reuse). nil when the mapping fails.
    init?(temporaryCount count: Int) {
        let bytes = max(1, count * MemoryLayout<Element>.stride)
        guard let address = mmap(nil, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              address != MAP_FAILED else { return nil }
        pointer = address.bindMemory(to: Element.self, capacity: max(1, count))
        self.count = count
        mapping = nil
        pages = bytes
    }

    /// `count` elements read in place inside `mapping`, which this keeps alive; they are only ever read.
    init(mapped pointer: UnsafePointer<Element>, count: Int, mapping: MappedFile) {
        self.pointer = UnsafeMutablePointer(mutating: pointer)
        self.count = count
        self.mapping = mapping
        pages = 0
    }

    /// Bytes of an anonymous mapping of its own (`init(temporaryCount:)`), else 0.
    private let pages: Int

    deinit {
        if pages > 0 {
            munmap(pointer, pages)
        } else if mapping == nil {
            UnsafeMutableRawPointer(pointer).deallocate()
        }
    }
}

/// A weight matrix W (n × k, PyTorch's layout: one row per output channel) in the precision the model was loaded
/// with. The forward pass asks it for C = A · Wᵀ, whatever the storage.
struct WeightMatrix: Sendable {
    enum Storage: Sendable {
        case fp32(FloatStorage)
        case bf16(OwnedBuffer<UInt16>)
        /// fp32 or bf16 weights packed once, at load, into the blocked layout oneDNN's matmul reads on this CPU
        /// (`asr_pack_weights`), where that matmul runs its AVX-512 kernels: each call then skips packing W itself.
        case packed(OwnedBuffer<UInt8>, bf16: Bool)
        /// int8 codes, per-row scales, per-row code sums (for the activations' zero point).
        case int8(OwnedBuffer<Int8>, scales: [Float], rowSums: [Int32])
        /// The same, the codes packed once for oneDNN's int8 matmul (where VNNI and its brgemm kernels run).
        case int8Packed(OwnedBuffer<UInt8>, scales: [Float], rowSums: [Int32])
    }

    /// Output channels (rows of W) and input features (columns).
    let n: Int, k: Int
    let storage: Storage

    var precision: Precision {
        switch storage {
        case .fp32: .fp32
        case .bf16: .bf16
        case .packed(_, let bf16): bf16 ? .bf16 : .fp32
        case .int8, .int8Packed: .int8
        }
    }

    /// W converted once: rounded to bf16, or quantized per output channel to int8; fp32 and bf16 packed for oneDNN's
    /// matmul where it runs AVX-512 kernels (fp32 only where `ReducedPrecisionKernels.fp32OnOneDNN`, bf16 only where
    /// `bf16Native`) unless `pack` is false (a matrix made for one call, where packing would cost more than it saves).
    init(_ values: FloatStorage, n: Int, k: Int, precision: Precision, pack: Bool = true) {
        precondition(values.count == n * k)
        self.n = n
        self.k = k
        let packs = pack && Self.packs(precision)
        switch precision {
        case .fp32:
            storage = packs ? Self.packed(values.pointer, bf16: false, n: n, k: k) ?? .fp32(values) : .fp32(values)
        case .bf16:
            // Rounded weights that are about to be packed are a temporary in pages of their own.
            let buffer = (packs ? OwnedBuffer<UInt16>(temporaryCount: n * k) : nil) ?? OwnedBuffer<UInt16>(count: n * k)
            asr_f32_to_bf16(n * k, values.pointer, buffer.pointer)
            storage = packs ? Self.packed(buffer.pointer, bf16: true, n: n, k: k) ?? .bf16(buffer) : .bf16(buffer)
        case .int8:
            let codes = (packs ? OwnedBuffer<Int8>(temporaryCount: n * k) : nil) ?? OwnedBuffer<Int8>(count: n * k)
            var scales = [Float](repeating: 0, count: n)
            var sums = [Int32](repeating: 0, count: n)
            let maxCode: Int32 = ReducedPrecisionKernels.int8VNNI ? 127 : 63
            asr_quantize_weights_s8(Int32(n), Int32(k), values.pointer, maxCode, codes.pointer, &scales, &sums)
            storage = packs ? Self.packedInt8(codes.pointer, scales: scales, rowSums: sums, n: n, k: k)
                ?? .int8(codes, scales: scales, rowSums: sums) : .int8(codes, scales: scales, rowSums: sums)
        }
        if case .fp32 = storage {} else { values.releaseMappedPages() }
    }

    /// Whether weights loaded in `precision` are packed for oneDNN's matmul on this CPU (where its brgemm kernels run
    /// that format: fp32 on AVX-512, bf16 on AVX512_BF16, int8 on VNNI; the 7-bit codes of non-VNNI CPUs stay on
    /// gemm_u8s8s32, whose int16 pair sums they are sized for). `asr_packed_weights_bytes` has the last word per shape.
    static func packs(_ precision: Precision) -> Bool {
        switch precision {
        case .fp32: ReducedPrecisionKernels.fp32OnOneDNN
        case .bf16: ReducedPrecisionKernels.bf16Native
        case .int8: ReducedPrecisionKernels.int8VNNI
        }
    }

    /// W (n × k, fp32 or bf16 bits) packed for oneDNN's matmul, or nil where it has no AVX-512 kernels for it here.
    static func packed(_ w: UnsafeRawPointer, bf16: Bool, n: Int, k: Int) -> Storage? {
        packedBuffer(w, format: bf16 ? 1 : 0, n: n, k: k).map { .packed($0, bf16: bf16) }
    }

    /// int8 codes (n × k) packed for oneDNN's int8 matmul, or nil where it has no brgemm kernels for them here (callers
    /// ask `packs(.int8)` first).
    static func packedInt8(_ codes: UnsafePointer<Int8>, scales: [Float], rowSums: [Int32], n: Int, k: Int) -> Storage? {
        packedBuffer(codes, format: 2, n: n, k: k).map { .int8Packed($0, scales: scales, rowSums: rowSums) }
    }

    private static func packedBuffer(_ w: UnsafeRawPointer, format: Int32, n: Int, k: Int) -> OwnedBuffer<UInt8>? {
        let bytes = asr_packed_weights_bytes(format, Int32(n), Int32(k))
        guard bytes > 0 else { return nil }
        let buffer = OwnedBuffer<UInt8>(cacheAlignedCount: bytes)
        let status = asr_pack_weights(format, Int32(n), Int32(k), w, buffer.pointer)
        precondition(status == 0, "oneDNN could not pack a \(n)×\(k) weight (status \(status))")
        return buffer
    }

    /// Whether `multiply` accepts rows of A that overlap (lda < k): the bf16, int8 and packed products copy or convert
    /// A row by row into their own scratch, so a convolution's overlapping windows can be read in place; BLAS needs
    /// lda ≥ k.
    var readsOverlappingRows: Bool {
        if case .fp32 = storage { return false }
        return true
    }

    /// C (m × n, rows `ldc` apart) = A (m × k, rows `lda` apart) · Wᵀ, plus C's previous contents when `accumulate`
    /// or else `bias` (n) when given, then `activation` in place. Rows are split across `BLAS.threads` threads unless
    /// `split` is false (callers already running in parallel); each thread adds the bias and applies the activation
    /// to its own rows right after its product, while they are in cache (the bias in the same pass as the scaling for
    /// bf16 and int8). The result is the same float for float as filling C with the bias, multiplying with
    /// `accumulate`, then applying the activation over all of C.
    func multiply(m: Int, a: UnsafePointer<Float>, lda: Int, into c: UnsafeMutablePointer<Float>, ldc: Int,
                  accumulate: Bool, bias: UnsafePointer<Float>? = nil, activation: Activation? = nil, split: Bool = true) {
        precondition(bias == nil || !accumulate, "a bias is added to a fresh product, not accumulated")
        let (n, k) = (self.n, self.k)
        let shared = bias.map { SharedPointer(base: UnsafeMutablePointer(mutating: $0)) }
        // The activation on rows [0, rows) of a block of C.
        @Sendable func finish(_ rows: Int, _ c: UnsafeMutablePointer<Float>) {
            guard let activation, activation != .identity else { return }
            if ldc == n { return activation.apply(UnsafeMutableBufferPointer(start: c, count: rows * n)) }
            for r in 0..<rows { activation.apply(UnsafeMutableBufferPointer(start: c + r * ldc, count: n)) }
        }
        switch storage {
        case .fp32(let w):
            let weights = SharedPointer(base: UnsafeMutablePointer(mutating: w.pointer))
            rowParts(m: m, a: a, lda: lda, c: c, ldc: ldc, split: split) { rows, a, c in
                if let bias = shared?.base { c.fillRows(rows, stride: ldc, with: bias, count: n) }
                let beta: Float = accumulate || shared != nil ? 1 : 0
                if ReducedPrecisionKernels.fp32OnOneDNN {
                    let status = asr_sgemm_onednn(Int32(rows), Int32(n), Int32(k), a, Int32(lda), weights.base, c,
                                                  Int32(ldc), beta)
                    precondition(status == 0, "oneDNN sgemm (\(rows)×\(n)×\(k)) failed with status \(status)")
                } else {
                    BLAS.gemm(m: rows, n: n, k: k, a: a, lda: lda, b: weights.base, ldb: k, transposeB: true,
                              c: c, ldc: ldc, beta: beta, split: false)
                }
                finish(rows, c)
            }
        case .bf16(let w):
            let weights = SharedPointer(base: w.pointer)
            rowParts(m: m, a: a, lda: lda, c: c, ldc: ldc, split: split) { rows, a, c in
                let status = asr_gemm_bf16(Int32(rows), Int32(n), Int32(k), a, Int32(lda), weights.base, shared?.base, c,
                                           Int32(ldc), accumulate ? 1 : 0)
                precondition(status == 0, "oneDNN bf16 product (\(rows)×\(n)×\(k)) failed with status \(status)")
                finish(rows, c)
            }
        case .packed(let w, let bf16):
            let weights = SharedPointer(base: w.pointer)
            rowParts(m: m, a: a, lda: lda, c: c, ldc: ldc, split: split) { rows, a, c in
                let status = asr_gemm_packed(bf16 ? 1 : 0, Int32(rows), Int32(n), Int32(k), a, Int32(lda), weights.base,
                                             shared?.base, c, Int32(ldc), accumulate ? 1 : 0)
                precondition(status == 0, "oneDNN product on packed weights (\(rows)×\(n)×\(k)) failed with status \(status)")
                finish(rows, c)
            }
        case .int8(_, let scales, let sums), .int8Packed(_, let scales, let sums):
            let (codes, packedCodes): (SharedPointer<Int8>?, SharedPointer<UInt8>?) = switch storage {
            case .int8(let w, _, _): (SharedPointer(base: w.pointer), nil)
            case .int8Packed(let w, _, _): (nil, SharedPointer(base: w.pointer))
            default: (nil, nil)
            }
            scales.withUnsafeBufferPointer { scales in
                sums.withUnsafeBufferPointer { sums in
                    let (s, r) = (SharedPointer(base: UnsafeMutablePointer(mutating: scales.baseAddress!)),
                                  SharedPointer(base: UnsafeMutablePointer(mutating: sums.baseAddress!)))
                    rowParts(m: m, a: a, lda: lda, c: c, ldc: ldc, split: split) { rows, a, c in
                        let status = asr_gemm_int8(Int32(rows), Int32(n), Int32(k), a, Int32(lda), codes?.base,
                                                   packedCodes?.base, s.base, shared?.base, r.base, c, Int32(ldc),
                                                   accumulate ? 1 : 0)
                        precondition(status == 0, "oneDNN int8 product (\(rows)×\(n)×\(k)) failed with status \(status)")
                        finish(rows, c)
                    }
                }
            }
        }
    }

    /// Row blocks of A and C across threads, split as `BLAS.gemm` splits fp32 products.
    private func rowParts(m: Int, a: UnsafePointer<Float>, lda: Int, c: UnsafeMutablePointer<Float>, ldc: Int, split: Bool,
                          _ body: @Sendable (Int, UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void) {
        let (sharedA, sharedC) = (SharedPointer(base: UnsafeMutablePointer(mutating: a)), SharedPointer(base: c))
        BLAS.forEachRowBlock(m: m, n: n, k: k, split: split) { r0, rows in
            body(rows, sharedA.base + r0 * lda, sharedC.base + r0 * ldc)
        }
    }
}

/// This CPU's peak for each number format, measured (not looked up): one core running 12 independent chains of the
/// widest multiply-add instruction it has for the format. `asr bench` divides each stage's operations by these, so
/// anyone can see which stage is far from its limit on the machine at hand.
package enum ComputePeak {
    /// One core's peak in operations per second (multiply and add counted apart) for products in `precision`, and the
    /// instruction measured; nil where nothing could be measured (not x86-64). bf16 without AVX512_BF16 is emulated
    /// on fp32 FMAs, so its limit is fp32's.
    package static func measure(_ precision: Precision, seconds: Double = 0.05) -> (opsPerSecond: Double, instruction: String)? {
        var format: Int32 = switch precision {
        case .fp32: 0
        case .bf16: 1
        case .int8: 2
        }
        var name: UnsafePointer<CChar>?
        var rate = asr_peak_ops_per_second(format, seconds, &name)
        var instruction = name.map { String(cString: $0) } ?? "none"
        if rate == 0 && precision == .bf16 {
            format = 0
            rate = asr_peak_ops_per_second(format, seconds, &name)
            instruction = (name.map { String(cString: $0) } ?? "none") + ", bf16 emulated"
        }
        return rate > 0 ? (rate, instruction) : nil
    }
}
