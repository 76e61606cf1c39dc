import Foundation

/// The CTC acoustic models of the wav2vec2 family: 16 kHz samples in, CTC logits (frames × vocab) out.
///
/// One network shape serves every family this engine loads; `Family` says which blocks each uses:
///
/// | family | feature encoder | positional embedding | layers |
/// |---|---|---|---|
/// | wav2vec2, HuBERT, UniSpeechSat | conv, group or layer norm | one weight-normed grouped conv | post-LN or pre-LN |
/// | MMS (wav2vec2 + `adapter_attn_dim`) | conv, layer norm | one weight-normed grouped conv | pre-LN + adapter |
/// | data2vec-audio | conv, layer norm | a stack of grouped convs with LayerNorm | post-LN |
/// | WavLM | conv, group or layer norm | one weight-normed grouped conv | post-LN or pre-LN, gated relative position bias |
/// | Conformer | conv, layer norm | none (its pos_conv_embed is stored but unused, as in transformers) | Conformer blocks, rotary or relative positions |
/// | w2v-BERT | log-mel filterbank (FFTW), two frames stacked | none | Conformer blocks (causal conv), relative-key, relative or rotary positions; optional adapter |
///
/// Layout: every activation is time-major (rows = time steps, cols = channels), so a convolution window over time
/// is one contiguous run of memory and every matrix product is a single `cblas_sgemm` — except attention's two per
/// head, which the fused C kernel (`asr_attention_head`) does where the CPU has AVX-512.
/// An instance is immutable after loading and safe to share across threads; each call owns its scratch memory.
public final class Wav2Vec2Model: Sendable {
    /// The architecture the weights were loaded for.
    public let configuration: Wav2Vec2Configuration
    /// `<base>.feature_extractor`, or w2v-BERT's filterbank (which has no weights)
    let frontEnd: FrontEnd
    /// `<base>.feature_projection`
    let featureProjection: FeatureProjection
    /// `<base>.encoder.pos_conv_embed`
    let positionalEmbedding: PositionalEmbedding
    /// `<base>.encoder.layer_norm`: before the layers (post-LN) or after them (stable pre-LN); w2v-BERT has none.
    let encoderNorm: NormParameters?
    /// `<base>.encoder.layers` (the Transformer families; empty for a Conformer)
    let layers: [TransformerLayer]
    /// `<base>.encoder.layers` of a Conformer (empty otherwise)
    let conformerLayers: [ConformerLayer]
    /// `<base>.encoder.embed_positions.inv_freq` of a rotary Conformer, where the checkpoint stores it.
    let rotaryInverseFrequencies: [Float]?
    /// `<base>.encoder.layers.0.attention.rel_attn_embed` (WavLM): the relative position bias every layer gates.
    let relativePositions: RelativePositionBuckets?
    /// `<base>.intermediate_ffn` (w2v-BERT with `use_intermediate_ffn_before_adapter`): x += ½·FFN(x), ReLU.
    let intermediateFeedForward: ConformerLayer.FeedForward?
    /// `<base>.adapter` (w2v-BERT with `add_adapter`)
    let adapter: Wav2Vec2BertAdapter?
    /// `lm_head`
    let head: Linear
    /// Number of weight values loaded.
    public let parameterCount: Int
    /// Number of values in the checkpoint, training-only tensors (`masked_spec_embed`) included: what transformers'
    /// `num_parameters()` and a training log count.
    public let storedParameterCount: Int
    /// Loading problems that did not stop it (e.g. NaN weights).
    public let warnings: [String]

    /// What turns samples into the frames the feature projection reads.
    enum FrontEnd: Sendable {
        /// The convolutional feature encoder: (samples, 1) → (frames, conv_dim[-1]).
        case convolution(ConvFeatureEncoder)
        /// w2v-BERT: (samples) → (stacked frames, 2 × mel bins).
        case filterbank(Filterbank)

        /// Values per frame out.
        var outChannels: Int {
            switch self {
            case .convolution(let encoder): encoder.outChannels
            case .filterbank(let filterbank): Filterbank.stacking * filterbank.bins
            }
        }
    }

    /// `<base>.feature_projection`: LayerNorm (absent in HuBERT with `feat_proj_layer_norm` false), then Linear.
    struct FeatureProjection: Sendable {
        let norm: NormParameters?  // .layer_norm
        let projection: Linear     // .projection
    }

    /// `<base>.encoder.pos_conv_embed`: what is added to the projected features before the layers.
    enum PositionalEmbedding: Sendable {
        /// wav2vec2, HuBERT, UniSpeechSat: GELU(conv(x)), `.conv` weight-normed.
        case convolution(GroupedTimeConvolution, Activation)
        /// The Conformer: nothing is added.
        case none
        /// data2vec-audio: `.layers.{i}` applied in turn, each GELU(LayerNorm(conv(x))) with a LayerNorm that has no
        /// weights (elementwise_affine=False).
        case convolutionStack([GroupedTimeConvolution], NormParameters, Activation)

        /// (frames, hidden) → (frames, hidden)
        func callAsFunction(_ x: Matrix) -> Matrix? {
            switch self {
            case .none:
                return nil
            case .convolution(let conv, let activation):
                var y = conv(x)
                y.apply(activation)
                return y
            case .convolutionStack(let convs, let norm, let activation):
                var y = x
                for conv in convs {
                    y = conv(y)
                    norm.layerNorm(&y)
                    y.apply(activation)
                }
                return y
            }
        }
    }

    // MARK: Loading

    /// Builds the network from `source`, checking every tensor's name and shape against `configuration`, with the
    /// large products' weights converted once to `precision` (see `Precision` for which layers).
    init(configuration c: Wav2Vec2Configuration, source: TensorSource, precision: Precision = .fp32) throws {
        try c.validate()
        configuration = c
        let prefix = source.shapes.keys.contains { $0.hasPrefix(c.weightPrefix) } ? c.weightPrefix : ""
        var loader = CheckpointLoader(source: source, prefix: prefix)
        let h = c.hiddenSize

        frontEnd = c.family == .wav2vec2Bert
            ? .filterbank(Filterbank(bins: c.featureProjectionInputDim / Filterbank.stacking))
            : .convolution(try ConvFeatureEncoder(loading: &loader, c, precision: precision))
        featureProjection = FeatureProjection(
            norm: c.hasFeatureProjectionNorm
                ? try loader.norm("feature_projection.layer_norm", channels: frontEnd.outChannels, eps: c.layerNormEps) : nil,
            projection: try loader.linear("feature_projection.projection", inFeatures: frontEnd.outChannels,
                                          outFeatures: h, precision: precision))

        let groups = c.numConvPosEmbeddingGroups, perGroup = h / groups
        let positionalPrecision = GroupedTimeConvolution.precision(for: precision)
        let activation = Activation(name: c.featExtractActivation)!  // validated with the configuration
        switch c.family {
        case .data2vecAudio:
            let kernel = c.convPosKernelSize
            positionalEmbedding = .convolutionStack(
                try (0..<c.numConvPosEmbeddings).map { i in
                    let key = "encoder.pos_conv_embed.layers.\(i).conv"
                    return GroupedTimeConvolution(
                        kernel: try loader.tensor(key + ".weight", shape: [h, perGroup, kernel]),
                        bias: try loader.tensor(key + ".bias", shape: [h]),
                        channels: h, kernel: kernel, groups: groups, precision: positionalPrecision)
                },
                NormParameters(weight: [Float](repeating: 1, count: h), bias: [Float](repeating: 0, count: h), eps: 1e-5),
                activation)
        case .conformer:
            // transformers builds encoder.pos_conv_embed for the Conformer but never calls it: the weights are
            // loaded there and ignored, so are they here.
            for name in ["conv.bias", "conv.weight_g", "conv.weight_v", "conv.parametrizations.weight.original0",
                         "conv.parametrizations.weight.original1", "conv.weight"] {
                loader.ignore("encoder.pos_conv_embed." + name)
            }
            positionalEmbedding = .none
        case .wav2vec2Bert:
            positionalEmbedding = .none
        case .wav2vec2, .hubert, .uniSpeechSat, .wavLM:
            let kernel = c.numConvPosEmbeddings
            positionalEmbedding = .convolution(
                GroupedTimeConvolution(
                    kernel: try loader.weightNormedConv("encoder.pos_conv_embed.conv", out: h, in: perGroup, kernel: kernel),
                    bias: try loader.tensor("encoder.pos_conv_embed.conv.bias", shape: [h]),
                    channels: h, kernel: kernel, groups: groups, precision: positionalPrecision),
                activation)
        }
        encoderNorm = c.family == .wav2vec2Bert ? nil : try loader.norm("encoder.layer_norm", channels: h, eps: c.layerNormEps)
        let conformer = c.family == .conformer || c.family == .wav2vec2Bert
        layers = conformer ? [] : try (0..<c.numHiddenLayers).map { n in
            try TransformerLayer(loading: &loader, "encoder.layers.\(n)", c, precision: precision)
        }
        conformerLayers = !conformer ? [] : try (0..<c.numHiddenLayers).map { n in
            try ConformerLayer(loading: &loader, "encoder.layers.\(n)", c, precision: precision)
        }
        let half = c.hiddenSize / c.numAttentionHeads / 2
        // (w2v-BERT's inv_freq is not persistent: never stored.)
        rotaryInverseFrequencies = conformer && c.conformerPositions == .rotary && loader.has("encoder.embed_positions.inv_freq")
            ? try loader.tensor("encoder.embed_positions.inv_freq", shape: [half]) : nil
        relativePositions = c.family == .wavLM && c.numHiddenLayers > 0
            ? RelativePositionBuckets(
                embedding: try loader.tensor("encoder.layers.0.attention.rel_attn_embed.weight", shape: [c.numBuckets, c.numAttentionHeads]),
                buckets: c.numBuckets, maxDistance: c.maxBucketDistance, heads: c.numAttentionHeads)
            : nil
        intermediateFeedForward = c.family == .wav2vec2Bert && c.useIntermediateFfnBeforeAdapter
            ? try ConformerLayer.FeedForward(loading: &loader, "intermediate_ffn", width: h, inner: c.intermediateSize,
                                             activation: .relu, precision: precision) : nil
        adapter = c.family == .wav2vec2Bert && c.addAdapter
            ? try Wav2Vec2BertAdapter(loading: &loader, c, precision: precision) : nil
        head = try loader.linear("lm_head", inFeatures: adapter == nil ? h : c.adapterWidth, outFeatures: c.vocabSize, prefixed: false)
        try loader.checkAllUsed()
        parameterCount = loader.used.reduce(0) { $0 + (source.shapes[$1]?.reduce(1, *) ?? 0) }
        // Quantization scales are storage, not parameters.
        storedParameterCount = source.shapes.filter { !$0.key.hasSuffix(Int8Checkpoint.scaleSuffix) }.values.reduce(0) { $0 + $1.reduce(1, *) }
        warnings = loader.warnings
    }

    /// This model with another language's adapters and head (MMS), from `source`, which holds them under the
    /// checkpoint's names; every other weight is shared with this model, not copied.
    func replacingLanguage(configuration c: Wav2Vec2Configuration, source: TensorSource) throws -> Wav2Vec2Model {
        let prefix = source.shapes.keys.contains { $0.hasPrefix(c.weightPrefix) } ? c.weightPrefix : ""
        var loader = CheckpointLoader(source: source, prefix: prefix)
        var layers = self.layers
        for n in layers.indices where layers[n].adapter != nil {
            layers[n].adapter = try AttentionAdapter(loading: &loader, "encoder.layers.\(n).adapter_layer", hidden: c.hiddenSize,
                                                     inner: c.adapterAttnDim ?? 0)
        }
        let head = try loader.linear("lm_head", inFeatures: c.hiddenSize, outFeatures: c.vocabSize, prefixed: false)
        let headChange = (head.outFeatures - self.head.outFeatures) * (c.hiddenSize + 1)
        return Wav2Vec2Model(sharing: self, configuration: c, layers: layers, head: head, parameterChange: headChange,
                             warnings: warnings + loader.warnings)
    }

    private init(sharing other: Wav2Vec2Model, configuration: Wav2Vec2Configuration, layers: [TransformerLayer], head: Linear,
                 parameterChange: Int, warnings: [String]) {
        self.configuration = configuration
        frontEnd = other.frontEnd
        featureProjection = other.featureProjection
        positionalEmbedding = other.positionalEmbedding
        encoderNorm = other.encoderNorm
        self.layers = layers
        conformerLayers = other.conformerLayers
        rotaryInverseFrequencies = other.rotaryInverseFrequencies
        relativePositions = other.relativePositions
        intermediateFeedForward = other.intermediateFeedForward
        adapter = other.adapter
        self.head = head
        parameterCount = other.parameterCount + parameterChange
        storedParameterCount = other.storedParameterCount + parameterChange
        self.warnings = warnings
    }

    // MARK: Forward pass

    /// CTC logits for normalised samples at the model's rate: (frames × vocab_size), row-major.
    /// Input shorter than the receptive field gives zero frames. `profile`, when given, receives the time spent in
    /// each stage.
    /// `fusedAttention` picks the attention implementation (both are exact to 1e-4; tests run each).
    func logits(for samples: [Float], profile: StageProfile? = nil, encoderBlockFrames: Int = ConvFeatureEncoder.blockFrames,
                fusedAttention: Bool = ExecutionOptions().fusedAttention) -> Matrix {
        let c = configuration
        let frames = c.frameCount(forSamples: samples.count)
        guard frames > 0 else { return Matrix(rows: 0, cols: c.vocabSize) }
        let clock = profile.map { _ in StageClock() }
        let featureEncoder: ConvFeatureEncoder
        switch frontEnd {
        case .filterbank(let filterbank): return bertLogits(for: samples, filterbank: filterbank, profile: profile, clock: clock)
        case .convolution(let encoder): featureEncoder = encoder
        }

        // 1. Feature encoder: (samples, 1) → (frames, conv_dim[-1]), in blocks of output frames
        var x = featureEncoder(samples, frames: frames, blockFrames: encoderBlockFrames)
        clock?.lap(into: profile, \.featureEncoder)

        // 2. Feature projection: LayerNorm over channels, then Linear → (frames, hidden)
        featureProjection.norm?.layerNorm(&x)
        x = featureProjection.projection(x)
        clock?.lap(into: profile, \.featureProjection)

        // 3. Positional embedding: x + pos_conv_embed(x)
        if let positions = positionalEmbedding(x) { x.add(positions) }
        clock?.lap(into: profile, \.positionalConvolution)

        // 4. Conformer: blocks with rotary or relative positions, LayerNorm after them
        if !conformerLayers.isEmpty {
            let positions = ConformerPositions(c, frames: frames, inverseFrequencies: rotaryInverseFrequencies)
            for layer in conformerLayers { layer(&x, positions: positions, valid: frames, profile: profile, clock: clock) }
            encoderNorm?.layerNorm(&x)
            clock?.lap(into: profile, \.norms)
            let out = head(x)
            clock?.lap(into: profile, \.head)
            return out
        }

        // 4. Transformer encoder: post-LN normalises before the layers, stable pre-LN after them. WavLM: the
        //    relative position bias of every offset, (heads, 2·frames − 1), computed once for all layers.
        let positions = relativePositions?.table(frames: frames)
        if c.doStableLayerNorm {
            for layer in layers { layer.preNorm(&x, fusedAttention: fusedAttention, positions: positions, profile: profile, clock: clock) }
            encoderNorm?.layerNorm(&x)
        } else {
            encoderNorm?.layerNorm(&x)
            for layer in layers { layer.postNorm(&x, fusedAttention: fusedAttention, positions: positions, profile: profile, clock: clock) }
        }
        clock?.lap(into: profile, \.norms)

        // 5. LM head: (frames, hidden) → (frames, vocab)
        let out = head(x)
        clock?.lap(into: profile, \.head)
        return out
    }

    /// w2v-BERT (Wav2Vec2BertForCTC after SeamlessM4TFeatureExtractor, with its attention mask).
    private func bertLogits(for samples: [Float], filterbank: Filterbank, profile: StageProfile?, clock: StageClock?) -> Matrix {
        let c = configuration
        guard let frames = c.filterbankFrames(forSamples: samples.count) else { return Matrix(rows: 0, cols: c.vocabSize) }

        // 1. Filterbank: samples → (stacked frames, 2 × mel bins); an odd count of frames pads the last one, masked
        var x = filterbank(samples, frames: frames.filterbank)
        profile?.featureEncoderName = "filterbank"
        clock?.lap(into: profile, \.featureEncoder)

        // 2. Feature projection: LayerNorm, Linear → (frames, hidden); the masked frame set to zero
        featureProjection.norm?.layerNorm(&x)
        x = featureProjection.projection(x)
        if frames.valid < x.rows { for i in (frames.valid * x.cols)..<x.storage.count { x.storage[i] = 0 } }
        clock?.lap(into: profile, \.featureProjection)

        // 3. Conformer layers; no query attends to the masked frame
        let positions = ConformerPositions(c, frames: x.rows, inverseFrequencies: rotaryInverseFrequencies)
        for layer in conformerLayers { layer(&x, positions: positions, valid: frames.valid, profile: profile, clock: clock) }

        // 4. x += ½·FFN(x) before the adapter, when the model has one
        if let intermediateFeedForward { x.add(intermediateFeedForward(x), scaledBy: 0.5) }
        clock?.lap(into: profile, \.feedForward)

        // 5. Adapter: each layer divides the frame rate by its stride (2)
        if let adapter { x = adapter(x, valid: frames.valid) }
        clock?.lap(into: profile, \.attention)  // (mostly the adapter's attention and its strided convolutions)

        // 6. LM head
        let out = head(x)
        clock?.lap(into: profile, \.head)
        return out
    }
}

/// Seconds spent in each stage of the forward pass (accumulated over calls).
public final class StageProfile: @unchecked Sendable {  // used by one forward pass at a time
    /// Seconds in the feature encoder: the convolutional one, or w2v-BERT's filterbank.
    public var featureEncoder = 0.0
    /// What the first stage is: "conv feature encoder", or "filterbank" (w2v-BERT).
    public var featureEncoderName = "conv feature encoder"
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
        [(featureEncoderName, featureEncoder), ("feature projection", featureProjection),
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
