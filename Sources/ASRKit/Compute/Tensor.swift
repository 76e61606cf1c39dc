import CKernels
import Foundation

/// A row-major Float matrix: `rows` time steps × `cols` channels in the forward pass.
struct Matrix: Sendable {
    var rows: Int
    var cols: Int
    var storage: [Float]

    init(rows: Int, cols: Int) {
        self.rows = rows
        self.cols = cols
        storage = [Float](repeating: 0, count: rows * cols)
    }

    /// Storage left uninitialised, for outputs that are written in full before being read (GEMM with beta 0 or a
    /// bias fill): zeroing them first costs a memory pass over every activation.
    init(uninitializedRows rows: Int, cols: Int) {
        self.rows = rows
        self.cols = cols
        storage = [Float](unsafeUninitializedCapacity: rows * cols) { _, initialized in initialized = rows * cols }
    }

    init(rows: Int, cols: Int, storage: [Float]) {
        precondition(storage.count == rows * cols)
        self.rows = rows
        self.cols = cols
        self.storage = storage
    }
}

/// Float weights that are either owned or read in place from a memory-mapped F32 checkpoint (no copy: loading is
/// a page-table operation and the pages are shared with the page cache).
final class FloatStorage: @unchecked Sendable {  // immutable after init
    let pointer: UnsafePointer<Float>
    let count: Int
    /// Keeps a mapping alive while its bytes are used.
    private let mapping: MappedFile?
    private let ownsMemory: Bool

    /// A copy of `values`.
    init(copying values: [Float]) {
        let memory = UnsafeMutablePointer<Float>.allocate(capacity: max(1, values.count))
        values.withUnsafeBufferPointer { memory.initialize(from: $0.baseAddress!, count: values.count) }
        pointer = UnsafePointer(memory)
        count = values.count
        mapping = nil
        ownsMemory = true
    }

    /// `count` floats at `pointer`, inside `mapping`.
    init(mapped pointer: UnsafePointer<Float>, count: Int, mapping: MappedFile) {
        self.pointer = pointer
        self.count = count
        self.mapping = mapping
        ownsMemory = false
    }

    deinit {
        if ownsMemory { UnsafeMutablePointer(mutating: pointer).deallocate() }
    }

    var buffer: UnsafeBufferPointer<Float> { UnsafeBufferPointer(start: pointer, count: count) }
    var isMapped: Bool { mapping != nil }

    /// Hands the pages of a memory-mapped tensor back to the kernel (they would be read from the file again if
    /// touched): for weights converted to bf16 or int8 at load, whose F32 originals are never read again. Without
    /// it a reduced-precision model held both copies (base, int8: peak RSS 640 MB against fp32's 549 MB).
    func releaseMappedPages() {
        guard mapping != nil else { return }
        releaseMappedMemory(UnsafeRawBufferPointer(start: pointer, count: count * MemoryLayout<Float>.stride))
    }
}

/// Hands the whole pages inside `bytes` of a memory-mapped file back to the kernel (a neighbour sharing the first or
/// last page keeps it).
func releaseMappedMemory(_ bytes: UnsafeRawBufferPointer) {
    guard let base = bytes.baseAddress, bytes.count > 0 else { return }
    let page = Int(sysconf(Int32(_SC_PAGESIZE)))
    let start = (Int(bitPattern: base) + page - 1) / page * page
    let end = (Int(bitPattern: base) + bytes.count) / page * page
    if end > start, let address = UnsafeMutableRawPointer(bitPattern: start) {
        _ = madvise(address, end - start, Int32(MADV_DONTNEED))
    }
}

/// A PyTorch `nn.Linear`: weight (out × in) as stored, so y = x · Wᵀ + b.
struct Linear: Sendable {
    let weight: WeightMatrix
    let bias: [Float]?
    var inFeatures: Int { weight.k }
    var outFeatures: Int { weight.n }

    init(weight: WeightMatrix, bias: [Float]?) {
        self.weight = weight
        self.bias = bias
    }

    /// y (rows × out) = activation(x (rows × in) · Wᵀ + b)
    func callAsFunction(_ x: Matrix, activation: Activation? = nil) -> Matrix {
        precondition(x.cols == inFeatures)
        var y = Matrix(uninitializedRows: x.rows, cols: outFeatures)  // apply writes every element
        y.storage.withUnsafeMutableBufferPointer { apply(x, into: $0.baseAddress!, ldc: outFeatures, activation: activation) }
        return y
    }

    /// Writes activation(x · Wᵀ + b) into `out`, a (rows × out) block of a matrix whose rows are `ldc` floats apart
    /// (so several projections can fill side-by-side columns of one matrix). The bias and the activation are applied
    /// by each thread to its rows as its product ends (see `WeightMatrix.multiply`).
    func apply(_ x: Matrix, into out: UnsafeMutablePointer<Float>, ldc: Int, activation: Activation? = nil) {
        precondition(x.cols == inFeatures && ldc >= outFeatures)
        let rows = x.rows
        x.storage.withUnsafeBufferPointer { input in
            withPointer(to: bias) { bias in
                weight.multiply(m: rows, a: input.baseAddress!, lda: inFeatures, into: out, ldc: ldc, accumulate: false,
                                bias: bias, activation: activation)
            }
        }
    }
}

extension Matrix {
    /// Attention's Q, K and V (each t × h, t the rows of the inputs) one after the other in one (3t × h) matrix, every
    /// block with dense rows: q and k of `queryKeyInput`, v of `valueInput` (the same matrix except where Q and K are
    /// rotated first). Side by side in rows of 3h, each product would write rows with a stride of their own, which
    /// packed products copy out.
    static func attentionProjections(q: Linear, k: Linear, v: Linear, queryKeyInput: Matrix, valueInput: Matrix) -> Matrix {
        let (t, h) = (valueInput.rows, v.outFeatures)
        precondition(queryKeyInput.rows == t && q.outFeatures == h && k.outFeatures == h)
        var qkv = Matrix(uninitializedRows: 3 * t, cols: h)  // every block written below
        qkv.storage.withUnsafeMutableBufferPointer { out in
            q.apply(queryKeyInput, into: out.baseAddress!, ldc: h)
            k.apply(queryKeyInput, into: out.baseAddress! + t * h, ldc: h)
            v.apply(valueInput, into: out.baseAddress! + 2 * t * h, ldc: h)
        }
        return qkv
    }
}

/// `body` with a pointer to the elements of `values`, or nil when there are none.
func withPointer<T, R>(to values: [T]?, _ body: (UnsafePointer<T>?) throws -> R) rethrows -> R {
    guard let values else { return try body(nil) }
    return try values.withUnsafeBufferPointer { try body($0.baseAddress) }
}

/// Affine parameters of a LayerNorm or GroupNorm.
struct NormParameters: Sendable {
    let weight: [Float]
    let bias: [Float]
    let eps: Float

    /// LayerNorm over each row (the channel axis), in place; rows are split across threads.
    func layerNorm(_ x: inout Matrix) {
        let (rows, cols) = (x.rows, x.cols)
        x.storage.withUnsafeMutableBufferPointer { data in
            guard let base = data.baseAddress else { return }
            layerNorm(rows: rows, cols: cols, from: base, into: base)
        }
    }

    /// LayerNorm of each row of `x` into a new matrix (a pre-LN layer's normalised input, next to the residual it
    /// keeps): one pass, where copying `x` and normalising the copy in place took two, the copy on one thread.
    func normalized(_ x: Matrix) -> Matrix {
        var y = Matrix(uninitializedRows: x.rows, cols: x.cols)  // every row written
        x.storage.withUnsafeBufferPointer { input in
            y.storage.withUnsafeMutableBufferPointer { output in
                guard let from = input.baseAddress, let to = output.baseAddress else { return }
                layerNorm(rows: x.rows, cols: x.cols, from: from, into: to)
            }
        }
        return y
    }

    /// Rows of `from` normalised into `to` (which may be `from`), rows split across threads.
    private func layerNorm(rows: Int, cols: Int, from: UnsafePointer<Float>, into to: UnsafeMutablePointer<Float>) {
        precondition(weight.count == cols && bias.count == cols)
        let (weight, bias, eps) = (self.weight, self.bias, self.eps)
        let (source, target) = (SharedPointer(base: UnsafeMutablePointer(mutating: from)), SharedPointer(base: to))
        Parallel.ranges(rows, minimumPerPart: max(1, (1 << 15) / max(1, cols))) { part in
            let offset = part.lowerBound * cols
            asr_layer_norm_rows(source.base + offset, target.base + offset, part.count, cols, weight, bias, eps)
        }
    }
}

extension Matrix {
    /// Each column j becomes x · scale[j] + shift[j].
    mutating func scaleAndShiftColumns(scale: [Float], shift: [Float]) {
        precondition(scale.count == cols && shift.count == cols)
        let rows = self.rows, cols = self.cols
        storage.withUnsafeMutableBufferPointer { data in
            guard let base = data.baseAddress else { return }
            let shared = SharedPointer(base: base)
            Parallel.ranges(rows, minimumPerPart: max(1, (1 << 15) / max(1, cols))) { part in
                scale.withUnsafeBufferPointer { a in
                    shift.withUnsafeBufferPointer { b in
                        for r in part {
                            let row = shared.base + r * cols
                            for j in 0..<cols { row[j] = row[j] * a[j] + b[j] }
                        }
                    }
                }
            }
        }
    }

    /// self += other, element-wise, split across threads (the residual of every layer: on one thread the other core
    /// waited).
    mutating func add(_ other: Matrix) {
        precondition(rows == other.rows && cols == other.cols)
        forEachPart(with: other) { a, b, count in
            for i in 0..<count { a[i] += b[i] }
        }
    }

    /// self += other · factor, element-wise (the Conformer's half-step feed-forward: other · 0.5 + self).
    mutating func add(_ other: Matrix, scaledBy factor: Float) {
        precondition(rows == other.rows && cols == other.cols)
        forEachPart(with: other) { a, b, count in
            for i in 0..<count { a[i] = b[i] * factor + a[i] }
        }
    }

    /// `body(a, b, count)` on matching ranges of this matrix's and `other`'s elements, one range per thread.
    private mutating func forEachPart(with other: Matrix,
                                      _ body: @Sendable (UnsafeMutablePointer<Float>, UnsafePointer<Float>, Int) -> Void) {
        storage.withUnsafeMutableBufferPointer { a in
            other.storage.withUnsafeBufferPointer { b in
                guard let aBase = a.baseAddress, let bBase = b.baseAddress else { return }
                let (target, source) = (SharedPointer(base: aBase), SharedPointer(base: UnsafeMutablePointer(mutating: bBase)))
                Parallel.ranges(a.count, minimumPerPart: 1 << 15, alignment: 16) { part in
                    body(target.base + part.lowerBound, source.base + part.lowerBound, part.count)
                }
            }
        }
    }

    /// Element-wise, split across threads.
    mutating func apply(_ activation: Activation) {
        storage.withUnsafeMutableBufferPointer { data in
            guard let base = data.baseAddress else { return }
            let shared = SharedPointer(base: base)
            Parallel.ranges(data.count, minimumPerPart: 1 << 15, alignment: 16) { part in
                activation.apply(UnsafeMutableBufferPointer(start: shared.base + part.lowerBound, count: part.count))
            }
        }
    }
}

extension UnsafeMutablePointer where Pointee == Float {
    /// Each of `rows` rows, `stride` floats apart, starts with a copy of `values` (a bias before a beta-1 product).
    func fillRows(_ rows: Int, stride: Int, with values: [Float]) {
        values.withUnsafeBufferPointer { v in fillRows(rows, stride: stride, with: v.baseAddress!, count: v.count) }
    }

    /// The same, from `count` floats at `values`.
    func fillRows(_ rows: Int, stride: Int, with values: UnsafePointer<Float>, count: Int) {
        for r in 0..<rows { (self + r * stride).update(from: values, count: count) }
    }

    /// im2col: row r of this (rows × window) block is the `window` floats at source + r · rowStep (windows that may
    /// overlap, which BLAS cannot read in place).
    func copyWindows(from source: UnsafePointer<Float>, rowStep: Int, window: Int, rows: Int) {
        for r in 0..<rows { (self + r * window).update(from: source + r * rowStep, count: window) }
    }
}
