import CKernels
import Foundation

/// `<base>.feature_extractor`: the convolutional feature encoder, raw samples → (frames, conv_dim[-1]).
///
/// Each layer is Conv1d (no padding) → norm → activation. Where the norm sits is the family's choice:
/// `.group` (wav2vec2 base, HuBERT base): GroupNorm with one channel per group, over all of time, first layer only;
/// `.layer` (large-lv60, XLS-R, MMS, data2vec-audio): LayerNorm over channels after every layer.
struct ConvFeatureEncoder: Sendable {
    /// `feature_extractor.conv_layers.{i}`
    struct Layer: Sendable {
        let inChannels: Int, outChannels: Int, kernel: Int, stride: Int
        /// `.conv.weight` reordered to (out, kernel · in); `.conv.bias` when `conv_bias`.
        let weight: WeightMatrix
        let bias: [Float]?
        /// `.layer_norm`: GroupNorm (first layer only, group mode) or LayerNorm (every layer, layer mode).
        let norm: NormParameters?
        let normOverTime: Bool
    }

    let layers: [Layer]
    let activation: Activation

    /// Output frames per block: intermediate activations then hold a few seconds of audio (base: ~35 MB) instead of
    /// the whole input (base, 30 s: 200 MB for the first layer alone).
    static let blockFrames = 256

    init(loading loader: inout CheckpointLoader, _ c: Wav2Vec2Configuration, precision: Precision) throws {
        let eps: Float = 1e-5  // nn.GroupNorm / nn.LayerNorm defaults, not layer_norm_eps
        let norm = c.featureEncoderNorm
        var layers: [Layer] = []
        var inChannels = 1
        for i in c.convDim.indices {
            let key = "feature_extractor.conv_layers.\(i)"
            let (out, kernel) = (c.convDim[i], c.convKernel[i])
            let raw = try loader.tensor(key + ".conv.weight", shape: [out, inChannels, kernel])
            let bias = c.convBias ? try loader.tensor(key + ".conv.bias", shape: [out]) : nil
            let hasNorm = norm == .layer || i == 0
            let parameters = hasNorm ? try loader.norm(key + ".layer_norm", channels: out, eps: eps) : nil
            let reordered = FloatStorage(copying: CheckpointLoader.reorderConvKernel(raw, out: out, in: inChannels, kernel: kernel))
            layers.append(Layer(
                inChannels: inChannels, outChannels: out, kernel: kernel, stride: c.convStride[i],
                weight: WeightMatrix(reordered, n: out, k: kernel * inChannels, precision: Self.precision(for: precision, layer: i, groupNorm: norm == .group),
                                     pack: i != 0),
                bias: bias, norm: parameters, normOverTime: norm == .group))
            inChannels = out
        }
        self.layers = layers
        activation = Activation(name: c.featExtractActivation)!  // validated with the configuration
    }

    /// Output channels of the last layer.
    var outChannels: Int { layers.last!.outChannels }

    /// The format conv layer `layer` runs its products in, for a model loaded in `precision`, whose encoder normalises
    /// with GroupNorm over time after its first layer (`groupNorm`, wav2vec2/HuBERT base) or LayerNorm after every
    /// layer. The first layer (one input channel, a window of ~10 samples) is too narrow a product to gain: fp32.
    /// For int8, measured on the fixtures and full-size models (README, "Reduced precision"): int8 in every layer
    /// moved the logits about three times as far as bf16 there, past transformers' own int8 (8-bit steps on weights
    /// and activations, neither dominating; smoothing channel ranges did not help on random weights). int8 in the
    /// second layer alone, which carries about half of the encoder's operations, stays within transformers' int8 on
    /// every group-norm checkpoint: its input is the first layer's output normalised per channel over time, so
    /// every channel spans a like range and per-row 8-bit steps fit them all. After a LayerNorm (per frame) the
    /// channels keep offsets and scales of their own, and int8 there exceeded transformers' max |Δlogit| on two
    /// layer-norm fixtures: those encoders keep bf16. Past the second layer bf16 where the CPU has bf16 dot products,
    /// int8 elsewhere (where bf16 would be emulated).
    static func precision(for precision: Precision, layer: Int, groupNorm: Bool) -> Precision {
        if layer == 0 { return .fp32 }
        guard precision == .int8 else { return precision }
        if layer == 1 && groupNorm { return .int8 }
        return ReducedPrecisionKernels.bf16Native ? .bf16 : .int8
    }

    /// The conv feature encoder over blocks of output frames. Each block reads the sample range its frames depend
    /// on (the receptive field overlaps the next block's by kernel − stride per layer, recomputed) and runs the
    /// layers on it. The first layer's GroupNorm (group mode) normalises each channel over all of time, so its
    /// statistics come from the whole input first (`folded`); LayerNorm (layer mode) is per frame and blocks freely.
    func callAsFunction(_ samples: [Float], frames: Int, blockFrames: Int) -> Matrix {
        var first = layers[0]
        if first.normOverTime, let norm = first.norm { first = folded(first, norm, over: samples) }
        var out = Matrix(uninitializedRows: frames, cols: layers.last!.outChannels)  // every block copied in
        var f0 = 0
        while f0 < frames {
            let f1 = f0 + min(frames - f0, max(1, blockFrames))
            // Sample range [lower, upper) behind output frames [f0, f1).
            var lower = f0, upper = f1
            for layer in layers.reversed() {
                lower *= layer.stride
                upper = (upper - 1) * layer.stride + layer.kernel
            }
            var x = Matrix(rows: upper - lower, cols: 1, storage: Array(samples[lower..<upper]))
            for (i, layer) in layers.enumerated() {
                let layer = i == 0 ? first : layer
                // Without a norm after it (group mode, past the first layer, and the first with its GroupNorm
                // folded in) the activation is applied by each thread to its rows as its product ends.
                let fused = layer.norm == nil
                x = convolve(x, layer, activation: fused ? activation : nil)
                guard let norm = layer.norm else { continue }
                // Only the first layer normalises over time (transformers' group mode), and it is folded; the rest
                // is per frame.
                precondition(!layer.normOverTime, "GroupNorm beyond the first conv layer")
                norm.layerNorm(&x)
                x.apply(activation)
            }
            precondition(x.rows == f1 - f0)
            out.storage.withUnsafeMutableBufferPointer { o in
                x.storage.withUnsafeBufferPointer { b in
                    (o.baseAddress! + f0 * out.cols).update(from: b.baseAddress!, count: b.count)
                }
            }
            f0 = f1
        }
        return out
    }

    /// The first conv layer with its GroupNorm (one channel per group, over all of time) folded into its weights and
    /// bias, for this input: normalised channel c is (W_c·x + b_c − μ_c) · s_c + β_c with s_c = γ_c / √(σ²_c + ε), that
    /// is (s_c W_c)·x + (β_c − s_c W_c·m), where m and Σ are the mean and covariance of the layer's input windows
    /// (10 × 10 for wav2vec2), μ_c = W_c·m + b_c and σ²_c = W_c Σ W_cᵀ. transformers computes the same statistics
    /// from the conv output; here they come from its input, in Double, so the layer runs once instead of twice (once
    /// for statistics over the whole input, once per block), and its norm and activation need no pass of their own.
    private func folded(_ layer: Layer, _ norm: NormParameters, over samples: [Float]) -> Layer {
        guard case .fp32(let weights) = layer.weight.storage else { preconditionFailure("the first conv layer runs in fp32") }
        let window = layer.kernel * layer.inChannels, rowStep = layer.stride * layer.inChannels
        let windows = samples.count >= window ? (samples.count - window) / rowStep + 1 : 0
        var mean = [Double](repeating: 0, count: window)
        var covariance = [Double](repeating: 0, count: window * window)
        var scratch = [Double](repeating: 0, count: window)
        asr_window_moments_f64(samples, windows, rowStep, window, &mean, &covariance, &scratch)
        let channels = layer.outChannels
        var scaled = [Float](repeating: 0, count: channels * window)
        var shift = [Float](repeating: 0, count: channels)
        for c in 0..<channels {
            let w = weights.pointer + c * window
            var centre = 0.0, variance = 0.0
            for j in 0..<window {
                var covarianceTimesW = 0.0
                for k in 0..<window { covarianceTimesW += covariance[j * window + k] * Double(w[k]) }
                centre += Double(w[j]) * mean[j]
                variance += Double(w[j]) * covarianceTimesW
            }
            let scale = Double(norm.weight[c]) / (max(variance, 0) + Double(norm.eps)).squareRoot()
            for j in 0..<window { scaled[c * window + j] = Float(Double(w[j]) * scale) }
            shift[c] = Float(Double(norm.bias[c]) - centre * scale)  // the conv bias cancels against μ_c
        }
        return Layer(inChannels: layer.inChannels, outChannels: channels, kernel: layer.kernel, stride: layer.stride,
                     weight: WeightMatrix(FloatStorage(copying: scaled), n: channels, k: window, precision: .fp32, pack: false),
                     bias: shift, norm: nil, normOverTime: false)
    }

    /// One feature-encoder convolution: Conv1d (no padding) with its bias, then `activation` when given.
    /// (t_in, c_in) → (t_out, c_out).
    private func convolve(_ x: Matrix, _ layer: Layer, activation: Activation? = nil) -> Matrix {
        let tOut = (x.rows - layer.kernel) / layer.stride + 1
        guard tOut > 0 else { return Matrix(rows: 0, cols: layer.outChannels) }
        let window = layer.kernel * layer.inChannels   // one output frame reads this many contiguous floats
        let rowStep = layer.stride * layer.inChannels
        var y = Matrix(uninitializedRows: tOut, cols: layer.outChannels)  // every element written by the product
        x.storage.withUnsafeBufferPointer { input in
            y.storage.withUnsafeMutableBufferPointer { out in withPointer(to: layer.bias) { bias in
                if rowStep >= window || layer.weight.readsOverlappingRows {
                    // Windows don't overlap, or the product converts its rows itself (bf16, int8) and so can read
                    // overlapping windows in place: one product over strided rows, no im2col copy.
                    layer.weight.multiply(m: tOut, a: input.baseAddress!, lda: rowStep, into: out.baseAddress!,
                                          ldc: layer.outChannels, accumulate: false, bias: bias, activation: activation)
                    return
                }
                // Overlapping windows: copy a block of them (im2col, the copy split across threads), bounded to
                // ~16 MB of scratch, then one product over the block.
                let blockRows = max(1, min(tOut, (4 << 20) / window))
                var columns = [Float](unsafeUninitializedCapacity: blockRows * window) { _, n in n = blockRows * window }
                columns.withUnsafeMutableBufferPointer { cols in
                    let (source, scratch) = (SharedPointer(base: UnsafeMutablePointer(mutating: input.baseAddress!)),
                                             SharedPointer(base: cols.baseAddress!))
                    var t0 = 0
                    while t0 < tOut {
                        let rows = min(blockRows, tOut - t0), first = t0
                        Parallel.ranges(rows, minimumPerPart: 256) { part in
                            (scratch.base + part.lowerBound * window).copyWindows(
                                from: source.base + (first + part.lowerBound) * rowStep, rowStep: rowStep,
                                window: window, rows: part.count)
                        }
                        layer.weight.multiply(m: rows, a: cols.baseAddress!, lda: window,
                                              into: out.baseAddress! + t0 * layer.outChannels, ldc: layer.outChannels,
                                              accumulate: false, bias: bias, activation: activation)
                        t0 += rows
                    }
                }
            } }
        }
        return y
    }
}
