import Foundation

/// CTC emissions: one row of `vocabularySize` logits per frame.
public struct Emissions: Sendable, Equatable {
    public let frames: Int
    public let vocabularySize: Int
    /// Row-major (frames × vocabularySize) logits.
    public let logits: [Float]
    /// Seconds between consecutive frames (conv strides / sample rate: 0.02 s for released models).
    public let frameDuration: Double

    public init(frames: Int, vocabularySize: Int, logits: [Float], frameDuration: Double) {
        precondition(logits.count == frames * vocabularySize, "logits must hold frames × vocabularySize values")
        self.frames = frames
        self.vocabularySize = vocabularySize
        self.logits = logits
        self.frameDuration = frameDuration
    }
}

/// A transcript with its timing.
public struct Transcription: Sendable, Equatable, Codable {
    /// The transcript, as transformers' tokenizer decodes the greedy path.
    public let text: String
    /// Duration of the audio in seconds.
    public let duration: Double
    /// Words with start and end times (seconds) and confidence.
    public let words: [Word]
    /// Decoded characters (word delimiters included, as spaces) with times and confidence.
    public let characters: [TimedCharacter]
}

/// How long audio is cut into pieces the model can take.
///
/// Attention is quadratic in length, so audio longer than `chunkSeconds` is processed in chunks of that length
/// that overlap by `strideSeconds` on each side, as transformers' ASR pipeline does (`chunk_length_s`,
/// `stride_length_s`): each chunk is normalised and run on its own, the logits of the overlapped edges are
/// dropped, and the joined logits are decoded once. Chunk starts and strides are whole frames, so the joined
/// logits have exactly as many frames as one pass would.
public struct ChunkingOptions: Sendable, Equatable {
    public let chunkSeconds: Double
    public let strideSeconds: Double

    /// 30 s chunks with 5 s of context on each side: each sample goes through the model 1.5 times at most.
    public static let `default` = ChunkingOptions(validChunkSeconds: 30, strideSeconds: 5)

    /// The longest chunk accepted (a day): longer would overflow sample counts, and one pass over a day of audio is
    /// not something attention can do anyway.
    public static let maxChunkSeconds: Double = 86_400

    /// Throws `ASRError.invalidChunking` unless `chunkSeconds` is finite and in 1...86400, `strideSeconds` is finite
    /// and positive, and each chunk keeps at least one second of its own (`chunkSeconds − 2 × strideSeconds ≥ 1`):
    /// the model then runs over each sample at most `chunkSeconds` times, never (nearly) endlessly.
    public init(chunkSeconds: Double, strideSeconds: Double) throws {
        func fail(_ reason: String) -> ASRError { .invalidChunking(reason: reason) }
        guard chunkSeconds.isFinite, chunkSeconds >= 1, chunkSeconds <= Self.maxChunkSeconds else {
            throw fail("the chunk length must be a number of seconds in 1...\(Int(Self.maxChunkSeconds)), not \(chunkSeconds)")
        }
        guard strideSeconds.isFinite, strideSeconds > 0 else {
            throw fail("the stride (context on each side of a chunk) must be a positive number of seconds, not \(strideSeconds)")
        }
        guard chunkSeconds - 2 * strideSeconds >= 1 else {
            throw fail("a \(chunkSeconds) s chunk with \(strideSeconds) s of context on each side keeps less than 1 s of its own; "
                       + "the stride must be at most (chunk length − 1) / 2 = \((chunkSeconds - 1) / 2) s")
        }
        self.init(validChunkSeconds: chunkSeconds, strideSeconds: strideSeconds)
    }

    private init(validChunkSeconds: Double, strideSeconds: Double) {
        self.chunkSeconds = validChunkSeconds
        self.strideSeconds = strideSeconds
    }
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
    /// The precision the large products run in (the one asked for, or fp32 where the CPU cannot run it).
    public let precision: Precision
    private let loadWarnings: [String]

    /// Loads a Hugging Face checkpoint directory (`config.json`, `vocab.json`, `model.safetensors`, and optionally
    /// `preprocessor_config.json`, `tokenizer_config.json`, `special_tokens_map.json`, `added_tokens.json`).
    ///
    /// `precision` other than `.fp32` converts the weights once, here (see ``Precision``).
    public convenience init(modelDirectory: URL, precision: Precision = .fp32) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: modelDirectory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ASRError.modelNotFound(
                path: modelDirectory.path, reason: isDirectory.boolValue || !FileManager.default.fileExists(atPath: modelDirectory.path)
                    ? "no such directory" : "is a file, not a model directory")
        }
        try self.init(files: .directory(modelDirectory), precision: precision)
    }

    /// Loads a model whose files are held in memory for the life of the process (e.g. linked into the binary).
    /// `files` maps file names ("config.json", "model.safetensors", ...) to their bytes, which are not copied.
    public convenience init(embeddedFiles files: [String: UnsafeRawBufferPointer], location: String, precision: Precision = .fp32) throws {
        let table = StaticFileTable(files: files)
        try self.init(files: .embedded(location: location) { table.files[$0] }, precision: precision)
    }

    init(files: ModelFiles, precision requested: Precision = .fp32) throws {
        location = files.location
        configuration = try Wav2Vec2Configuration.decode(try files.required("config.json"))
        try Int8Checkpoint.checkLoadable(files.json("config.json"))
        preprocessor = try PreprocessorConfiguration.load(files)
        vocabulary = try Vocabulary.load(files, vocabSize: configuration.vocabSize, padTokenID: configuration.padTokenId)
        let weights = try files.weights()
        weightTypes = weights.storageTypes
        let (precision, fallback) = ReducedPrecisionKernels.effective(requested)
        self.precision = precision
        loadWarnings = fallback.map { [$0] } ?? []
        model = try Wav2Vec2Model(configuration: configuration, source: weights, precision: precision)
    }

    /// Loading problems that did not stop it (e.g. NaN or infinite weights, a precision this CPU cannot run):
    /// worth showing the user.
    public var warnings: [String] { loadWarnings + model.warnings }

    /// Number of parameters read from the checkpoint.
    public var parameterCount: Int { model.parameterCount }

    /// The sample rate the model expects (from `preprocessor_config.json`).
    public var sampleRate: Int { preprocessor.samplingRate }

    /// Seconds between CTC frames.
    public var frameDuration: Double { Double(configuration.samplesPerFrame) / Double(preprocessor.samplingRate) }

    /// CTC logits for mono samples at the model's sample rate, in one pass. The samples are normalised here when
    /// the feature extractor asks for it. Audio shorter than the receptive field (400 samples) yields zero frames.
    public func emissions(samples: [Float]) -> Emissions {
        let input = preprocessor.doNormalize ? Normalizer.zeroMeanUnitVariance(samples) : samples
        let logits = model.logits(for: input)
        return Emissions(frames: logits.rows, vocabularySize: logits.cols, logits: logits.storage, frameDuration: frameDuration)
    }

    /// One forward pass over `samples` (normalised here as usual) with the time of each stage added to `profile`.
    public func emissions(samples: [Float], profile: StageProfile) -> Emissions {
        let input = preprocessor.doNormalize ? Normalizer.zeroMeanUnitVariance(samples) : samples
        let logits = model.logits(for: input, profile: profile)
        return Emissions(frames: logits.rows, vocabularySize: logits.cols, logits: logits.storage, frameDuration: frameDuration)
    }

    /// CTC logits for audio pulled from `next` (mono, at the model's rate; nil at the end), in overlapping chunks
    /// when it is longer than a chunk. Memory holds one chunk of audio and the logits. Returns the logits and the
    /// number of samples seen.
    public func emissions(chunking: ChunkingOptions = .default, next: () throws -> [Float]?) throws -> (emissions: Emissions, samples: Int) {
        let hop = configuration.samplesPerFrame
        let stride = max(1, Int((chunking.strideSeconds * Double(sampleRate) / Double(hop)).rounded())) * hop
        let chunk = max(Int((chunking.chunkSeconds * Double(sampleRate) / Double(hop)).rounded()) * hop, 2 * stride + hop)
        let step = chunk - 2 * stride

        var pending: [Float] = []     // samples [pendingStart, pendingStart + pending.count)
        var pendingStart = 0
        var ended = false
        var logits: [Float] = []
        var frames = 0
        var offset = 0                // start of the current chunk, a multiple of hop
        while true {
            // Read until the chunk is complete and one sample past it shows whether more follows.
            while !ended && pendingStart + pending.count <= offset + chunk {
                if let block = try next() { pending += block } else { ended = true }
            }
            let available = pendingStart + pending.count
            let end = min(offset + chunk, available)
            let isLast = ended && end == available
            let piece = Array(pending[(offset - pendingStart)..<(end - pendingStart)])
            let e = emissions(samples: piece)
            let first = offset == 0 ? 0 : stride / hop
            let last = isLast ? e.frames : (chunk - stride) / hop
            if last > first {
                logits += e.logits[(first * e.vocabularySize)..<(last * e.vocabularySize)]
                frames += last - first
            }
            if isLast { return (Emissions(frames: frames, vocabularySize: configuration.vocabSize, logits: logits, frameDuration: frameDuration), available) }
            offset += step
            pending.removeFirst(offset - pendingStart)
            pendingStart = offset
        }
    }

    /// Decodes emissions (greedy unless a decoder is given) with word and character timestamps.
    public func decode(_ emissions: Emissions, duration: Double, decoder: (any CTCDecoder)? = nil) -> Transcription {
        let decoded = decoder?.decode(emissions)
            ?? CTCGreedyDecoder.decode(logits: emissions.logits, frames: emissions.frames, vocabulary: vocabulary)
        let (characters, words) = Alignment.align(
            decoding: decoded, logits: emissions.logits, vocabularySize: emissions.vocabularySize,
            frameDuration: emissions.frameDuration, duration: duration, wordDelimiter: vocabulary.wordDelimiter)
        return Transcription(text: decoded.text, duration: duration, words: words, characters: characters)
    }

    /// Transcribes mono samples at `sampleRate` (resampled to the model's rate when different).
    public func transcribe(
        samples: [Float], sampleRate rate: Int? = nil, chunking: ChunkingOptions = .default, decoder: (any CTCDecoder)? = nil
    ) -> Transcription {
        let input = rate.map { Resampler.resample(samples, from: $0, to: sampleRate) } ?? samples
        var consumed = false
        // An in-memory source cannot fail.
        let result = try? emissions(chunking: chunking) { () -> [Float]? in
            defer { consumed = true }
            return consumed ? nil : input
        }
        let duration = Double(input.count) / Double(sampleRate)
        guard let result else { return Transcription(text: "", duration: duration, words: [], characters: []) }
        return decode(result.emissions, duration: duration, decoder: decoder)
    }

    /// Reads an audio file as mono samples at the model's sample rate (any rate and channel count in).
    public func loadAudio(file: URL) throws -> [Float] {
        try AudioFile(path: file.path).read(resampledTo: sampleRate).samples
    }

    /// Transcribes an audio file of any supported format, rate and channel count, streaming it through the model
    /// in chunks.
    public func transcribe(file: URL, chunking: ChunkingOptions = .default, decoder: (any CTCDecoder)? = nil) throws -> Transcription {
        let stream = AudioStream(file: try AudioFile(path: file.path), sampleRate: sampleRate)
        let (emissions, samples) = try emissions(chunking: chunking) { try stream.next() }
        return decode(emissions, duration: Double(samples) / Double(sampleRate), decoder: decoder)
    }

    /// Transcribes several files, one result per file in the same order: a file that fails does not stop the rest.
    public func transcribe(
        files: [URL], chunking: ChunkingOptions = .default, decoder: (any CTCDecoder)? = nil
    ) -> [Result<Transcription, ASRError>] {
        files.map { file in
            Result { try transcribe(file: file, chunking: chunking, decoder: decoder) }.mapError { Self.asASRError($0, file: file) }
        }
    }

    /// Async variant of `transcribe(file:)`; runs off the caller's executor.
    public func transcribe(file: URL, chunking: ChunkingOptions = .default, decoder: (any CTCDecoder)? = nil) async throws -> Transcription {
        try await Task.detached(priority: .userInitiated) { [self] in try transcribe(file: file, chunking: chunking, decoder: decoder) }.value
    }

    /// Async variant of `transcribe(files:)`.
    public func transcribe(
        files: [URL], chunking: ChunkingOptions = .default, decoder: (any CTCDecoder)? = nil
    ) async -> [Result<Transcription, ASRError>] {
        await Task.detached(priority: .userInitiated) { [self] in transcribe(files: files, chunking: chunking, decoder: decoder) }.value
    }

    static func asASRError(_ error: Error, file: URL) -> ASRError {
        if let error = error as? ASRError { return error }
        return .unreadableAudio(file: file.path, reason: "\(error)")
    }
}
