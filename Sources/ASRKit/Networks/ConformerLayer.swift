import Foundation

/// `<base>.encoder.layers.{n}` of a Conformer (Wav2Vec2ConformerEncoderLayer, Wav2Vec2BertEncoderLayer): half a
/// feed-forward, self-attention with the model's positions, a convolution module, half a feed-forward, LayerNorm.
/// Activations are (frames, hidden), time-major.
struct ConformerLayer: Sendable {
    let ffn1Norm: NormParameters            // .ffn1_layer_norm
    let ffn1: FeedForward                   // .ffn1
    let attentionNorm: NormParameters       // .self_attn_layer_norm
    let attention: ConformerAttention       // .self_attn
    let convolution: ConvolutionModule      // .conv_module
    let ffn2Norm: NormParameters            // .ffn2_layer_norm
    let ffn2: FeedForward                   // .ffn2
    let finalNorm: NormParameters           // .final_layer_norm

    /// `.ffn{1,2}` (and w2v-BERT's intermediate and adapter feed-forwards): Linear → activation → Linear.
    struct FeedForward: Sendable {
        let intermediate: Linear   // .intermediate_dense
        let output: Linear         // .output_dense
        let activation: Activation

        init(loading loader: inout CheckpointLoader, _ key: String, width: Int, inner: Int, activation: Activation,
             precision: Precision) throws {
            intermediate = try loader.linear(key + ".intermediate_dense", inFeatures: width, outFeatures: inner, precision: precision)
            output = try loader.linear(key + ".output_dense", inFeatures: inner, outFeatures: width, precision: precision)
            self.activation = activation
        }

        func callAsFunction(_ x: Matrix) -> Matrix {
            let inner = intermediate(x, activation: activation)   // (t, intermediate)
            return output(inner)                                  // (t, width)
        }
    }

    /// `.conv_module`: LayerNorm → pointwise conv (hidden → 2·hidden) → GLU → depthwise conv (K taps) → norm →
    /// activation → pointwise conv. The Conformer pads the depthwise conv on both sides ("same") and follows it with
    /// BatchNorm; w2v-BERT pads on the left only (causal) and follows it with LayerNorm.
    struct ConvolutionModule: Sendable {
        /// What follows the depthwise convolution.
        enum DepthwiseNorm: Sendable {
            /// `.batch_norm` in eval mode, folded: y = x · scale + shift.
            case batch(scale: [Float], shift: [Float])
            /// `.depthwise_layer_norm`.
            case layer(NormParameters)
        }

        let norm: NormParameters        // .layer_norm
        let pointwise1: Linear          // .pointwise_conv1 (2h, h, 1), no bias
        /// `.depthwise_conv.weight` (h, 1, K) stored as (K, h), so each tap is one contiguous row of channels.
        let depthwise: [Float]
        let kernel: Int
        /// Causal: output t sees inputs t − K + 1 … t; otherwise t − (K − 1)/2 … t + (K − 1)/2.
        let causal: Bool
        let depthwiseNorm: DepthwiseNorm
        let activation: Activation
        let pointwise2: Linear          // .pointwise_conv2 (h, h, 1), no bias

        /// `valid`: frames from there on are padding, zeroed after the first LayerNorm (w2v-BERT's conv_attention_mask).
        func callAsFunction(_ x: Matrix, valid: Int) -> Matrix {
            let t = x.rows, h = x.cols
            var y = norm.normalized(x)
            if valid < t { for i in (valid * h)..<(t * h) { y.storage[i] = 0 } }
            let doubled = pointwise1(y)                   // (t, 2h)
            var gated = Matrix(uninitializedRows: t, cols: h)
            doubled.storage.withUnsafeBufferPointer { a in
                gated.storage.withUnsafeMutableBufferPointer { g in
                    for r in 0..<t {
                        let row = a.baseAddress! + r * 2 * h, outRow = g.baseAddress! + r * h
                        // GLU over channels: first half · σ(second half)
                        for c in 0..<h { outRow[c] = row[c] * Activation.sigmoid(row[h + c]) }
                    }
                }
            }
            var convolved = Matrix(rows: t, cols: h)      // zeros: taps accumulate
            let pad = causal ? kernel - 1 : (kernel - 1) / 2
            gated.storage.withUnsafeBufferPointer { input in
                convolved.storage.withUnsafeMutableBufferPointer { output in
                    depthwise.withUnsafeBufferPointer { w in
                        for r in 0..<t {
                            let o = output.baseAddress! + r * h
                            for tap in 0..<kernel {
                                let source = r + tap - pad
                                guard source >= 0, source < t else { continue }
                                let i = input.baseAddress! + source * h, weights = w.baseAddress! + tap * h
                                for c in 0..<h { o[c] += weights[c] * i[c] }
                            }
                        }
                    }
                }
            }
            switch depthwiseNorm {
            case .batch(let scale, let shift): convolved.scaleAndShiftColumns(scale: scale, shift: shift)
            case .layer(let norm): norm.layerNorm(&convolved)
            }
            convolved.apply(activation)
            return pointwise2(convolved)
        }
    }

    init(loading loader: inout CheckpointLoader, _ key: String, _ c: Wav2Vec2Configuration, precision: Precision) throws {
        let h = c.hiddenSize
        let bert = c.family == .wav2vec2Bert
        // The Conformer block's nn.LayerNorm(embed_dim) and BatchNorm1d take their default 1e-5, not layer_norm_eps;
        // w2v-BERT's take layer_norm_eps.
        let eps: Float = bert ? c.layerNormEps : 1e-5
        let activation = Activation(name: c.hiddenAct)!  // validated with the configuration
        ffn1Norm = try loader.norm(key + ".ffn1_layer_norm", channels: h, eps: eps)
        ffn1 = try FeedForward(loading: &loader, key + ".ffn1", width: h, inner: c.intermediateSize, activation: activation,
                               precision: precision)
        attentionNorm = try loader.norm(key + ".self_attn_layer_norm", channels: h, eps: eps)
        attention = try ConformerAttention(loading: &loader, key + ".self_attn", width: h, heads: c.numAttentionHeads,
                                           positions: c.conformerPositions ?? .absent, c, precision: precision)
        let module = key + ".conv_module"
        let kernel = c.convDepthwiseKernelSize
        let raw = try loader.tensor(module + ".depthwise_conv.weight", shape: [h, 1, kernel])
        var depthwise = [Float](repeating: 0, count: kernel * h)
        for channel in 0..<h { for tap in 0..<kernel { depthwise[tap * h + channel] = raw[channel * kernel + tap] } }
        let depthwiseNorm: ConvolutionModule.DepthwiseNorm
        if bert {
            depthwiseNorm = .layer(try loader.norm(module + ".depthwise_layer_norm", channels: h, eps: eps))
        } else {
            let weight = try loader.tensor(module + ".batch_norm.weight", shape: [h])
            let bias = try loader.tensor(module + ".batch_norm.bias", shape: [h])
            let mean = try loader.tensor(module + ".batch_norm.running_mean", shape: [h])
            let variance = try loader.tensor(module + ".batch_norm.running_var", shape: [h])
            loader.ignore(module + ".batch_norm.num_batches_tracked")  // a training counter
            var scale = [Float](repeating: 0, count: h), shift = [Float](repeating: 0, count: h)
            for j in 0..<h {
                scale[j] = weight[j] / (variance[j] + eps).squareRoot()
                shift[j] = bias[j] - mean[j] * scale[j]
            }
            depthwiseNorm = .batch(scale: scale, shift: shift)
        }
        func pointwise(_ name: String, out n: Int) throws -> Linear {
            let values = try loader.tensor(module + ".\(name).weight", shape: [n, h, 1])
            return Linear(weight: WeightMatrix(FloatStorage(copying: values), n: n, k: h, precision: precision), bias: nil)
        }
        convolution = ConvolutionModule(
            norm: try loader.norm(module + ".layer_norm", channels: h, eps: eps), pointwise1: try pointwise("pointwise_conv1", out: 2 * h),
            depthwise: depthwise, kernel: kernel, causal: bert, depthwiseNorm: depthwiseNorm, activation: activation,
            pointwise2: try pointwise("pointwise_conv2", out: h))
        ffn2Norm = try loader.norm(key + ".ffn2_layer_norm", channels: h, eps: eps)
        ffn2 = try FeedForward(loading: &loader, key + ".ffn2", width: h, inner: c.intermediateSize, activation: activation,
                               precision: precision)
        finalNorm = try loader.norm(key + ".final_layer_norm", channels: h, eps: eps)
    }

    /// The block: x += ½·FFN1(LN(x)); x += Attn(LN(x)); x += Conv(x); x += ½·FFN2(LN(x)); x = LN(x).
    /// `valid`: frames from there on are padding (w2v-BERT's masked last frame): no query attends to them and the
    /// convolution module zeroes them.
    func callAsFunction(_ x: inout Matrix, positions: ConformerPositions, valid: Int, profile: StageProfile?, clock: StageClock?) {
        x.add(ffn1(ffn1Norm.normalized(x)), scaledBy: 0.5)
        clock?.lap(into: profile, \.feedForward)
        x.add(attention(attentionNorm.normalized(x), positions: positions, validKeys: valid))
        clock?.lap(into: profile, \.attention)
        x.add(convolution(x, valid: valid))
        clock?.lap(into: profile, \.feedForward)
        x.add(ffn2(ffn2Norm.normalized(x)), scaledBy: 0.5)
        finalNorm.layerNorm(&x)
        clock?.lap(into: profile, \.feedForward)
    }
}

/// `.self_attn` of a Conformer layer (and of a w2v-BERT adapter layer, without positions): multi-head attention with
/// the model's positions. Rotary rotates the input of the query and key projections; relative (Transformer-XL) adds
/// pos_bias_u to the queries and, before the softmax, the scores of the queries plus pos_bias_v against the projected
/// position embeddings, shifted so that query i and key j read offset i − j; relative-key (w2v-BERT, Shaw) adds
/// scale · q_i · E[clamp(j − i, −left, right)], a learned embedding per clamped offset.
struct ConformerAttention: Sendable {
    let width: Int, heads: Int
    let q: Linear, k: Linear, v: Linear     // .linear_{q,k,v}
    let out: Linear                         // .linear_out
    /// `.linear_pos` (no bias) and `.pos_bias_u`, `.pos_bias_v` (heads, head_size): relative positions only.
    let positionProjection: Linear?
    let positionBiasU: [Float]?, positionBiasV: [Float]?
    /// `.distance_embedding.weight` (left + right + 1, head_size): relative-key positions only.
    let distanceEmbedding: [Float]?
    let left: Int, right: Int

    init(loading loader: inout CheckpointLoader, _ key: String, width h: Int, heads: Int,
         positions: Wav2Vec2Configuration.ConformerPositionKind, _ c: Wav2Vec2Configuration, precision: Precision) throws {
        let d = h / heads
        width = h
        self.heads = heads
        q = try loader.linear(key + ".linear_q", inFeatures: h, outFeatures: h, precision: precision)
        k = try loader.linear(key + ".linear_k", inFeatures: h, outFeatures: h, precision: precision)
        v = try loader.linear(key + ".linear_v", inFeatures: h, outFeatures: h, precision: precision)
        out = try loader.linear(key + ".linear_out", inFeatures: h, outFeatures: h, precision: precision)
        if positions == .relative {
            positionProjection = try loader.linear(key + ".linear_pos", inFeatures: h, outFeatures: h, bias: false, precision: precision)
            positionBiasU = try loader.tensor(key + ".pos_bias_u", shape: [heads, d])
            positionBiasV = try loader.tensor(key + ".pos_bias_v", shape: [heads, d])
        } else {
            positionProjection = nil
            positionBiasU = nil
            positionBiasV = nil
        }
        (left, right) = (c.leftMaxPositionEmbeddings, c.rightMaxPositionEmbeddings)
        distanceEmbedding = positions == .relativeKey
            ? try loader.tensor(key + ".distance_embedding.weight", shape: [left + right + 1, d]) : nil
    }

    /// (frames, width) → (frames, width). Keys from `validKeys` on are masked out (every query gives them weight 0).
    func callAsFunction(_ x: Matrix, positions: ConformerPositions, validKeys: Int) -> Matrix {
        let t = x.rows, h = width, d = h / heads
        let scale = 1 / Float(d).squareRoot()
        let queryKeyInput: Matrix
        if case .rotary(let table) = positions { queryKeyInput = table.rotate(x, heads: heads) } else { queryKeyInput = x }
        // Q, K and V one after the other, each (t, h).
        let qkv = Matrix.attentionProjections(q: q, k: k, v: v, queryKeyInput: queryKeyInput, valueInput: x)
        var projected: Matrix?                                  // (2t − 1, h)
        if case .relative(let embeddings) = positions, let positionProjection { projected = positionProjection(embeddings) }
        let width = 2 * t - 1
        let offsets = distanceEmbedding == nil ? 0 : left + right + 1
        var context = Matrix(uninitializedRows: t, cols: h)
        let workers = max(1, min(BLAS.threads, heads))
        // Per worker: scores (t, t); for relative positions also the position scores (t, 2t − 1) and q + u, q + v;
        // for relative-key positions the query-offset products (t, offsets).
        let perWorker = t * t + (projected == nil ? 0 : t * width + 2 * t * d) + t * offsets
        var scratch = [Float](unsafeUninitializedCapacity: workers * perWorker) { _, count in count = workers * perWorker }
        let (u, bv) = (positionBiasU ?? [], positionBiasV ?? [])
        let positionStorage = projected?.storage ?? []
        let distances = distanceEmbedding ?? []
        let (left, right) = (self.left, self.right)
        qkv.storage.withUnsafeBufferPointer { qkvData in
            context.storage.withUnsafeMutableBufferPointer { ctx in
                scratch.withUnsafeMutableBufferPointer { allScratch in
                    positionStorage.withUnsafeBufferPointer { positionData in
                        distances.withUnsafeBufferPointer { distanceData in
                            let (input, output, scratchBase) = (SharedPointer(base: UnsafeMutablePointer(mutating: qkvData.baseAddress!)),
                                                                SharedPointer(base: ctx.baseAddress!), SharedPointer(base: allScratch.baseAddress!))
                            // (An empty array may still have a base address: test for the projection itself.)
                            let positionBase = projected == nil ? nil
                                : positionData.baseAddress.map { SharedPointer(base: UnsafeMutablePointer(mutating: $0)) }
                            let distanceBase = offsets == 0 ? nil
                                : distanceData.baseAddress.map { SharedPointer(base: UnsafeMutablePointer(mutating: $0)) }
                            DispatchQueue.concurrentPerform(iterations: workers) { worker in
                                let s = scratchBase.base + worker * perWorker
                                for head in stride(from: worker, to: heads, by: workers) {
                                    let qh = input.base + head * d, kh = qh + t * h, vh = qh + 2 * t * h, o = output.base + head * d
                                    if let positionBase {
                                        let bd = s + t * t, qu = bd + t * width, qv = qu + t * d
                                        for r in 0..<t {
                                            for j in 0..<d {
                                                qu[r * d + j] = qh[r * h + j] + u[head * d + j]
                                                qv[r * d + j] = qh[r * h + j] + bv[head * d + j]
                                            }
                                        }
                                        // scores (t, t) = scale · (Q_h + u) · K_hᵀ
                                        BLAS.gemm(m: t, n: t, k: d, a: qu, lda: d, b: kh, ldb: h, transposeB: true,
                                                  c: s, ldc: t, alpha: scale, split: false)
                                        // position scores (t, 2t − 1) = (Q_h + v) · P_hᵀ; column t − 1 − i + j is offset i − j
                                        BLAS.gemm(m: t, n: width, k: d, a: qv, lda: d, b: positionBase.base + head * d, ldb: h,
                                                  transposeB: true, c: bd, ldc: width, split: false)
                                        for i in 0..<t {
                                            let row = s + i * t, shifted = bd + i * width + (t - 1 - i)
                                            for j in 0..<t { row[j] += shifted[j] * scale }
                                        }
                                    } else {
                                        BLAS.gemm(m: t, n: t, k: d, a: qh, lda: h, b: kh, ldb: h, transposeB: true,
                                                  c: s, ldc: t, alpha: scale, split: false)
                                    }
                                    if let distanceBase {
                                        // (t, offsets) = Q_h · Eᵀ; key j of query i reads column clamp(j − i) + left
                                        let byOffset = s + t * t
                                        BLAS.gemm(m: t, n: offsets, k: d, a: qh, lda: h, b: distanceBase.base, ldb: d,
                                                  transposeB: true, c: byOffset, ldc: offsets, split: false)
                                        for i in 0..<t {
                                            let row = s + i * t, products = byOffset + i * offsets
                                            for j in 0..<t { row[j] += products[min(max(j - i, -left), right) + left] * scale }
                                        }
                                    }
                                    if validKeys < t {
                                        // transformers adds the dtype's lowest value: exp gives exactly 0 there.
                                        for i in 0..<t { for j in validKeys..<t { s[i * t + j] = -Float.greatestFiniteMagnitude } }
                                    }
                                    VectorMath.softmaxRows(UnsafeMutableBufferPointer(start: s, count: t * t), rows: t, cols: t)
                                    BLAS.gemm(m: t, n: d, k: t, a: s, lda: t, b: vh, ldb: h, transposeB: false,
                                              c: o, ldc: h, split: false)
                                }
                            }
                        }
                    }
                }
            }
        }
        return out(context)
    }
}

/// The positions a Conformer encoder gives its layers, computed once per forward pass
/// (`<base>.encoder.embed_positions`).
enum ConformerPositions {
    /// No position embedding (`position_embeddings_type` null).
    case none
    /// Rotary: the rotation angles of each frame.
    case rotary(RotaryTable)
    /// Relative: the sinusoidal embeddings of offsets t − 1 … −(t − 1), (2t − 1, hidden).
    case relative(Matrix)

    /// `inverseFrequencies`: the checkpoint's `encoder.embed_positions.inv_freq` where it has one (transformers
    /// loads that buffer over the one it computes), else computed from `rotary_embedding_base`.
    init(_ c: Wav2Vec2Configuration, frames t: Int, inverseFrequencies: [Float]?) {
        switch c.conformerPositions {
        case .rotary:
            let headSize = c.hiddenSize / c.numAttentionHeads
            self = .rotary(RotaryTable(frames: t, inverseFrequencies: inverseFrequencies
                                       ?? RotaryTable.inverseFrequencies(headSize: headSize, base: c.rotaryEmbeddingBase)))
        case .relative: self = .relative(Self.sinusoids(frames: t, channels: c.hiddenSize))
        case .relativeKey, .absent, nil: self = .none  // relative-key embeddings are each layer's; nil is refused by validate()
        }
    }

    /// Wav2Vec2ConformerRelPositionalEmbedding: row k holds offset p = t − 1 − k (the key p frames before the
    /// query); channels 2i and 2i + 1 are sin and cos of p · 10000^(−2i/hidden), computed in Float as there.
    static func sinusoids(frames t: Int, channels: Int) -> Matrix {
        var pe = Matrix(rows: 2 * t - 1, cols: channels)
        let step = Float(-(log(10000.0) / Double(channels)))
        let divisors = stride(from: 0, to: channels, by: 2).map { expf(Float($0) * step) }
        for k in 0..<(2 * t - 1) {
            let p = Float(t - 1 - k)
            for (i, divisor) in divisors.enumerated() {
                let angle = p * divisor
                pe.storage[k * channels + 2 * i] = sinf(angle)
                if 2 * i + 1 < channels { pe.storage[k * channels + 2 * i + 1] = cosf(angle) }
            }
        }
        return pe
    }
}

/// Wav2Vec2ConformerRotaryPositionalEmbedding: frame f, pair i of a head turns by f · base^(−2i/head_size).
struct RotaryTable {
    let cos: [Float], sin: [Float]   // (t, head_size / 2)
    let half: Int

    /// base^(−2i/head_size) in Float, as transformers computes `inv_freq` (1 / base ** (arange(0, d, 2) / d)).
    static func inverseFrequencies(headSize: Int, base: Int) -> [Float] {
        (0..<(headSize / 2)).map { i in 1 / powf(Float(base), Float(2 * i) / Float(headSize)) }
    }

    init(frames t: Int, inverseFrequencies inverse: [Float]) {
        half = inverse.count
        var cos = [Float](repeating: 0, count: t * half), sin = cos
        for f in 0..<t {
            for i in 0..<half {
                let angle = Float(f) * inverse[i]
                cos[f * half + i] = cosf(angle)
                sin[f * half + i] = sinf(angle)
            }
        }
        self.cos = cos
        self.sin = sin
    }

    /// Each head's slice [a | b] of each frame becomes [a·cos − b·sin | b·cos + a·sin].
    func rotate(_ x: Matrix, heads: Int) -> Matrix {
        var y = x
        let h = x.cols, d = h / heads
        for f in 0..<x.rows {
            for head in 0..<heads {
                let base = f * h + head * d
                for i in 0..<half {
                    let a = x.storage[base + i], b = x.storage[base + half + i]
                    let c = cos[f * half + i], s = sin[f * half + i]
                    y.storage[base + i] = a * c + (-b) * s
                    y.storage[base + half + i] = b * c + a * s
                }
            }
        }
        return y
    }
}
