import Foundation

/// The fields of a Hugging Face `config.json` that shape a Wav2Vec2ForCTC network. Names mirror the JSON keys;
/// absent keys take transformers' `Wav2Vec2Config` defaults.
public struct Wav2Vec2Configuration: Codable, Sendable, Equatable {
    /// Layout of the convolutional front end's normalisation: `.group` (base) or `.layer` (large-lv60, XLS-R).
    public enum FeatureExtractorNorm: String, Codable, Sendable { case group, layer }

    /// `model_type`: "wav2vec2", "hubert", "wavlm", ...
    public var modelType: String
    /// `architectures`: the model classes, e.g. ["Wav2Vec2ForCTC"]; nil when the file names none.
    public var architectures: [String]?
    /// `feat_extract_norm`: the feature encoder's normalisation.
    public var featExtractNorm: FeatureExtractorNorm
    /// `feat_extract_activation`: the feature encoder's activation ("gelu").
    public var featExtractActivation: String
    /// `conv_dim`: output channels of each feature-encoder convolution.
    public var convDim: [Int]
    /// `conv_stride`: stride of each feature-encoder convolution.
    public var convStride: [Int]
    /// `conv_kernel`: kernel width of each feature-encoder convolution.
    public var convKernel: [Int]
    /// `conv_bias`: whether the feature-encoder convolutions have biases.
    public var convBias: Bool
    /// `num_feat_extract_layers`: must match `convDim.count` when given; nil when absent.
    public var numFeatExtractLayers: Int?
    /// `num_conv_pos_embeddings`: kernel width of the positional convolution; in data2vec-audio, the number of
    /// positional convolution layers.
    public var numConvPosEmbeddings: Int
    /// `conv_pos_kernel_size`: kernel width of each positional convolution layer (data2vec-audio only).
    public var convPosKernelSize: Int
    /// `num_conv_pos_embedding_groups`: groups of the positional convolution.
    public var numConvPosEmbeddingGroups: Int
    /// `hidden_size`: the transformer's width.
    public var hiddenSize: Int
    /// `num_hidden_layers`: the number of transformer layers.
    public var numHiddenLayers: Int
    /// `num_attention_heads`: attention heads per layer.
    public var numAttentionHeads: Int
    /// `intermediate_size`: the feed-forward layers' inner width.
    public var intermediateSize: Int
    /// `hidden_act`: the feed-forward activation ("gelu").
    public var hiddenAct: String
    /// `layer_norm_eps`: the epsilon of every layer norm.
    public var layerNormEps: Float
    /// `do_stable_layer_norm`: layer norm before attention and feed-forward (large-lv60, XLS-R) instead of after.
    public var doStableLayerNorm: Bool
    /// `vocab_size`: columns of the CTC head.
    public var vocabSize: Int
    /// `pad_token_id`: the CTC blank.
    public var padTokenId: Int
    /// `add_adapter`: a convolutional adapter after the encoder; not supported.
    public var addAdapter: Bool
    /// `feat_proj_layer_norm`: whether the feature projection has a layer norm; nil means yes (always yes for wav2vec2).
    public var featProjLayerNorm: Bool?
    /// `adapter_attn_dim`: the inner width of MMS's per-language attention adapters (in stable-layer-norm layers);
    /// nil when the model has none.
    public var adapterAttnDim: Int?
    /// `position_embeddings_type` of a Conformer: "relative" (the default), "rotary", or null for none.
    public var positionEmbeddingsType: String?
    /// `rotary_embedding_base`: the Conformer's rotary base (10000).
    public var rotaryEmbeddingBase: Int
    /// `conv_depthwise_kernel_size`: the Conformer convolution module's kernel width (odd; 31).
    public var convDepthwiseKernelSize: Int
    /// `num_buckets`: WavLM's relative position buckets (both directions together).
    public var numBuckets: Int
    /// `max_bucket_distance`: WavLM's largest distinguished offset, in frames.
    public var maxBucketDistance: Int
    /// HuBERT variant with a batch-norm positional convolution; not supported.
    public var convPosBatchNorm: Bool?
    /// `feature_projection_input_dim` (w2v-BERT): values per stacked filterbank frame, mel bins × 2 (160).
    public var featureProjectionInputDim: Int
    /// `left_max_position_embeddings` (w2v-BERT, relative-key attention): the farthest offset to the left that has
    /// its own embedding; offsets beyond share it (64).
    public var leftMaxPositionEmbeddings: Int
    /// `right_max_position_embeddings` (w2v-BERT, relative-key attention): the same to the right (8).
    public var rightMaxPositionEmbeddings: Int
    /// `adapter_kernel_size` (w2v-BERT's adapter): kernel width of its two strided convolutions (3).
    public var adapterKernelSize: Int
    /// `adapter_stride` (w2v-BERT's adapter): their stride; each adapter layer divides the frame rate by it (2).
    public var adapterStride: Int
    /// `num_adapter_layers` (w2v-BERT's adapter): adapter layers after the encoder when `add_adapter` (1).
    public var numAdapterLayers: Int
    /// `adapter_act` (w2v-BERT's adapter): the activation of its feed-forward ("relu").
    public var adapterAct: String
    /// `use_intermediate_ffn_before_adapter` (w2v-BERT): half a ReLU feed-forward added after the encoder.
    public var useIntermediateFfnBeforeAdapter: Bool
    /// `output_hidden_size` (w2v-BERT's adapter): its width, after a projection when it differs from `hidden_size`;
    /// nil means `hidden_size`.
    public var outputHiddenSize: Int?

    enum CodingKeys: String, CodingKey {
        case modelType = "model_type"
        case architectures
        case featExtractNorm = "feat_extract_norm"
        case featExtractActivation = "feat_extract_activation"
        case convDim = "conv_dim"
        case convStride = "conv_stride"
        case convKernel = "conv_kernel"
        case convBias = "conv_bias"
        case numFeatExtractLayers = "num_feat_extract_layers"
        case numConvPosEmbeddings = "num_conv_pos_embeddings"
        case numConvPosEmbeddingGroups = "num_conv_pos_embedding_groups"
        case convPosKernelSize = "conv_pos_kernel_size"
        case hiddenSize = "hidden_size"
        case numHiddenLayers = "num_hidden_layers"
        case numAttentionHeads = "num_attention_heads"
        case intermediateSize = "intermediate_size"
        case hiddenAct = "hidden_act"
        case layerNormEps = "layer_norm_eps"
        case doStableLayerNorm = "do_stable_layer_norm"
        case vocabSize = "vocab_size"
        case padTokenId = "pad_token_id"
        case addAdapter = "add_adapter"
        case featProjLayerNorm = "feat_proj_layer_norm"
        case adapterAttnDim = "adapter_attn_dim"
        case convPosBatchNorm = "conv_pos_batch_norm"
        case numBuckets = "num_buckets"
        case positionEmbeddingsType = "position_embeddings_type"
        case rotaryEmbeddingBase = "rotary_embedding_base"
        case convDepthwiseKernelSize = "conv_depthwise_kernel_size"
        case maxBucketDistance = "max_bucket_distance"
        case featureProjectionInputDim = "feature_projection_input_dim"
        case leftMaxPositionEmbeddings = "left_max_position_embeddings"
        case rightMaxPositionEmbeddings = "right_max_position_embeddings"
        case adapterKernelSize = "adapter_kernel_size"
        case adapterStride = "adapter_stride"
        case numAdapterLayers = "num_adapter_layers"
        case adapterAct = "adapter_act"
        case useIntermediateFfnBeforeAdapter = "use_intermediate_ffn_before_adapter"
        case outputHiddenSize = "output_hidden_size"
    }

    /// The facebook/wav2vec2-base-960h architecture (transformers' defaults).
    public init() {
        modelType = "wav2vec2"
        architectures = nil
        featExtractNorm = .group
        featExtractActivation = "gelu"
        convDim = Array(repeating: 512, count: 7)
        convStride = [5, 2, 2, 2, 2, 2, 2]
        convKernel = [10, 3, 3, 3, 3, 2, 2]
        convBias = false
        numFeatExtractLayers = nil
        numConvPosEmbeddings = 128
        numConvPosEmbeddingGroups = 16
        convPosKernelSize = 19
        hiddenSize = 768
        numHiddenLayers = 12
        numAttentionHeads = 12
        intermediateSize = 3072
        hiddenAct = "gelu"
        layerNormEps = 1e-5
        doStableLayerNorm = false
        vocabSize = 32
        padTokenId = 0
        addAdapter = false
        featProjLayerNorm = nil
        adapterAttnDim = nil
        convPosBatchNorm = nil
        numBuckets = 320
        maxBucketDistance = 800
        positionEmbeddingsType = "relative"
        rotaryEmbeddingBase = 10000
        convDepthwiseKernelSize = 31
        featureProjectionInputDim = 160
        leftMaxPositionEmbeddings = 64
        rightMaxPositionEmbeddings = 8
        adapterKernelSize = 3
        adapterStride = 2
        numAdapterLayers = 1
        adapterAct = "relu"
        useIntermediateFfnBeforeAdapter = false
        outputHiddenSize = nil
    }

    /// Decodes `config.json`; keys it lacks take the defaults of `init()`.
    public init(from decoder: Decoder) throws {
        let d = Wav2Vec2Configuration()
        let c = try decoder.container(keyedBy: CodingKeys.self)
        modelType = try c.decodeIfPresent(String.self, forKey: .modelType) ?? d.modelType
        architectures = try c.decodeIfPresent([String].self, forKey: .architectures)
        let norm = try c.decodeIfPresent(String.self, forKey: .featExtractNorm) ?? d.featExtractNorm.rawValue
        guard let parsedNorm = FeatureExtractorNorm(rawValue: norm) else {
            throw ASRError.unsupportedConfiguration(field: "feat_extract_norm", value: "\"\(norm)\" (expected \"group\" or \"layer\")")
        }
        featExtractNorm = parsedNorm
        featExtractActivation = try c.decodeIfPresent(String.self, forKey: .featExtractActivation) ?? d.featExtractActivation
        convDim = try c.decodeIfPresent([Int].self, forKey: .convDim) ?? d.convDim
        convStride = try c.decodeIfPresent([Int].self, forKey: .convStride) ?? d.convStride
        convKernel = try c.decodeIfPresent([Int].self, forKey: .convKernel) ?? d.convKernel
        convBias = try c.decodeIfPresent(Bool.self, forKey: .convBias) ?? d.convBias
        numFeatExtractLayers = try c.decodeIfPresent(Int.self, forKey: .numFeatExtractLayers)
        // data2vec-audio's defaults: five positional layers of width 19 (Data2VecAudioConfig).
        numConvPosEmbeddings = try c.decodeIfPresent(Int.self, forKey: .numConvPosEmbeddings)
            ?? (modelType == Family.data2vecAudio.rawValue ? 5 : d.numConvPosEmbeddings)
        convPosKernelSize = try c.decodeIfPresent(Int.self, forKey: .convPosKernelSize) ?? d.convPosKernelSize
        numConvPosEmbeddingGroups = try c.decodeIfPresent(Int.self, forKey: .numConvPosEmbeddingGroups) ?? d.numConvPosEmbeddingGroups
        hiddenSize = try c.decodeIfPresent(Int.self, forKey: .hiddenSize) ?? d.hiddenSize
        numHiddenLayers = try c.decodeIfPresent(Int.self, forKey: .numHiddenLayers) ?? d.numHiddenLayers
        numAttentionHeads = try c.decodeIfPresent(Int.self, forKey: .numAttentionHeads) ?? d.numAttentionHeads
        intermediateSize = try c.decodeIfPresent(Int.self, forKey: .intermediateSize) ?? d.intermediateSize
        let bert = modelType == Family.wav2vec2Bert.rawValue
        // Wav2Vec2BertConfig's defaults differ: swish, relative-key attention.
        hiddenAct = try c.decodeIfPresent(String.self, forKey: .hiddenAct) ?? (bert ? "swish" : d.hiddenAct)
        layerNormEps = try c.decodeIfPresent(Float.self, forKey: .layerNormEps) ?? d.layerNormEps
        doStableLayerNorm = try c.decodeIfPresent(Bool.self, forKey: .doStableLayerNorm) ?? d.doStableLayerNorm
        vocabSize = try c.decodeIfPresent(Int.self, forKey: .vocabSize) ?? d.vocabSize
        padTokenId = try c.decodeIfPresent(Int.self, forKey: .padTokenId) ?? d.padTokenId
        addAdapter = try c.decodeIfPresent(Bool.self, forKey: .addAdapter) ?? d.addAdapter
        featProjLayerNorm = try c.decodeIfPresent(Bool.self, forKey: .featProjLayerNorm)
        adapterAttnDim = try c.decodeIfPresent(Int.self, forKey: .adapterAttnDim)
        convPosBatchNorm = try c.decodeIfPresent(Bool.self, forKey: .convPosBatchNorm)
        numBuckets = try c.decodeIfPresent(Int.self, forKey: .numBuckets) ?? d.numBuckets
        // Absent: transformers' default "relative"; null: no position embedding.
        positionEmbeddingsType = c.contains(.positionEmbeddingsType)
            ? try c.decodeIfPresent(String.self, forKey: .positionEmbeddingsType) : (bert ? "relative_key" : d.positionEmbeddingsType)
        rotaryEmbeddingBase = try c.decodeIfPresent(Int.self, forKey: .rotaryEmbeddingBase) ?? d.rotaryEmbeddingBase
        convDepthwiseKernelSize = try c.decodeIfPresent(Int.self, forKey: .convDepthwiseKernelSize) ?? d.convDepthwiseKernelSize
        maxBucketDistance = try c.decodeIfPresent(Int.self, forKey: .maxBucketDistance) ?? d.maxBucketDistance
        featureProjectionInputDim = try c.decodeIfPresent(Int.self, forKey: .featureProjectionInputDim) ?? d.featureProjectionInputDim
        leftMaxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .leftMaxPositionEmbeddings) ?? d.leftMaxPositionEmbeddings
        rightMaxPositionEmbeddings = try c.decodeIfPresent(Int.self, forKey: .rightMaxPositionEmbeddings) ?? d.rightMaxPositionEmbeddings
        adapterKernelSize = try c.decodeIfPresent(Int.self, forKey: .adapterKernelSize) ?? d.adapterKernelSize
        adapterStride = try c.decodeIfPresent(Int.self, forKey: .adapterStride) ?? d.adapterStride
        numAdapterLayers = try c.decodeIfPresent(Int.self, forKey: .numAdapterLayers) ?? d.numAdapterLayers
        adapterAct = try c.decodeIfPresent(String.self, forKey: .adapterAct) ?? d.adapterAct
        useIntermediateFfnBeforeAdapter = try c.decodeIfPresent(Bool.self, forKey: .useIntermediateFfnBeforeAdapter)
            ?? d.useIntermediateFfnBeforeAdapter
        outputHiddenSize = try c.decodeIfPresent(Int.self, forKey: .outputHiddenSize)
    }

    /// Reads and validates a `config.json` file.
    public static func load(from url: URL) throws -> Wav2Vec2Configuration {
        try decode(readModelFile(url), fileName: url.lastPathComponent)
    }

    /// Decodes and validates the contents of `config.json`.
    static func decode(_ data: Data, fileName: String = "config.json") throws -> Wav2Vec2Configuration {
        let config: Wav2Vec2Configuration
        do {
            config = try JSONDecoder().decode(Wav2Vec2Configuration.self, from: data)
        } catch let error as ASRError {
            throw error
        } catch let DecodingError.typeMismatch(type, context) {
            throw ASRError.invalidConfiguration(field: context.codingPath.jsonPath, reason: "expected \(type)")
        } catch let DecodingError.valueNotFound(type, context) {
            throw ASRError.invalidConfiguration(field: context.codingPath.jsonPath, reason: "expected \(type), found null")
        } catch let DecodingError.dataCorrupted(context) {
            if context.codingPath.isEmpty {
                throw ASRError.malformedJSON(file: fileName, reason: context.debugDescription)
            }
            throw ASRError.invalidConfiguration(field: context.codingPath.jsonPath, reason: context.debugDescription)
        } catch {
            throw ASRError.malformedJSON(file: fileName, reason: "\(error)")
        }
        try config.validate()
        return config
    }

    /// Rejects configurations this engine would run wrongly, and dimensions no real model has (so a hostile file
    /// cannot make us allocate absurd amounts of memory).
    public func validate() throws {
        guard Self.supportedModels[modelType] != nil else {
            throw ASRError.unsupportedConfiguration(
                field: "model_type", value: "\"\(modelType)\" (supported: \(Self.supportedModels.keys.sorted().joined(separator: ", ")))")
        }
        let supportedArchitectures = Self.supportedModels.values.sorted()
        if let architectures, !architectures.isEmpty, !architectures.contains(where: supportedArchitectures.contains) {
            throw ASRError.unsupportedConfiguration(
                field: "architectures", value: "\(architectures) (supported: \(supportedArchitectures.joined(separator: ", ")))")
        }
        if convPosBatchNorm == true {
            throw ASRError.unsupportedConfiguration(field: "conv_pos_batch_norm", value: "true")
        }
        // wav2vec2's own adapter (Wav2Vec2Adapter, conv + LayerDrop) is not w2v-BERT's (Conformer-style layers).
        if addAdapter, family != .wav2vec2Bert { throw ASRError.unsupportedConfiguration(field: "add_adapter", value: "true") }
        if let adapterAttnDim {
            guard family == .wav2vec2 else {
                throw ASRError.unsupportedConfiguration(field: "adapter_attn_dim", value: "\(adapterAttnDim) in a \(modelType) model")
            }
            guard (1...65536).contains(adapterAttnDim) else {
                throw ASRError.invalidConfiguration(field: "adapter_attn_dim", reason: "\(adapterAttnDim) is outside 1...65536")
            }
        }
        for (field, name) in [(featExtractActivation, "feat_extract_activation"), (hiddenAct, "hidden_act"), (adapterAct, "adapter_act")] {
            guard Activation(name: field) != nil else {
                throw ASRError.unsupportedConfiguration(
                    field: name, value: "\"\(field)\" (supported: \(Activation.supportedNames.joined(separator: ", ")))")
            }
        }

        func check(_ value: Int, _ field: String, _ range: ClosedRange<Int>) throws {
            guard range.contains(value) else {
                throw ASRError.invalidConfiguration(field: field, reason: "\(value) is outside \(range.lowerBound)...\(range.upperBound)")
            }
        }
        guard !convDim.isEmpty else { throw ASRError.invalidConfiguration(field: "conv_dim", reason: "empty") }
        guard convDim.count <= 64 else { throw ASRError.invalidConfiguration(field: "conv_dim", reason: "more than 64 layers") }
        guard convStride.count == convDim.count, convKernel.count == convDim.count else {
            throw ASRError.invalidConfiguration(
                field: "conv_dim", reason: "conv_dim, conv_stride and conv_kernel have lengths \(convDim.count), \(convStride.count), \(convKernel.count)")
        }
        if let n = numFeatExtractLayers, n != convDim.count {
            throw ASRError.invalidConfiguration(field: "num_feat_extract_layers", reason: "\(n) but conv_dim has \(convDim.count) entries")
        }
        for i in convDim.indices {
            try check(convDim[i], "conv_dim[\(i)]", 1...16384)
            try check(convKernel[i], "conv_kernel[\(i)]", 1...4096)
            try check(convStride[i], "conv_stride[\(i)]", 1...4096)
        }
        try check(hiddenSize, "hidden_size", 1...65536)
        try check(numHiddenLayers, "num_hidden_layers", 0...1024)
        try check(numAttentionHeads, "num_attention_heads", 1...hiddenSize)
        try check(intermediateSize, "intermediate_size", 1...262144)
        try check(numConvPosEmbeddings, "num_conv_pos_embeddings", 1...4096)
        try check(numConvPosEmbeddingGroups, "num_conv_pos_embedding_groups", 1...hiddenSize)
        if family == .conformer || family == .wav2vec2Bert {
            guard let positions = conformerPositions, family == .wav2vec2Bert || positions != .relativeKey else {
                let supported = family == .wav2vec2Bert ? "relative_key, relative, rotary, null" : "relative, rotary, null"
                throw ASRError.unsupportedConfiguration(
                    field: "position_embeddings_type", value: "\"\(positionEmbeddingsType ?? "")\" (supported: \(supported))")
            }
            try check(convDepthwiseKernelSize, "conv_depthwise_kernel_size", 1...4095)
            guard convDepthwiseKernelSize % 2 == 1 else {
                throw ASRError.invalidConfiguration(field: "conv_depthwise_kernel_size", reason: "\(convDepthwiseKernelSize) is even (same padding needs odd)")
            }
            try check(rotaryEmbeddingBase, "rotary_embedding_base", 2...100_000_000)
            if positionEmbeddingsType == "rotary", (hiddenSize / numAttentionHeads) % 2 != 0 {
                throw ASRError.invalidConfiguration(field: "num_attention_heads", reason: "rotary positions need an even head size")
            }
        }
        if family == .wav2vec2Bert {
            try check(featureProjectionInputDim, "feature_projection_input_dim", 2...1024)
            guard featureProjectionInputDim % Self.filterbankStacking == 0 else {
                throw ASRError.invalidConfiguration(
                    field: "feature_projection_input_dim",
                    reason: "\(featureProjectionInputDim) is not a whole number of mel bins × \(Self.filterbankStacking) stacked frames")
            }
            try check(leftMaxPositionEmbeddings, "left_max_position_embeddings", 0...100_000)
            try check(rightMaxPositionEmbeddings, "right_max_position_embeddings", 0...100_000)
            if addAdapter {
                try check(numAdapterLayers, "num_adapter_layers", 0...16)
                try check(adapterKernelSize, "adapter_kernel_size", 1...64)
                try check(adapterStride, "adapter_stride", 1...64)
                try check(adapterWidth, "output_hidden_size", 1...65536)
                guard adapterWidth % numAttentionHeads == 0 else {
                    throw ASRError.invalidConfiguration(
                        field: "output_hidden_size", reason: "\(adapterWidth) is not divisible by num_attention_heads \(numAttentionHeads)")
                }
            }
        } else if useIntermediateFfnBeforeAdapter {
            throw ASRError.unsupportedConfiguration(field: "use_intermediate_ffn_before_adapter", value: "true in a \(modelType) model")
        }
        if family == .wavLM {
            try check(numBuckets, "num_buckets", 4...1_000_000)
            try check(maxBucketDistance, "max_bucket_distance", numBuckets / 4 + 1...100_000_000)
        }
        if family == .data2vecAudio {
            try check(numConvPosEmbeddings, "num_conv_pos_embeddings", 0...64)
            try check(convPosKernelSize, "conv_pos_kernel_size", 1...4096)
        }
        try check(vocabSize, "vocab_size", 1...1_000_000)
        try check(padTokenId, "pad_token_id", 0...(vocabSize - 1))
        guard hiddenSize % numAttentionHeads == 0 else {
            throw ASRError.invalidConfiguration(field: "num_attention_heads", reason: "\(numAttentionHeads) does not divide hidden_size \(hiddenSize)")
        }
        guard hiddenSize % numConvPosEmbeddingGroups == 0 else {
            throw ASRError.invalidConfiguration(
                field: "num_conv_pos_embedding_groups", reason: "\(numConvPosEmbeddingGroups) does not divide hidden_size \(hiddenSize)")
        }
        guard layerNormEps.isFinite, layerNormEps >= 0 else {
            throw ASRError.invalidConfiguration(field: "layer_norm_eps", reason: "\(layerNormEps) is not a non-negative number")
        }
    }

    /// The model families this engine runs, by `model_type`.
    public enum Family: String, CaseIterable, Sendable {
        /// Wav2Vec2ForCTC: wav2vec2 base/large, XLS-R, MMS (with `adapter_attn_dim`).
        case wav2vec2
        /// HubertForCTC.
        case hubert
        /// Data2VecAudioForCTC.
        case data2vecAudio = "data2vec-audio"
        /// UniSpeechSatForCTC.
        case uniSpeechSat = "unispeech-sat"
        /// WavLMForCTC.
        case wavLM = "wavlm"
        /// Wav2Vec2ConformerForCTC (rotary or relative positions).
        case conformer = "wav2vec2-conformer"
        /// Wav2Vec2BertForCTC (w2v-BERT 2.0): a log-mel filterbank front end and Conformer layers.
        case wav2vec2Bert = "wav2vec2-bert"

        /// The transformers class of the CTC model.
        public var architecture: String {
            switch self {
            case .wav2vec2: "Wav2Vec2ForCTC"
            case .hubert: "HubertForCTC"
            case .data2vecAudio: "Data2VecAudioForCTC"
            case .uniSpeechSat: "UniSpeechSatForCTC"
            case .wavLM: "WavLMForCTC"
            case .conformer: "Wav2Vec2ConformerForCTC"
            case .wav2vec2Bert: "Wav2Vec2BertForCTC"
            }
        }

        /// The attribute transformers keeps the base model in, which prefixes its checkpoint keys.
        var basePrefix: String {
            switch self {
            case .wav2vec2: "wav2vec2."
            case .hubert: "hubert."
            case .data2vecAudio: "data2vec_audio."
            case .uniSpeechSat: "unispeech_sat."
            case .wavLM: "wavlm."
            case .conformer: "wav2vec2_conformer."
            case .wav2vec2Bert: "wav2vec2_bert."
            }
        }
    }

    /// A Conformer's position embedding.
    public enum ConformerPositionKind: Sendable {
        /// `position_embeddings_type` null: no position embedding.
        case absent
        /// Rotary embeddings on the query and key inputs.
        case rotary
        /// Transformer-XL relative embeddings with `pos_bias_u`/`pos_bias_v`.
        case relative
        /// w2v-BERT's "relative_key" (Shaw): a learned embedding per clamped offset, dotted with each query.
        case relativeKey
    }

    /// `position_embeddings_type` read: nil for a value this engine does not know.
    public var conformerPositions: ConformerPositionKind? {
        switch positionEmbeddingsType {
        case nil: .absent
        case "rotary": .rotary
        case "relative": .relative
        case "relative_key": .relativeKey
        default: nil
        }
    }

    /// The family `model_type` names (validated: `validate()` refuses any other).
    public var family: Family { Family(rawValue: modelType) ?? .wav2vec2 }

    /// model_type → the CTC architecture it names.
    public static let supportedModels = Dictionary(uniqueKeysWithValues: Family.allCases.map { ($0.rawValue, $0.architecture) })

    /// The checkpoint's key prefix for the base model ("wav2vec2.", "hubert.", "data2vec_audio.", "unispeech_sat.").
    public var weightPrefix: String { family.basePrefix }

    /// Whether the feature projection starts with a LayerNorm: for HuBERT as `feat_proj_layer_norm` says (default
    /// true); always for the other families.
    public var hasFeatureProjectionNorm: Bool { family != .hubert || (featProjLayerNorm ?? true) }

    /// The feature encoder's normalisation: data2vec-audio always has a LayerNorm per layer (it has no
    /// `feat_extract_norm`); the others follow `feat_extract_norm`.
    public var featureEncoderNorm: FeatureExtractorNorm { family == .data2vecAudio ? .layer : featExtractNorm }

    // MARK: Derived quantities

    /// w2v-BERT's filterbank: 25 ms windows (400 samples at 16 kHz) every 10 ms (160), two frames stacked into one.
    static let filterbankWindow = 400, filterbankHop = 160, filterbankStacking = 2

    /// The width of w2v-BERT's adapter layers (`output_hidden_size`, else `hidden_size`).
    public var adapterWidth: Int { outputHiddenSize ?? hiddenSize }

    /// Adapter layers that run (w2v-BERT with `add_adapter`; none otherwise).
    var adapterLayerCount: Int { family == .wav2vec2Bert && addAdapter ? numAdapterLayers : 0 }

    /// Input samples per output frame: the product of the conv strides (320 for every released model); w2v-BERT:
    /// 160 × 2 stacked filterbank frames, times the adapter's stride per adapter layer.
    public var samplesPerFrame: Int {
        guard family == .wav2vec2Bert else { return convStride.reduce(1, *) }
        var hop = Self.filterbankHop * Self.filterbankStacking
        for _ in 0..<adapterLayerCount { hop *= adapterStride }
        return hop
    }

    /// Number of input samples one output frame sees (400 for released models; w2v-BERT: two filterbank windows, 560,
    /// the least from which its per-bin normalisation is defined).
    public var receptiveField: Int {
        if family == .wav2vec2Bert { return Self.filterbankWindow + (Self.filterbankStacking - 1) * Self.filterbankHop }
        // Walking back from one output frame: each layer needs (n - 1) * stride + kernel inputs for n outputs.
        var n = 1
        for i in convDim.indices.reversed() { n = (n - 1) * convStride[i] + convKernel[i] }
        return n
    }

    /// w2v-BERT: (filterbank frames, stacked frames the encoder runs on, of which the first `valid` are real) for
    /// `samples` samples. SeamlessM4TFeatureExtractor pads an odd count of frames with one more and masks the stacked
    /// frame that holds it. Nil below two filterbank frames (its normalisation divides by n − 1).
    func filterbankFrames(forSamples samples: Int) -> (filterbank: Int, stacked: Int, valid: Int)? {
        guard samples >= Self.filterbankWindow else { return nil }
        let frames = (samples - Self.filterbankWindow) / Self.filterbankHop + 1
        guard frames >= 2 else { return nil }
        let stacking = Self.filterbankStacking
        let stacked = (frames + stacking - 1) / stacking
        return (frames, stacked, frames / stacking)
    }

    /// w2v-BERT's adapter layer: frames out for `frames` in (Conv1d, padding stride / 2).
    func adapterFrames(_ frames: Int) -> Int {
        Self.convolutionFrames(frames, kernel: adapterKernelSize, stride: adapterStride, padding: adapterStride / 2)
    }

    /// Outputs of a Conv1d over `frames` inputs (none when the padded input is shorter than the kernel).
    static func convolutionFrames(_ frames: Int, kernel: Int, stride: Int, padding: Int) -> Int {
        let span = frames + 2 * padding - kernel
        return span < 0 ? 0 : span / stride + 1
    }

    /// Number of CTC frames the model emits for `samples` input samples (0 when shorter than the receptive field).
    public func frameCount(forSamples samples: Int) -> Int {
        if family == .wav2vec2Bert {
            guard var frames = filterbankFrames(forSamples: samples)?.stacked else { return 0 }
            for _ in 0..<adapterLayerCount { frames = adapterFrames(frames) }
            return frames
        }
        var length = samples
        for i in convDim.indices {
            guard length >= convKernel[i] else { return 0 }
            length = (length - convKernel[i]) / convStride[i] + 1
        }
        return length
    }

    /// Floating-point operations (multiply and add counted separately) of one forward pass over `samples`.
    public func flops(forSamples samples: Int) -> Double { stageFlops(forSamples: samples).total }

    /// The same operations per stage of ``StageProfile``, each split by the number format its products run in when
    /// the model is loaded with `precision` on this machine (`asr bench` divides them by the measured peaks).
    package func stageFlops(forSamples samples: Int, precision: Precision = .fp32) -> StageFlops {
        var stages = StageFlops()
        var length = samples, inChannels = 1
        let conformer = family == .conformer || family == .wav2vec2Bert
        // The formats the layers actually run in (see ConvFeatureEncoder and GroupedTimeConvolution).
        let positionalPrecision = GroupedTimeConvolution.precision(for: precision)
        if family == .wav2vec2Bert {
            // The filterbank (FFTs, mel products) is a few MFLOP per second of audio: left out.
            guard let frames = filterbankFrames(forSamples: samples) else { return StageFlops() }
            length = frames.stacked
            inChannels = featureProjectionInputDim
        }
        for i in convDim.indices where family != .wav2vec2Bert {
            guard length >= convKernel[i] else { return StageFlops() }
            length = (length - convKernel[i]) / convStride[i] + 1
            stages.featureEncoder[ConvFeatureEncoder.precision(for: precision, layer: i, groupNorm: featureEncoderNorm == .group),
                                  default: 0]
                += 2 * Double(length) * Double(convDim[i]) * Double(inChannels * convKernel[i])
            inChannels = convDim[i]
        }
        let t = Double(length), h = Double(hiddenSize)
        stages.featureProjection[precision] = 2 * t * Double(inChannels) * h
        if !conformer {
            let positional = family == .data2vecAudio ? Double(numConvPosEmbeddings * convPosKernelSize) : Double(numConvPosEmbeddings)
            stages.positionalConvolution[positionalPrecision] = 2 * t * h * (h / Double(numConvPosEmbeddingGroups)) * positional
        }
        let layers = Double(numHiddenLayers)
        let feedForward = 2 * 2 * t * h * Double(intermediateSize)
        // Projections in the model's precision; scores and their product with V in the fused kernel: bf16 for a
        // reduced-precision model where the CPU has bf16 dot products, else fp32 (Conformers and WavLM's biased
        // scores: fp32).
        let scores = conformer || family == .wavLM ? .fp32 : ReducedPrecisionKernels.attentionScores(for: precision)
        stages.attention[precision, default: 0] += layers * 2 * t * h * 4 * h
        stages.attention[scores, default: 0] += layers * 2 * 2 * t * t * h
        stages.feedForward[precision, default: 0] += layers * feedForward
        if conformer {
            // a second feed-forward; the convolution module (profiled with the feed-forwards): pointwise h → 2h and
            // h → h in the model's precision, the depthwise convolution in fp32
            stages.feedForward[precision, default: 0] += layers * (feedForward + 2 * t * h * 3 * h)
            stages.feedForward[.fp32, default: 0] += layers * 2 * t * h * Double(convDepthwiseKernelSize)
            if conformerPositions == .relative {
                stages.attention[precision, default: 0] += layers * 2 * (2 * t) * h * h
                stages.attention[.fp32, default: 0] += layers * 2 * t * (2 * t) * h
            }
        }
        var width = h, frames = t
        if family == .wav2vec2Bert {
            if useIntermediateFfnBeforeAdapter { stages.feedForward[precision, default: 0] += feedForward }
            if adapterLayerCount > 0 {
                let a = Double(adapterWidth), k = Double(adapterKernelSize)
                if adapterWidth != hiddenSize { stages.attention[precision, default: 0] += 2 * t * h * a }
                var length = Int(t)
                for _ in 0..<adapterLayerCount {
                    length = adapterFrames(length)
                    let n = Double(length)
                    // two strided convolutions a → 2a, attention, a feed-forward (all profiled as attention)
                    stages.attention[precision, default: 0] += 2 * 2 * n * (k * a) * (2 * a) + 2 * n * a * 4 * a
                        + 2 * 2 * n * a * Double(intermediateSize)
                    stages.attention[.fp32, default: 0] += 2 * 2 * n * n * a
                }
                width = a
                frames = Double(length)
            }
        }
        stages.head[.fp32, default: 0] += 2 * frames * width * Double(vocabSize)                 // LM head
        return stages
    }
}

/// Floating-point operations of one forward pass per stage of ``StageProfile``, each split by the number format its
/// products run in.
package struct StageFlops: Sendable {
    package var featureEncoder: [Precision: Double] = [:]
    package var featureProjection: [Precision: Double] = [:]
    package var positionalConvolution: [Precision: Double] = [:]
    package var attention: [Precision: Double] = [:]
    package var feedForward: [Precision: Double] = [:]
    package var head: [Precision: Double] = [:]

    /// The stages in ``StageProfile/stages``' order (layer norms do no products: empty).
    package var stages: [[Precision: Double]] {
        [featureEncoder, featureProjection, positionalConvolution, attention, feedForward, [:], head]
    }

    /// All operations of the pass.
    package var total: Double { stages.reduce(0) { $0 + $1.values.reduce(0, +) } }
}

/// What the feature extractor does to raw audio (`preprocessor_config.json`).
public struct PreprocessorConfiguration: Codable, Sendable, Equatable {
    /// `sampling_rate`: samples per second the model expects (16000 when absent).
    public var samplingRate: Int
    /// `do_normalize`: whether audio is normalised to zero mean and unit variance.
    public var doNormalize: Bool
    /// `feature_size`: values per sample (1 for raw audio).
    public var featureSize: Int
    /// `padding_value`: the value batches are padded with.
    public var paddingValue: Float
    /// `feature_extractor_type`: "Wav2Vec2FeatureExtractor" (raw samples) or "SeamlessM4TFeatureExtractor" (w2v-BERT's
    /// filterbank); nil when the file names none.
    public var featureExtractorType: String?
    /// `num_mel_bins` (SeamlessM4TFeatureExtractor): mel bins per filterbank frame; nil when absent.
    public var numMelBins: Int?
    /// `stride` (SeamlessM4TFeatureExtractor): filterbank frames stacked into one model frame; nil when absent.
    public var stride: Int?

    /// The feature extractor of w2v-BERT.
    static let filterbankExtractor = "SeamlessM4TFeatureExtractor"

    enum CodingKeys: String, CodingKey {
        case samplingRate = "sampling_rate"
        case doNormalize = "do_normalize"
        case featureSize = "feature_size"
        case paddingValue = "padding_value"
        case featureExtractorType = "feature_extractor_type"
        case numMelBins = "num_mel_bins"
        case stride
    }

    /// Settings for raw mono audio at `samplingRate`, normalised when `doNormalize`.
    public init(samplingRate: Int = 16000, doNormalize: Bool = true) {
        self.samplingRate = samplingRate
        self.doNormalize = doNormalize
        featureSize = 1
        paddingValue = 0
        featureExtractorType = nil
        numMelBins = nil
        stride = nil
    }

    /// Decodes `preprocessor_config.json`; keys it lacks take the defaults of `init(samplingRate:doNormalize:)`.
    public init(from decoder: Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        samplingRate = try c.decodeIfPresent(Int.self, forKey: .samplingRate) ?? 16000
        featureExtractorType = try c.decodeIfPresent(String.self, forKey: .featureExtractorType)
        // SeamlessM4TFeatureExtractor normalises its filterbank features, never the samples.
        doNormalize = try c.decodeIfPresent(Bool.self, forKey: .doNormalize) ?? (featureExtractorType != Self.filterbankExtractor)
        featureSize = try c.decodeIfPresent(Int.self, forKey: .featureSize) ?? 1
        paddingValue = try c.decodeIfPresent(Float.self, forKey: .paddingValue) ?? 0
        numMelBins = try c.decodeIfPresent(Int.self, forKey: .numMelBins)
        stride = try c.decodeIfPresent(Int.self, forKey: .stride)
    }

    /// This feature extractor, made to fit `configuration` or refused with the field named: a raw-sample model needs
    /// `feature_size` 1; w2v-BERT needs the filterbank the network was built for (`num_mel_bins` × `stride` =
    /// `feature_projection_input_dim`, at 16 kHz) and never normalises the samples themselves.
    func fitted(to configuration: Wav2Vec2Configuration) throws -> PreprocessorConfiguration {
        guard configuration.family == .wav2vec2Bert else {
            guard featureSize == 1 else {
                throw ASRError.unsupportedConfiguration(field: "preprocessor_config.json: feature_size", value: "\(featureSize)")
            }
            return self
        }
        if let featureExtractorType, featureExtractorType != Self.filterbankExtractor {
            throw ASRError.unsupportedConfiguration(
                field: "preprocessor_config.json: feature_extractor_type",
                value: "\"\(featureExtractorType)\" for a wav2vec2-bert model (supported: \(Self.filterbankExtractor))")
        }
        let stacking = Wav2Vec2Configuration.filterbankStacking
        let bins = configuration.featureProjectionInputDim / stacking
        if let stride, stride != stacking {
            throw ASRError.unsupportedConfiguration(field: "preprocessor_config.json: stride", value: "\(stride) (supported: \(stacking))")
        }
        // (feature_size 1 is the default of a file that does not name it: raw samples, never a filterbank's value.)
        for (value, field) in [(numMelBins, "num_mel_bins"), (featureSize == 1 ? nil : featureSize, "feature_size")]
            where value != nil && value != bins {
            throw ASRError.invalidConfiguration(
                field: "preprocessor_config.json: \(field)",
                reason: "\(value!) mel bins, but the model's feature_projection_input_dim \(configuration.featureProjectionInputDim) is \(bins) × \(stacking)")
        }
        guard samplingRate == 16000 else {
            throw ASRError.unsupportedConfiguration(field: "preprocessor_config.json: sampling_rate", value: "\(samplingRate) (the filterbank is 16 kHz's)")
        }
        var fitted = self
        fitted.doNormalize = false
        return fitted
    }

    /// Reads the feature extractor's settings from a model directory: `preprocessor_config.json` (the hub's
    /// layout), else the `feature_extractor` object of `processor_config.json` (what transformers 5 writes), else
    /// the defaults (16 kHz, normalised).
    public static func load(directory: URL) throws -> PreprocessorConfiguration {
        try load(.directory(directory))
    }

    static func load(_ files: ModelFiles) throws -> PreprocessorConfiguration {
        let config: PreprocessorConfiguration
        do {
            if let data = try files.data("preprocessor_config.json") {
                config = try JSONDecoder().decode(PreprocessorConfiguration.self, from: data)
            } else if let data = try files.data("processor_config.json") {
                config = try JSONDecoder().decode(ProcessorFile.self, from: data).featureExtractor ?? PreprocessorConfiguration()
            } else {
                return PreprocessorConfiguration()
            }
        } catch let error as ASRError {
            throw error
        } catch let DecodingError.typeMismatch(type, context) {
            throw ASRError.invalidConfiguration(field: "preprocessor_config.json: " + context.codingPath.jsonPath, reason: "expected \(type)")
        } catch {
            throw ASRError.malformedJSON(file: "preprocessor_config.json", reason: "\(error)")
        }
        guard (1000...768_000).contains(config.samplingRate) else {
            throw ASRError.invalidConfiguration(field: "preprocessor_config.json: sampling_rate", reason: "\(config.samplingRate) Hz")
        }
        return config
    }
}

/// transformers 5's `processor_config.json`, of which only the feature extractor matters here.
private struct ProcessorFile: Decodable {
    let featureExtractor: PreprocessorConfiguration?
    enum CodingKeys: String, CodingKey { case featureExtractor = "feature_extractor" }
}

extension [CodingKey] {
    /// `conv_dim[2]`-style rendering of a decoding path.
    var jsonPath: String {
        var out = ""
        for key in self {
            if let index = key.intValue { out += "[\(index)]" } else { out += (out.isEmpty ? "" : ".") + key.stringValue }
        }
        return out.isEmpty ? "(root)" : out
    }
}
