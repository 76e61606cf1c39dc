import Foundation

/// CTC emissions: one row of `vocabularySize` logits per frame.
public struct Emissions: Sendable, Equatable {
    public let frames: Int
    public let vocabularySize: Int
    /// Row-major (frames × vocabularySize) logits.
    public let logits: [Float]
    /// Seconds between consecutive frames (conv strides / sample rate: 0.02 s for released models).
    public let frameDuration: Double
}

/// A transcript with its timing.
public struct Transcription: Sendable, Equatable {
    /// The transcript, as transformers' tokenizer decodes the greedy path.
    public let text: String
    /// Duration of the audio in seconds.
    public let duration: Double
    /// Decoded characters with their frame spans.
    public let characters: [CharacterSpan]
    /// Seconds per CTC frame.
    public let frameDuration: Double
}

/// A Wav2Vec2ForCTC checkpoint directory loaded once: configuration, weights, vocabulary and feature-extractor
/// settings. Immutable and `Sendable`: share one instance across threads and tasks.
public final class Transcriber: Sendable {
    public let configuration: Wav2Vec2Configuration
    public let preprocessor: PreprocessorConfiguration
    public let vocabulary: Vocabulary
    let model: Wav2Vec2Model
    /// Where the model was loaded from: its directory, or "built-in model".
    public let location: String
    /// Storage types of the checkpoint's tensors (e.g. ["F32"]).
    public let weightTypes: [String]

    /// Loads a Hugging Face checkpoint directory (`config.json`, `vocab.json`, `model.safetensors`, and optionally
    /// `preprocessor_config.json`, `tokenizer_config.json`, `special_tokens_map.json`, `added_tokens.json`).
    public convenience init(modelDirectory: URL) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: modelDirectory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ASRError.missingModelFile(directory: modelDirectory.path, file: "(the directory itself)")
        }
        try self.init(files: .directory(modelDirectory))
    }

    /// Loads a model whose files are held in memory for the life of the process (e.g. linked into the binary).
    /// `files` maps file names ("config.json", "model.safetensors", ...) to their bytes, which are not copied.
    public convenience init(embeddedFiles files: [String: UnsafeRawBufferPointer], location: String) throws {
        let table = StaticFileTable(files: files)
        try self.init(files: .embedded(location: location) { table.files[$0] })
    }

    init(files: ModelFiles) throws {
        location = files.location
        configuration = try Wav2Vec2Configuration.decode(try files.required("config.json"))
        preprocessor = try PreprocessorConfiguration.load(files)
        vocabulary = try Vocabulary.load(files, vocabSize: configuration.vocabSize, padTokenID: configuration.padTokenId)
        let weights = try files.weights()
        weightTypes = Array(Set(weights.tensors.values.map(\.dtype.rawValue))).sorted()
        model = try Wav2Vec2Model(configuration: configuration, source: weights)
    }

    /// Number of parameters read from the checkpoint.
    public var parameterCount: Int { model.parameterCount }

    /// The sample rate the model expects (from `preprocessor_config.json`).
    public var sampleRate: Int { preprocessor.samplingRate }

    /// Seconds between CTC frames.
    public var frameDuration: Double { Double(configuration.samplesPerFrame) / Double(preprocessor.samplingRate) }

    /// CTC logits for mono samples at the model's sample rate. The samples are normalised here when the
    /// feature extractor asks for it. Audio shorter than the receptive field (400 samples) yields zero frames.
    public func emissions(samples: [Float]) -> Emissions {
        let input = preprocessor.doNormalize ? Normalizer.zeroMeanUnitVariance(samples) : samples
        let logits = model.logits(for: input)
        return Emissions(frames: logits.rows, vocabularySize: logits.cols, logits: logits.storage, frameDuration: frameDuration)
    }

    /// Greedy CTC transcription of mono samples at the model's sample rate.
    public func transcribe(samples: [Float]) -> Transcription {
        let e = emissions(samples: samples)
        let decoded = CTCGreedyDecoder.decode(logits: e.logits, frames: e.frames, vocabulary: vocabulary)
        return Transcription(
            text: decoded.text, duration: Double(samples.count) / Double(sampleRate),
            characters: decoded.characters, frameDuration: frameDuration)
    }

    /// Reads an audio file as mono samples at the model's sample rate (any rate and channel count in).
    public func loadAudio(file: URL) throws -> [Float] {
        try AudioFile(path: file.path).read(resampledTo: sampleRate).samples
    }

    /// Transcribes an audio file.
    public func transcribe(file: URL) throws -> Transcription {
        transcribe(samples: try loadAudio(file: file))
    }
}
