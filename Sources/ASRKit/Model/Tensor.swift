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

    init(rows: Int, cols: Int, storage: [Float]) {
        precondition(storage.count == rows * cols)
        self.rows = rows
        self.cols = cols
        self.storage = storage
    }
}

/// A PyTorch `nn.Linear`: weight (out × in) as stored, so y = x · Wᵀ + b.
struct Linear: Sendable {
    let weight: [Float]
    let bias: [Float]?
    let inFeatures: Int
    let outFeatures: Int

    /// y (rows × out) = x (rows × in) · Wᵀ + b
    func callAsFunction(_ x: Matrix) -> Matrix {
        precondition(x.cols == inFeatures)
        var y = Matrix(rows: x.rows, cols: outFeatures)
        apply(x, into: &y)
        return y
    }

    func apply(_ x: Matrix, into y: inout Matrix) {
        precondition(x.cols == inFeatures && y.cols == outFeatures && y.rows == x.rows)
        let rows = x.rows, n = outFeatures
        y.storage.withUnsafeMutableBufferPointer { out in
            if let bias {
                for r in 0..<rows { for j in 0..<n { out[r * n + j] = bias[j] } }
            }
            x.storage.withUnsafeBufferPointer { input in
                weight.withUnsafeBufferPointer { w in
                    BLAS.gemm(m: rows, n: n, k: inFeatures, a: input.baseAddress!, lda: inFeatures,
                              b: w.baseAddress!, ldb: inFeatures, transposeB: true,
                              c: out.baseAddress!, ldc: n, beta: bias == nil ? 0 : 1)
                }
            }
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

    /// GroupNorm with one group per channel: each column normalised over time (the rows), in place.
    func normalizePerChannelOverTime(_ x: inout Matrix) {
        let rows = x.rows, cols = x.cols
        precondition(weight.count == cols)
        guard rows > 0 else { return }
        var mean = [Double](repeating: 0, count: cols)
        var squares = [Double](repeating: 0, count: cols)
        x.storage.withUnsafeMutableBufferPointer { data in
            for r in 0..<rows { for j in 0..<cols { mean[j] += Double(data[r * cols + j]) } }
            for j in 0..<cols { mean[j] /= Double(rows) }
            for r in 0..<rows { for j in 0..<cols { let d = Double(data[r * cols + j]) - mean[j]; squares[j] += d * d } }
            var scale = [Float](repeating: 0, count: cols)
            var shift = [Float](repeating: 0, count: cols)
            for j in 0..<cols {
                let inverseStd = 1 / (squares[j] / Double(rows) + Double(eps)).squareRoot()
                scale[j] = Float(inverseStd * Double(weight[j]))
                shift[j] = Float(Double(bias[j]) - mean[j] * inverseStd * Double(weight[j]))
            }
            for r in 0..<rows { for j in 0..<cols { data[r * cols + j] = data[r * cols + j] * scale[j] + shift[j] } }
        }
    }
}

extension Matrix {
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
