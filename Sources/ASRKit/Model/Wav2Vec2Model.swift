import CKernels
import Foundation

/// Wav2Vec2ForCTC (and HubertForCTC, which shares its layers) inference: 16 kHz samples in, CTC logits
/// (frames × vocab) out.
///
/// Layout: every activation is time-major (rows = time steps, cols = channels), so a convolution window over time
/// is one contiguous run of memory and every matrix product is a single `cblas_sgemm` — except attention's two per
/// head, which the fused C kernel (`asr_attention_head`) does where the CPU has AVX-512.
/// An instance is immutable after loading and safe to share across threads; each call owns its scratch memory.
public final class Wav2Vec2Model: Sendable {
    /// The architecture the weights were loaded for.
    public let configuration: Wav2Vec2Configuration
    let featureEncoder: [ConvLayer]
    let featureProjection: FeatureProjection
    let positionalEmbedding: PositionalConvEmbedding
    /// `wav2vec2.encoder.layer_norm`: before the layers (post-LN) or after them (stable pre-LN).
    let encoderNorm: NormParameters
    let layers: [EncoderLayer]
    /// `lm_head`
    let head: Linear
    /// Number of weight values loaded.
    public let parameterCount: Int
    /// Number of values in the checkpoint, training-only tensors (`masked_spec_embed`) included: what transformers'
    /// `num_parameters()` and a training log count.
    public let storedParameterCount: Int
    /// Loading problems that did not stop it (e.g. NaN weights).
    public let warnings: [String]

    // MARK: Weights, each named by its checkpoint key

    /// `wav2vec2.feature_extractor.conv_layers.{i}`
    struct ConvLayer: Sendable {
        let inChannels: Int, outChannels: Int, kernel: Int, stride: Int
        /// `.conv.weight` reordered to (out, kernel · in); `.conv.bias` when `conv_bias`.
        let weight: WeightMatrix
        let bias: [Float]?
        /// `.layer_norm`: GroupNorm (first layer only, group mode) or LayerNorm (every layer, layer mode).
        let norm: NormParameters?
        let normOverTime: Bool
    }

    /// `wav2vec2.feature_projection`
    struct FeatureProjection: Sendable {
        let norm: NormParameters?  // .layer_norm (absent in HuBERT with feat_proj_layer_norm false)
        let projection: Linear     // .projection
    }

    /// `wav2vec2.encoder.pos_conv_embed.conv`: grouped Conv1d(hidden, hidden, K, padding K/2, groups G).
    struct PositionalConvEmbedding: Sendable {
        let channels: Int, kernel: Int, groups: Int
        /// Weight-norm folded kernel, reordered to (out, kernel · in-per-group): one matrix per group.
        let weights: [WeightMatrix]
        let bias: [Float]
    }

    /// `wav2vec2.encoder.layers.{n}`
    struct EncoderLayer: Sendable {
        /// `.attention.{q,k,v}_proj`, written side by side into one (frames × 3·hidden) matrix.
        let q: Linear, k: Linear, v: Linear
        let out: Linear            // .attention.out_proj
        let attentionNorm: NormParameters  // .layer_norm
        let intermediate: Linear   // .feed_forward.intermediate_dense
        let output: Linear         // .feed_forward.output_dense
        let finalNorm: NormParameters      // .final_layer_norm
    }

    // MARK: Loading

    /// Builds the network from `source`, checking every tensor's name and shape against `configuration`, with the
    /// large products' weights converted once to `precision` (see `Precision` for which layers).
    init(configuration c: Wav2Vec2Configuration, source: TensorSource, precision: Precision = .fp32) throws {
        try c.validate()
        configuration = c
        let prefix = source.shapes.keys.contains { $0.hasPrefix(c.weightPrefix) } ? c.weightPrefix : ""
        var loader = CheckpointLoader(source: source, prefix: prefix)
        let frontEndEps: Float = 1e-5  // nn.GroupNorm / nn.LayerNorm defaults, not layer_norm_eps

        var convs: [ConvLayer] = []
        var inChannels = 1
        for i in c.convDim.indices {
            let key = "feature_extractor.conv_layers.\(i)"
            let (out, kernel) = (c.convDim[i], c.convKernel[i])
            let raw = try loader.tensor(key + ".conv.weight", shape: [out, inChannels, kernel])
            let bias = c.convBias ? try loader.tensor(key + ".conv.bias", shape: [out]) : nil
            let hasNorm = c.featExtractNorm == .layer || i == 0
            let norm = hasNorm ? try loader.norm(key + ".layer_norm", channels: out, eps: frontEndEps) : nil
            // The first layer (one input channel, a window of ~10 samples) is too narrow a product to gain: fp32.
            let reordered = FloatStorage(copying: CheckpointLoader.reorderConvKernel(raw, out: out, in: inChannels, kernel: kernel))
            convs.append(ConvLayer(
                inChannels: inChannels, outChannels: out, kernel: kernel, stride: c.convStride[i],
                weight: WeightMatrix(reordered, n: out, k: kernel * inChannels, precision: i == 0 ? .fp32 : Self.frontEndPrecision(precision)),
                bias: bias, norm: norm, normOverTime: c.featExtractNorm == .group))
            inChannels = out
        }
        featureEncoder = convs

        let h = c.hiddenSize
        featureProjection = FeatureProjection(
            norm: c.hasFeatureProjectionNorm
                ? try loader.norm("feature_projection.layer_norm", channels: inChannels, eps: c.layerNormEps) : nil,
            projection: try loader.linear("feature_projection.projection", inFeatures: inChannels, outFeatures: h,
                                          precision: precision))

        let groups = c.numConvPosEmbeddingGroups, kernel = c.numConvPosEmbeddings
        let perGroup = h / groups
        let posKernel = try loader.weightNormedConv("encoder.pos_conv_embed.conv", out: h, in: perGroup, kernel: kernel)
        let posWeight = CheckpointLoader.reorderConvKernel(posKernel, out: h, in: perGroup, kernel: kernel)
        let groupSize = perGroup * kernel * perGroup
        positionalEmbedding = PositionalConvEmbedding(
            channels: h, kernel: kernel, groups: groups,
            weights: (0..<groups).map { g in
                WeightMatrix(FloatStorage(copying: Array(posWeight[(g * groupSize)..<((g + 1) * groupSize)])),
                             n: perGroup, k: kernel * perGroup, precision: Self.positionalPrecision(precision))
            },
            bias: try loader.tensor("encoder.pos_conv_embed.conv.bias", shape: [h]))
        encoderNorm = try loader.norm("encoder.layer_norm", channels: h, eps: c.layerNormEps)

        var layers: [EncoderLayer] = []
        for n in 0..<c.numHiddenLayers {
            let key = "encoder.layers.\(n)"
            layers.append(EncoderLayer(
                q: try loader.linear(key + ".attention.q_proj", inFeatures: h, outFeatures: h, precision: precision),
                k: try loader.linear(key + ".attention.k_proj", inFeatures: h, outFeatures: h, precision: precision),
                v: try loader.linear(key + ".attention.v_proj", inFeatures: h, outFeatures: h, precision: precision),
                out: try loader.linear(key + ".attention.out_proj", inFeatures: h, outFeatures: h, precision: precision),
                attentionNorm: try loader.norm(key + ".layer_norm", channels: h, eps: c.layerNormEps),
                intermediate: try loader.linear(key + ".feed_forward.intermediate_dense", inFeatures: h, outFeatures: c.intermediateSize,
                                            precision: precision),
                output: try loader.linear(key + ".feed_forward.output_dense", inFeatures: c.intermediateSize, outFeatures: h,
                                      precision: precision),
                finalNorm: try loader.norm(key + ".final_layer_norm", channels: h, eps: c.layerNormEps)))
        }
        self.layers = layers
        head = try loader.linear("lm_head", inFeatures: h, outFeatures: c.vocabSize, prefixed: false)
        try loader.checkAllUsed()
        parameterCount = loader.used.reduce(0) { $0 + (source.shapes[$1]?.reduce(1, *) ?? 0) }
        // Quantization scales are storage, not parameters.
        storedParameterCount = source.shapes.filter { !$0.key.hasSuffix(Int8Checkpoint.scaleSuffix) }.values.reduce(0) { $0 + $1.reduce(1, *) }
        warnings = loader.warnings
    }

    /// int8 in the conv feature encoder moved the logits most (it quantizes raw-audio features, before any norm)
    /// while that stage's time is mostly outside the products (the first layer, norms, GELU, window copies), so int8
    /// runs the encoder's products in bf16 where the CPU has bf16 dot products (measured in the README).
    static func frontEndPrecision(_ precision: Precision) -> Precision {
        guard precision == .int8 else { return precision }
        return ReducedPrecisionKernels.bf16Native ? .bf16 : .int8
    }

    /// The positional convolution's products are narrow (48 or 64 output channels per group, K = 128 · that):
    /// oneDNN's int8 GEMM packs its operands for each such product, which made that stage 2.3× slower than fp32
    /// (base, 10 s: 0.107 s vs 0.046 s), while bf16 halves it. So int8 runs it in bf16 where the CPU has bf16 dot
    /// products, else in fp32.
    static func positionalPrecision(_ precision: Precision) -> Precision {
        guard precision == .int8 else { return precision }
        return ReducedPrecisionKernels.bf16Native ? .bf16 : .fp32
    }

    // MARK: Forward pass

    /// CTC logits for normalised samples at the model's rate: (frames × vocab_size), row-major.
    /// Input shorter than the receptive field gives zero frames. `profile`, when given, receives the time spent in
    /// each stage.
    /// `fusedAttention` picks the attention implementation (both are exact to 1e-4; tests run each).
    func logits(for samples: [Float], profile: StageProfile? = nil, encoderBlockFrames: Int = Wav2Vec2Model.encoderBlockFrames,
                fusedAttention: Bool = ExecutionOptions().fusedAttention) -> Matrix {
        let c = configuration
        let frames = c.frameCount(forSamples: samples.count)
        guard frames > 0 else { return Matrix(rows: 0, cols: c.vocabSize) }
        let clock = profile.map { _ in StageClock() }

        // 1. Feature encoder: (samples, 1) → (frames, conv_dim[-1]), in blocks of output frames
        var x = encodeFeatures(samples, frames: frames, blockFrames: encoderBlockFrames)
        clock?.lap(into: profile, \.featureEncoder)

        // 2. Feature projection: LayerNorm over channels, then Linear → (frames, hidden)
        featureProjection.norm?.layerNorm(&x)
        x = featureProjection.projection(x)
        clock?.lap(into: profile, \.featureProjection)

        // 3. Positional embedding: x + GELU(grouped conv(x))
        x.add(positionalConvolution(x))
        clock?.lap(into: profile, \.positionalConvolution)

        // 4. Transformer encoder
        let activation = Activation(name: c.hiddenAct)!  // validated at load
        if c.doStableLayerNorm {
            for layer in layers { stableLayer(&x, layer, activation, fusedAttention, profile: profile, clock: clock) }
            encoderNorm.layerNorm(&x)
        } else {
            encoderNorm.layerNorm(&x)
            for layer in layers { postNormLayer(&x, layer, activation, fusedAttention, profile: profile, clock: clock) }
        }
        clock?.lap(into: profile, \.norms)

        // 5. LM head: (frames, hidden) → (frames, vocab)
        let out = head(x)
        clock?.lap(into: profile, \.head)
        return out
    }

    /// Output frames per block of the feature encoder: intermediate activations then hold a few seconds of audio
    /// (base: ~35 MB) instead of the whole input (base, 30 s: 200 MB for the first layer alone).
    static let encoderBlockFrames = 256


    /// The conv feature encoder over blocks of output frames. Each block reads the sample range its frames depend
    /// on (the receptive field overlaps the next block's by kernel − stride per layer, recomputed) and runs the
    /// layers on it. The first layer's GroupNorm (group mode) normalises each channel over all of time, so its
    /// statistics come from a first pass over the whole input; LayerNorm (layer mode) is per frame and blocks freely.
    private func encodeFeatures(_ samples: [Float], frames: Int, blockFrames: Int) -> Matrix {
        let layers = featureEncoder
        let activation = Activation(name: configuration.featExtractActivation)!
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
                x = convolve(x, layer)
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
    private func channelNormalization(_ samples: [Float], _ layer: ConvLayer, _ norm: NormParameters) -> (scale: [Float], shift: [Float]) {
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

    /// One feature-encoder convolution: Conv1d (no padding) with its bias. (t_in, c_in) → (t_out, c_out).
    private func convolve(_ x: Matrix, _ layer: ConvLayer) -> Matrix {
        let tOut = (x.rows - layer.kernel) / layer.stride + 1
        guard tOut > 0 else { return Matrix(rows: 0, cols: layer.outChannels) }
        let window = layer.kernel * layer.inChannels   // one output frame reads this many contiguous floats
        let rowStep = layer.stride * layer.inChannels
        var y = Matrix(uninitializedRows: tOut, cols: layer.outChannels)  // bias fill or beta-0 GEMM writes it all
        x.storage.withUnsafeBufferPointer { input in
            y.storage.withUnsafeMutableBufferPointer { out in
                if let bias = layer.bias { out.baseAddress!.fillRows(tOut, stride: layer.outChannels, with: bias) }
                let accumulate = layer.bias != nil
                if rowStep >= window || layer.weight.readsOverlappingRows {
                    // Windows don't overlap, or the product converts its rows itself (bf16, int8) and so can read
                    // overlapping windows in place: one product over strided rows, no im2col copy.
                    layer.weight.multiply(m: tOut, a: input.baseAddress!, lda: rowStep, into: out.baseAddress!,
                                          ldc: layer.outChannels, accumulate: accumulate)
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
                                              accumulate: accumulate)
                        t0 += rows
                    }
                }
            }
        }
        return y
    }

    /// GELU(grouped Conv1d(x)) with padding K/2 on both sides; for even K the extra last frame is dropped
    /// (Wav2Vec2SamePadLayer). (frames, hidden) → (frames, hidden).
    private func positionalConvolution(_ x: Matrix) -> Matrix {
        let p = positionalEmbedding
        let t = x.rows, h = p.channels, perGroup = h / p.groups, k = p.kernel
        let pad = k / 2
        let paddedRows = t + 2 * pad
        let window = k * perGroup
        var y = Matrix(uninitializedRows: t, cols: h)  // filled with the bias below

        // Each group's channels, zero-padded in time and laid out contiguously: (groups, t + 2·pad, perGroup).
        var grouped = [Float](repeating: 0, count: p.groups * paddedRows * perGroup)
        x.storage.withUnsafeBufferPointer { input in
            grouped.withUnsafeMutableBufferPointer { g in
                for r in 0..<t {
                    for group in 0..<p.groups {
                        (g.baseAddress! + (group * paddedRows + pad + r) * perGroup).update(
                            from: input.baseAddress! + r * h + group * perGroup, count: perGroup)
                    }
                }
            }
        }
        // Groups are spread over the threads. fp32 copies each group's windows (im2col, ~16 MB of scratch in all) for
        // BLAS; bf16/int8 convert the rows themselves and so read the overlapping windows in place, no scratch.
        let workers = max(1, min(BLAS.threads, p.groups))
        let inPlace = p.weights[0].readsOverlappingRows   // one precision for every group
        let blockRows = max(1, min(t, (4 << 20) / window / workers))
        y.storage.withUnsafeMutableBufferPointer { out in
            out.baseAddress!.fillRows(t, stride: h, with: p.bias)
            grouped.withUnsafeBufferPointer { g in
                let (groupedInput, outputs) = (SharedPointer(base: UnsafeMutablePointer(mutating: g.baseAddress!)),
                                               SharedPointer(base: out.baseAddress!))
                DispatchQueue.concurrentPerform(iterations: workers) { worker in
                    let groups = stride(from: worker, to: p.groups, by: workers)
                    if inPlace {
                        for group in groups {
                            p.weights[group].multiply(m: t, a: groupedInput.base + group * paddedRows * perGroup, lda: perGroup,
                                                      into: outputs.base + group * perGroup, ldc: h, accumulate: true, split: false)
                        }
                        return
                    }
                    var columns = [Float](unsafeUninitializedCapacity: blockRows * window) { _, n in n = blockRows * window }
                    columns.withUnsafeMutableBufferPointer { cols in
                        for group in groups {
                            let groupBase = groupedInput.base + group * paddedRows * perGroup
                            var t0 = 0
                            while t0 < t {
                                let rows = min(blockRows, t - t0)
                                cols.baseAddress!.copyWindows(from: groupBase + t0 * perGroup, rowStep: perGroup,
                                                              window: window, rows: rows)
                                // (rows, K·perGroup) · (perGroup_out, K·perGroup)ᵀ → y[t0..., group's channels]
                                p.weights[group].multiply(m: rows, a: cols.baseAddress!, lda: window,
                                                          into: outputs.base + t0 * h + group * perGroup, ldc: h,
                                                          accumulate: true, split: false)
                                t0 += rows
                            }
                        }
                    }
                }
            }
        }
        y.apply(Activation(name: configuration.featExtractActivation)!)
        return y
    }

    /// Multi-head self-attention: (frames, hidden) → (frames, hidden).
    private func attention(_ x: Matrix, _ layer: EncoderLayer, fused: Bool) -> Matrix {
        let t = x.rows, h = configuration.hiddenSize
        let heads = configuration.numAttentionHeads, d = h / heads
        let scale = 1 / Float(d).squareRoot()
        var qkv = Matrix(uninitializedRows: t, cols: 3 * h)   // (t, 3h): [q | k | v], every element written below
        qkv.storage.withUnsafeMutableBufferPointer { out in
            layer.q.apply(x, into: out.baseAddress!, ldc: 3 * h)
            layer.k.apply(x, into: out.baseAddress! + h, ldc: 3 * h)
            layer.v.apply(x, into: out.baseAddress! + 2 * h, ldc: 3 * h)
        }
        var context = Matrix(uninitializedRows: t, cols: h)   // (t, h): heads side by side, each written once
        // Heads run in parallel, each worker with its own scratch: the fused kernel's packed operands, or a (t, t)
        // score matrix for the BLAS path.
        let workers = max(1, min(BLAS.threads, heads))
        let perWorker = fused ? asr_attention_workspace(t, d) : t * t
        var scratch = [Float](unsafeUninitializedCapacity: workers * perWorker) { _, count in count = workers * perWorker }
        qkv.storage.withUnsafeBufferPointer { qkvData in
            context.storage.withUnsafeMutableBufferPointer { ctx in
                scratch.withUnsafeMutableBufferPointer { allScratch in
                    let (input, output, scratchBase) = (SharedPointer(base: UnsafeMutablePointer(mutating: qkvData.baseAddress!)),
                                                        SharedPointer(base: ctx.baseAddress!), SharedPointer(base: allScratch.baseAddress!))
                    DispatchQueue.concurrentPerform(iterations: workers) { worker in
                        let s = scratchBase.base + worker * perWorker
                        for head in stride(from: worker, to: heads, by: workers) {
                            let q = input.base + head * d, k = q + h, v = q + 2 * h, out = output.base + head * d
                            if fused {
                                // context[:, head] (t, d) = softmax(scale · Q_h · K_hᵀ) · V_h, scores kept per query block
                                asr_attention_head(t, d, q, k, v, 3 * h, scale, out, h, s)
                                continue
                            }
                            // scores (t, t) = scale · Q_h · K_hᵀ
                            BLAS.gemm(m: t, n: t, k: d, a: q, lda: 3 * h, b: k, ldb: 3 * h, transposeB: true,
                                      c: s, ldc: t, alpha: scale, split: false)
                            VectorMath.softmaxRows(UnsafeMutableBufferPointer(start: s, count: t * t), rows: t, cols: t)
                            // context[:, head] (t, d) = P · V_h
                            BLAS.gemm(m: t, n: d, k: t, a: s, lda: t, b: v, ldb: 3 * h, transposeB: false,
                                      c: out, ldc: h, split: false)
                        }
                    }
                }
            }
        }
        return layer.out(context)
    }

    private func feedForward(_ x: Matrix, _ layer: EncoderLayer, _ activation: Activation) -> Matrix {
        var hidden = layer.intermediate(x)      // (t, intermediate)
        hidden.apply(activation)
        return layer.output(hidden)             // (t, hidden)
    }

    /// Post-LN layer (base): x = LN(x + Attn(x)); x = FinalLN(x + FFN(x)).
    private func postNormLayer(_ x: inout Matrix, _ layer: EncoderLayer, _ activation: Activation, _ fusedAttention: Bool,
                               profile: StageProfile?, clock: StageClock?) {
        x.add(attention(x, layer, fused: fusedAttention))
        clock?.lap(into: profile, \.attention)
        layer.attentionNorm.layerNorm(&x)
        clock?.lap(into: profile, \.norms)
        x.add(feedForward(x, layer, activation))
        clock?.lap(into: profile, \.feedForward)
        layer.finalNorm.layerNorm(&x)
        clock?.lap(into: profile, \.norms)
    }

    /// Stable pre-LN layer (large-lv60, XLS-R): x = x + Attn(LN(x)); x = x + FFN(FinalLN(x)).
    private func stableLayer(_ x: inout Matrix, _ layer: EncoderLayer, _ activation: Activation, _ fusedAttention: Bool,
                             profile: StageProfile?, clock: StageClock?) {
        var normed = x
        layer.attentionNorm.layerNorm(&normed)
        clock?.lap(into: profile, \.norms)
        x.add(attention(normed, layer, fused: fusedAttention))
        clock?.lap(into: profile, \.attention)
        normed = x
        layer.finalNorm.layerNorm(&normed)
        clock?.lap(into: profile, \.norms)
        x.add(feedForward(normed, layer, activation))
        clock?.lap(into: profile, \.feedForward)
    }
}

/// Seconds spent in each stage of the forward pass (accumulated over calls).
public final class StageProfile: @unchecked Sendable {  // used by one forward pass at a time
    /// Seconds in the convolutional feature encoder.
    public var featureEncoder = 0.0
    /// Seconds in the feature projection.
    public var featureProjection = 0.0
    /// Seconds in the positional convolution.
    public var positionalConvolution = 0.0
    /// Seconds in attention (projections included).
    public var attention = 0.0
    /// Seconds in the feed-forward layers.
    public var feedForward = 0.0
    /// Seconds in layer norms.
    public var norms = 0.0
    /// Seconds in the CTC head.
    public var head = 0.0

    /// A profile with every stage at zero.
    public init() {}

    /// Seconds in all stages together.
    public var total: Double { featureEncoder + featureProjection + positionalConvolution + attention + feedForward + norms + head }

    /// (name, seconds) in pipeline order.
    public var stages: [(String, Double)] {
        [("conv feature encoder", featureEncoder), ("feature projection", featureProjection),
         ("positional conv", positionalConvolution), ("attention", attention), ("feed-forward", feedForward),
         ("layer norms", norms), ("LM head", head)]
    }
}

/// Measures the time since the previous lap.
final class StageClock {
    private var last = DispatchTime.now().uptimeNanoseconds

    func lap(into profile: StageProfile?, _ stage: ReferenceWritableKeyPath<StageProfile, Double>) {
        let now = DispatchTime.now().uptimeNanoseconds
        profile?[keyPath: stage] += Double(now - last) / 1e9
        last = now
    }
}
