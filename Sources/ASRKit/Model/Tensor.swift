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
}

/// A PyTorch `nn.Linear`: weight (out × in) as stored, so y = x · Wᵀ + b.
struct Linear: Sendable {
    let weight: FloatStorage
    let bias: [Float]?
    let inFeatures: Int
    let outFeatures: Int

    /// y (rows × out) = x (rows × in) · Wᵀ + b
    func callAsFunction(_ x: Matrix) -> Matrix {
        precondition(x.cols == inFeatures)
        var y = Matrix(uninitializedRows: x.rows, cols: outFeatures)  // apply writes every element
        y.storage.withUnsafeMutableBufferPointer { apply(x, into: $0.baseAddress!, ldc: outFeatures) }
        return y
    }

    /// Writes x · Wᵀ + b into `out`, a (rows × out) block of a matrix whose rows are `ldc` floats apart (so several
    /// projections can fill side-by-side columns of one matrix).
    func apply(_ x: Matrix, into out: UnsafeMutablePointer<Float>, ldc: Int) {
        precondition(x.cols == inFeatures && ldc >= outFeatures)
        let rows = x.rows, n = outFeatures
        if let bias {
            for r in 0..<rows { (out + r * ldc).update(from: bias, count: n) }
        }
        x.storage.withUnsafeBufferPointer { input in
            BLAS.gemm(m: rows, n: n, k: inFeatures, a: input.baseAddress!, lda: inFeatures,
                      b: weight.pointer, ldb: inFeatures, transposeB: true,
                      c: out, ldc: ldc, beta: bias == nil ? 0 : 1)
        }
    }
}

/// Affine parameters of a LayerNorm or GroupNorm.
struct NormParameters: Sendable {
    let weight: [Float]
    let bias: [Float]
    let eps: Float

    /// LayerNorm over each row (the channel axis), in place.
    func layerNorm(_ x: inout Matrix) {
        let cols = x.cols
        precondition(weight.count == cols)
        x.storage.withUnsafeMutableBufferPointer { data in
            for r in 0..<x.rows {
                let row = UnsafeMutableBufferPointer(rebasing: data[(r * cols)..<((r + 1) * cols)])
                var sum: Double = 0
                for v in row { sum += Double(v) }
                let mean = sum / Double(cols)
                var squares: Double = 0
                for v in row { let d = Double(v) - mean; squares += d * d }
                let inverseStd = Float(1 / (squares / Double(cols) + Double(eps)).squareRoot())
                let meanF = Float(mean)
                for j in 0..<cols { row[j] = (row[j] - meanF) * inverseStd * weight[j] + bias[j] }
            }
        }
    }
}

extension Matrix {
    /// Each column j becomes x · scale[j] + shift[j].
    mutating func scaleAndShiftColumns(scale: [Float], shift: [Float]) {
        precondition(scale.count == cols && shift.count == cols)
        let rows = self.rows, cols = self.cols
        storage.withUnsafeMutableBufferPointer { data in
            scale.withUnsafeBufferPointer { a in
                shift.withUnsafeBufferPointer { b in
                    for r in 0..<rows {
                        let row = data.baseAddress! + r * cols
                        for j in 0..<cols { row[j] = row[j] * a[j] + b[j] }
                    }
                }
            }
        }
    }

    /// self += other, element-wise.
    mutating func add(_ other: Matrix) {
        precondition(rows == other.rows && cols == other.cols)
        storage.withUnsafeMutableBufferPointer { a in
            other.storage.withUnsafeBufferPointer { b in
                for i in a.indices { a[i] += b[i] }
            }
        }
    }

    mutating func apply(_ activation: Activation) {
        storage.withUnsafeMutableBufferPointer { activation.apply($0) }
    }
}
