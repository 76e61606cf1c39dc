import Foundation

/// WavLM's relative position bias (WavLMAttention): a learned bias per head for each bucket of the key's offset from
/// the query (`rel_attn_embed`, in the first layer only, shared by all), scaled in each layer by a gate computed
/// from that layer's input (`gru_rel_pos_linear`, `gru_rel_pos_const`), and added to the attention scores.
struct RelativePositionBuckets: Sendable {
    /// `encoder.layers.0.attention.rel_attn_embed.weight`: (num_buckets, heads).
    let embedding: [Float]
    let buckets: Int, maxDistance: Int, heads: Int

    /// The bucket of a key `relative` frames after the query (negative: before), as transformers'
    /// `_relative_positions_bucket` computes it: half the buckets per direction, exact below a quarter of them,
    /// logarithmic up to `maxDistance`. The logarithm is evaluated in Float, as there.
    static func bucket(_ relative: Int, buckets: Int, maxDistance: Int) -> Int {
        let half = buckets / 2
        let base = relative > 0 ? half : 0
        let distance = abs(relative)
        let maxExact = half / 2
        if distance < maxExact { return base + distance }
        let scale = Float(log(Double(maxDistance) / Double(maxExact)))
        let large = Float(maxExact) + logf(Float(distance) / Float(maxExact)) / scale * Float(half - maxExact)
        return base + min(Int(large), half - 1)
    }

    /// The bias of every offset for `t` frames: (heads, 2t − 1), offset j − i at index j − i + t − 1.
    func table(frames t: Int) -> [Float] {
        let width = 2 * t - 1
        var table = [Float](repeating: 0, count: heads * width)
        for index in 0..<width {
            let row = Self.bucket(index - (t - 1), buckets: buckets, maxDistance: maxDistance) * heads
            for head in 0..<heads { table[head * width + index] = embedding[row + head] }
        }
        return table
    }
}

/// One WavLM layer's gate on the shared position bias: for each head and query frame,
/// g = a · (b · c_h − 1) + 2 with (a, b) = σ(the two 4-sums of `gru_rel_pos_linear`(the head's slice of the input)).
struct RelativePositionGate: Sendable {
    let heads: Int, headDim: Int
    /// `.attention.gru_rel_pos_linear`: head_dim → 8.
    let projection: Linear
    /// `.attention.gru_rel_pos_const`: (1, heads, 1, 1).
    let constant: [Float]

    init(loading loader: inout CheckpointLoader, _ key: String, heads: Int, headDim: Int) throws {
        self.heads = heads
        self.headDim = headDim
        projection = try loader.linear(key + ".gru_rel_pos_linear", inFeatures: headDim, outFeatures: 8)
        constant = try loader.tensor(key + ".gru_rel_pos_const", shape: [1, heads, 1, 1])
    }

    /// (heads, t) gates for the layer's attention input `x` (t, heads · head_dim).
    func gates(_ x: Matrix) -> [Float] {
        let t = x.rows
        // The input's rows are heads side by side, so (t, hidden) is (t · heads, head_dim) in the same memory.
        let projected = projection(Matrix(rows: t * heads, cols: headDim, storage: x.storage))  // (t · heads, 8)
        var gates = [Float](repeating: 0, count: heads * t)
        let v = projected.storage
        for i in 0..<t {
            for head in 0..<heads {
                let p = (i * heads + head) * 8
                let a = Activation.sigmoid(v[p] + v[p + 1] + v[p + 2] + v[p + 3])
                let b = Activation.sigmoid(v[p + 4] + v[p + 5] + v[p + 6] + v[p + 7])
                gates[head * t + i] = a * (b * constant[head] - 1) + 2
            }
        }
        return gates
    }
}

/// What one layer adds to its attention scores: per head, gate(query) · table(key − query).
struct AttentionBias {
    /// (heads, t)
    let gates: [Float]
    /// (heads, 2t − 1), from ``RelativePositionBuckets/table(frames:)``.
    let table: [Float]

    /// scores (t, t) of `head` += gate · bias, row by row.
    func add(head: Int, to scores: UnsafeMutablePointer<Float>, frames t: Int) {
        let width = 2 * t - 1
        gates.withUnsafeBufferPointer { g in
            table.withUnsafeBufferPointer { b in
                for i in 0..<t {
                    let gate = g[head * t + i]
                    // Offsets j − i for j = 0..<t start at −i: index t − 1 − i of the head's row.
                    let bias = b.baseAddress! + head * width + (t - 1 - i)
                    let row = scores + i * t
                    for j in 0..<t { row[j] += gate * bias[j] }
                }
            }
        }
    }
}
