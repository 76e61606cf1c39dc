import Foundation

/// `wav2vec2_bert.adapter` (Wav2Vec2BertAdapter, `add_adapter`): after the encoder, an optional projection to
/// `output_hidden_size` with LayerNorm, then layers that each divide the frame rate by `adapter_stride` — the
/// w2v-BERT 2.0 fine-tuning recipe's one layer makes 40 ms frames.
struct Wav2Vec2BertAdapter: Sendable {
    /// `.proj` and `.proj_layer_norm`, when the adapter is narrower or wider than the encoder.
    let projection: Linear?, projectionNorm: NormParameters?
    let layers: [Layer]
    let kernel: Int, stride: Int

    /// `.layers.{i}` (Wav2Vec2BertAdapterLayer): x ↦ y + FFN(LN(y)) with y = Attn(GLU(conv(LN(x)))) + GLU(conv(LN(x))),
    /// two strided convolutions of their own.
    struct Layer: Sendable {
        let residualNorm: NormParameters        // .residual_layer_norm
        let residualConvolution: StridedConvolution  // .residual_conv
        let attentionNorm: NormParameters       // .self_attn_layer_norm
        let attentionConvolution: StridedConvolution // .self_attn_conv
        let attention: ConformerAttention       // .self_attn (no positions)
        let feedForwardNorm: NormParameters     // .ffn_layer_norm
        let feedForward: ConformerLayer.FeedForward  // .ffn (adapter_act)

        func callAsFunction(_ x: Matrix, validKeys: Int) -> Matrix {
            let residual = residualConvolution(residualNorm.normalized(x))
            var y = attention(attentionConvolution(attentionNorm.normalized(x)), positions: .none, validKeys: validKeys)
            y.add(residual)
            y.add(feedForward(feedForwardNorm.normalized(y)))
            return y
        }
    }

    /// Conv1d (width → 2·width, `kernel` taps, `stride`, padding stride / 2, bias) then GLU over channels, as one
    /// product over windows of frames (time-major, so a window is one run of memory).
    struct StridedConvolution: Sendable {
        let product: Linear   // weight reordered to (2·width, kernel · width)
        let width: Int, kernel: Int, stride: Int

        func callAsFunction(_ x: Matrix) -> Matrix {
            let t = x.rows, w = width, padding = stride / 2
            let frames = Wav2Vec2Configuration.convolutionFrames(t, kernel: kernel, stride: stride, padding: padding)
            var windows = Matrix(rows: frames, cols: kernel * w)   // zeros where a window hangs over the padding
            for f in 0..<frames {
                for tap in 0..<kernel {
                    let source = f * stride - padding + tap
                    guard source >= 0, source < t else { continue }
                    let from = source * w, to = f * kernel * w + tap * w
                    for c in 0..<w { windows.storage[to + c] = x.storage[from + c] }
                }
            }
            let doubled = product(windows)    // (frames, 2w)
            var gated = Matrix(uninitializedRows: frames, cols: w)
            for f in 0..<frames {
                for c in 0..<w { gated.storage[f * w + c] = doubled.storage[f * 2 * w + c] * Activation.sigmoid(doubled.storage[f * 2 * w + w + c]) }
            }
            return gated
        }
    }

    init(loading loader: inout CheckpointLoader, _ c: Wav2Vec2Configuration, precision: Precision) throws {
        let h = c.hiddenSize, a = c.adapterWidth, eps = c.layerNormEps
        kernel = c.adapterKernelSize
        stride = c.adapterStride
        if a != h {
            projection = try loader.linear("adapter.proj", inFeatures: h, outFeatures: a, precision: precision)
            projectionNorm = try loader.norm("adapter.proj_layer_norm", channels: a, eps: eps)
        } else {
            projection = nil
            projectionNorm = nil
        }
        let activation = Activation(name: c.adapterAct)!  // validated with the configuration
        let (kernel, stride) = (self.kernel, self.stride)
        func convolution(_ key: String) throws -> StridedConvolution {
            let raw = try loader.tensor(key + ".weight", shape: [2 * a, a, kernel])
            let reordered = CheckpointLoader.reorderConvKernel(raw, out: 2 * a, in: a, kernel: kernel)
            return StridedConvolution(
                product: Linear(weight: WeightMatrix(FloatStorage(copying: reordered), n: 2 * a, k: kernel * a, precision: precision),
                                bias: try loader.tensor(key + ".bias", shape: [2 * a])),
                width: a, kernel: kernel, stride: stride)
        }
        layers = try (0..<c.adapterLayerCount).map { i in
            let key = "adapter.layers.\(i)"
            return Layer(
                residualNorm: try loader.norm(key + ".residual_layer_norm", channels: a, eps: eps),
                residualConvolution: try convolution(key + ".residual_conv"),
                attentionNorm: try loader.norm(key + ".self_attn_layer_norm", channels: a, eps: eps),
                attentionConvolution: try convolution(key + ".self_attn_conv"),
                attention: try ConformerAttention(loading: &loader, key + ".self_attn", width: a, heads: c.numAttentionHeads,
                                                  positions: .absent, c, precision: precision),
                feedForwardNorm: try loader.norm(key + ".ffn_layer_norm", channels: a, eps: eps),
                feedForward: try ConformerLayer.FeedForward(loading: &loader, key + ".ffn", width: a, inner: c.intermediateSize,
                                                            activation: activation, precision: precision))
        }
    }

    /// (frames, hidden) → (frames / stride per layer, output_hidden_size). `valid`: the real frames of the input;
    /// each layer's attention masks the keys past that count's own subsampling, as transformers computes it from the
    /// attention mask: ⌊(valid + 2·⌊kernel / 2⌋ − kernel) / stride + 1⌋.
    func callAsFunction(_ input: Matrix, valid: Int) -> Matrix {
        var x = input
        if let projection, let projectionNorm {
            x = projection(x)
            projectionNorm.layerNorm(&x)
        }
        var valid = Double(valid)
        for layer in layers {
            valid = ((valid + Double(2 * (kernel / 2) - kernel)) / Double(stride) + 1).rounded(.down)
            x = layer(x, validKeys: max(0, Int(valid)))
        }
        return x
    }
}
