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
            // The first layer (one input channel, a window of ~10 samples) is too narrow a product to gain: fp32.
            let reordered = FloatStorage(copying: CheckpointLoader.reorderConvKernel(raw, out: out, in: inChannels, kernel: kernel))
            layers.append(Layer(
                inChannels: inChannels, outChannels: out, kernel: kernel, stride: c.convStride[i],
                weight: WeightMatrix(reordered, n: out, k: kernel * inChannels, precision: i == 0 ? .fp32 : Self.precision(for: precision)),
                bias: bias, norm: parameters, normOverTime: norm == .group))
            inChannels = out
        }
        self.layers = layers
        activation = Activation(name: c.featExtractActivation)!  // validated with the configuration
    }

    /// Output channels of the last layer.
    var outChannels: Int { layers.last!.outChannels }

    /// int8 in the conv feature encoder moved the logits most (it quantizes raw-audio features, before any norm)
    /// while that stage's time is mostly outside the products (the first layer, norms, GELU, window copies), so int8
    /// runs the encoder's products in bf16 where the CPU has bf16 dot products (measured in the README).
    static func precision(for precision: Precision) -> Precision {
        guard precision == .int8 else { return precision }
        return ReducedPrecisionKernels.bf16Native ? .bf16 : .int8
    }

    /// The conv feature encoder over blocks of output frames. Each block reads the sample range its frames depend
    /// on (the receptive field overlaps the next block's by kernel − stride per layer, recomputed) and runs the
    /// layers on it. The first layer's GroupNorm (group mode) normalises each channel over all of time, so its
    /// statistics come from a first pass over the whole input; LayerNorm (layer mode) is per frame and blocks freely.
    func callAsFunction(_ samples: [Float], frames: Int, blockFrames: Int) -> Matrix {
        var firstLayerNorm: (scale: [Float], shift: [Float])?
        if layers[0].normOverTime, let norm = layers[0].norm {
            firstLayerNorm = channelNormalization(samples, layers[0], norm)
        }
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
                // Without a norm after it (group mode, past the first layer) the activation is applied by each
                // thread to its rows as its product ends.
                let fused = layer.norm == nil
                x = convolve(x, layer, activation: fused ? activation : nil)
                if fused { continue }
                if i == 0, let (scale, shift) = firstLayerNorm {
                    x.scaleAndShiftColumns(scale: scale, shift: shift)
                } else if let norm = layer.norm {
                    // Only the first layer normalises over time (transformers' group mode); the rest is per frame.
                    precondition(!layer.normOverTime, "GroupNorm beyond the first conv layer")
                    norm.layerNorm(&x)
                }
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

    /// GroupNorm of the first conv layer (one channel per group, over all of time) as a per-channel scale and shift.
    /// The conv output is produced block by block; block means and squared deviations are merged pairwise (Chan et
    /// al.) in Double, which equals the two-pass result over the whole output to rounding.
    private func channelNormalization(_ samples: [Float], _ layer: Layer, _ norm: NormParameters) -> (scale: [Float], shift: [Float]) {
        let total = (samples.count - layer.kernel) / layer.stride + 1
        let channels = layer.outChannels
        var count = 0.0
        var mean = [Double](repeating: 0, count: channels)
        var deviations = [Double](repeating: 0, count: channels)
        let blockRows = 16384
        var r0 = 0
        while r0 < total {
            let r1 = min(total, r0 + blockRows)
            let lower = r0 * layer.stride, upper = (r1 - 1) * layer.stride + layer.kernel
            let y = convolve(Matrix(rows: upper - lower, cols: 1, storage: Array(samples[lower..<upper])), layer)
            let n = Double(y.rows)
            var blockMean = [Double](repeating: 0, count: channels)
            var blockDeviations = [Double](repeating: 0, count: channels)
            // Channel ranges in parallel: each thread sums its own channels over every row.
            y.storage.withUnsafeBufferPointer { data in
                blockMean.withUnsafeMutableBufferPointer { meanBuffer in
                    blockDeviations.withUnsafeMutableBufferPointer { deviationBuffer in
                        let (values, means, squares) = (SharedPointer(base: UnsafeMutablePointer(mutating: data.baseAddress!)),
                                                        SharedPointer(base: meanBuffer.baseAddress!),
                                                        SharedPointer(base: deviationBuffer.baseAddress!))
                        let rows = y.rows
                        Parallel.ranges(channels, minimumPerPart: 64, alignment: 16) { part in
                            asr_column_sums_f64(values.base, rows, channels, part.lowerBound, part.upperBound, means.base)
                            for j in part { means.base[j] /= n }
                            asr_column_squared_deviations_f64(values.base, rows, channels, part.lowerBound, part.upperBound,
                                                              means.base, squares.base)
                        }
                    }
                }
            }
            let merged = count + n
            for j in 0..<channels {
                let delta = blockMean[j] - mean[j]
                mean[j] += delta * n / merged
                deviations[j] += blockDeviations[j] + delta * delta * count * n / merged
            }
            count = merged
            r0 = r1
        }
        var scale = [Float](repeating: 0, count: channels)
        var shift = [Float](repeating: 0, count: channels)
        for j in 0..<channels {
            let inverseStd = 1 / (deviations[j] / count + Double(norm.eps)).squareRoot()
            scale[j] = Float(inverseStd * Double(norm.weight[j]))
            shift[j] = Float(Double(norm.bias[j]) - mean[j] * inverseStd * Double(norm.weight[j]))
        }
        return (scale, shift)
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
