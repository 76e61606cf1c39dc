import Foundation
import Logging

/// CTC emissions: one row of `vocabularySize` logits per frame.
public struct Emissions: Sendable, Equatable {
    /// Number of frames (rows of `logits`).
    public let frames: Int
    /// Number of tokens in the vocabulary (columns of `logits`).
    public let vocabularySize: Int
    /// Row-major (frames × vocabularySize) logits.
    public let logits: [Float]
    /// Seconds between consecutive frames (conv strides / sample rate: 0.02 s for released models).
    public let frameDuration: Double

    /// Wraps logits; `logits.count` must equal `frames × vocabularySize` (checked by a precondition).
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

    /// Creates a transcription (e.g. from the final segments of a ``LiveTranscription``).
    public init(text: String, duration: Double, words: [Word], characters: [TimedCharacter]) {
        self.text = text
        self.duration = duration
        self.words = words
        self.characters = characters
    }
}

/// How far a transcription has come (reported after each chunk).
public struct TranscriptionProgress: Sendable, Equatable {
    /// Seconds of audio whose transcript is done.
    public let processedSeconds: Double
    /// Seconds of audio in all, when the file states it.
    public let totalSeconds: Double?

    /// Creates a progress report.
    public init(processedSeconds: Double, totalSeconds: Double?) {
        self.processedSeconds = processedSeconds
        self.totalSeconds = totalSeconds
    }

    /// Done fraction in 0...1, when the total is known.
    public var fractionCompleted: Double? {
        totalSeconds.map { $0 > 0 ? min(1, processedSeconds / $0) : 1 }
    }
}

/// How long audio is cut into pieces the model can take.
///
/// Attention is quadratic in length, so audio longer than `chunkSeconds` is processed in chunks of that length
/// that overlap by `strideSeconds` on each side, as transformers' ASR pipeline does (`chunk_length_s`,
/// `stride_length_s`): each chunk is normalised and run on its own, the logits of the overlapped edges are
/// dropped, and the joined logits are decoded once. Chunk starts and strides are whole frames, so the joined
/// logits have exactly as many frames as one pass would.
public struct ChunkingOptions: Sendable, Equatable {
    /// The length of each chunk in seconds, context included.
    public let chunkSeconds: Double
    /// Seconds of context on each side of a chunk whose logits are dropped when chunks are joined.
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
    /// The model's architecture (`config.json`).
    public let configuration: Wav2Vec2Configuration
    /// The feature extractor's settings (`preprocessor_config.json`): sample rate and normalisation.
    public let preprocessor: PreprocessorConfiguration
    /// The CTC vocabulary the model's logits index (`vocab.json`).
    public let vocabulary: Vocabulary
    let model: Wav2Vec2Model
    /// Where the model was loaded from: its directory, or "built-in model".
    public let location: String
    /// Storage types of the checkpoint's tensors (e.g. ["F32"]).
    public let weightTypes: [String]
    /// Threads per forward pass and the attention implementation (see ``ExecutionOptions``).
    public let execution: ExecutionOptions
    /// The precision the large products run in (the one asked for, or fp32 where the CPU cannot run it).
    public let precision: Precision
    private let loadWarnings: [String]
    /// Where this transcriber's diagnostics go (given when loading; discards everything by default).
    public let logger: Logger
    /// The language whose adapters, head and vocabulary run, for a multilingual (MMS) checkpoint: the one asked for,
    /// else the tokenizer's `target_lang`; nil for a model with one vocabulary.
    public let language: String?
    /// The languages a multilingual (MMS) checkpoint can switch to (those with both a vocabulary in `vocab.json` and
    /// an `adapter.<lang>.safetensors` file), sorted; empty for other models.
    public let languages: [String]
    private let files: ModelFiles

    /// Loads a Hugging Face checkpoint directory (`config.json`, `vocab.json`, `model.safetensors`, and optionally
    /// `preprocessor_config.json`, `tokenizer_config.json`, `special_tokens_map.json`, `added_tokens.json`).
    ///
    /// - Parameters:
    ///   - modelDirectory: the checkpoint directory.
    ///   - language: for a multilingual (MMS) checkpoint, the language to run (an ISO 639-3 code such as "fra"): its
    ///     `adapter.<lang>.safetensors` replaces the stored adapters and head, as transformers' `load_adapter` does.
    ///     nil runs the stored ones with the tokenizer's `target_lang`. Any other model refuses a language.
    ///   - precision: other than `.fp32` converts the weights once, here (see ``Precision``).
    ///   - logger: where diagnostics go: loading warnings (non-finite weights, a vocabulary smaller than the model's
    ///     output, a precision this CPU cannot run) at `.warning`, resampling and chunking decisions at `.debug`.
    ///     ASRKit never prints; the default logger discards everything.
    ///   - execution: threads per forward pass and the attention implementation, for this `Transcriber` only.
    public convenience init(
        modelDirectory: URL, language: String? = nil, precision: Precision = .fp32,
        execution: ExecutionOptions = ExecutionOptions(), logger: Logger = Transcriber.silentLogger
    ) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: modelDirectory.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ASRError.modelNotFound(
                path: modelDirectory.path, reason: isDirectory.boolValue || !FileManager.default.fileExists(atPath: modelDirectory.path)
                    ? "no such directory" : "is a file, not a model directory")
        }
        try self.init(files: .directory(modelDirectory), language: language, precision: precision, execution: execution,
                      logger: logger)
    }

    /// Loads a model whose files are held in memory for the life of the process (e.g. linked into the binary).
    /// `files` maps file names ("config.json", "model.safetensors", ...) to their bytes, which are not copied.
    public convenience init(
        embeddedFiles files: [String: UnsafeRawBufferPointer], location: String, precision: Precision = .fp32,
        execution: ExecutionOptions = ExecutionOptions(), logger: Logger = Transcriber.silentLogger
    ) throws {
        let table = StaticFileTable(files: files)
        try self.init(files: .embedded(location: location) { table.files[$0] }, precision: precision, execution: execution,
                      logger: logger)
    }

    /// A logger that discards everything: the default, so that the library says nothing unless asked.
    public static let silentLogger = Logger(label: "ASRKit", factory: { _ in SwiftLogNoOpLogHandler() })

    init(
        files: ModelFiles, language requestedLanguage: String? = nil, precision requested: Precision = .fp32,
        execution: ExecutionOptions = ExecutionOptions(), logger: Logger = Transcriber.silentLogger
    ) throws {
        location = files.location
        self.files = files
        self.execution = execution
        self.logger = logger
        // config.json read once: the network's fields, and the quantization_config they do not model.
        let configData = try files.required("config.json")
        var configuration = try Wav2Vec2Configuration.decode(configData)
        do {
            try Int8Checkpoint.checkLoadable(try JSONValue.parse(configData))
        } catch let error as ASRError {
            throw error
        } catch {
            throw ASRError.malformedJSON(file: "config.json", reason: "\(error)")
        }
        preprocessor = try PreprocessorConfiguration.load(files).fitted(to: configuration)
        var weights = try files.weights()
        let multilingual = try Vocabulary.languages(files)
        languages = multilingual.map { vocabularies in
            Set(vocabularies.languages).intersection(LanguageAdapters.adapterLanguages(files)).sorted()
        } ?? []
        if let requestedLanguage {
            (weights, configuration.vocabSize) = try LanguageAdapters.weights(
                weights, language: requestedLanguage, configuration: configuration, vocabularies: multilingual?.languages,
                available: languages, files: files)
        }
        self.configuration = configuration
        language = requestedLanguage ?? multilingual?.target
        vocabulary = try Vocabulary.load(files, vocabSize: configuration.vocabSize, padTokenID: configuration.padTokenId,
                                         language: requestedLanguage)
        weightTypes = weights.storageTypes
        let (precision, fallback) = ReducedPrecisionKernels.effective(requested)
        self.precision = precision
        var warnings = fallback.map { [$0] } ?? []
        let named = vocabulary.tokens.filter { $0 != nil }.count
        if named < configuration.vocabSize {
            warnings.append(
                "vocab.json names \(named) tokens for the model's \(configuration.vocabSize) output classes; "
                + "the \(configuration.vocabSize - named) without a token decode as \(vocabulary.unknownToken)")
        }
        loadWarnings = warnings
        model = try Wav2Vec2Model(configuration: configuration, source: weights, precision: precision)
        if let language { logger.debug("language", metadata: ["language": "\(language)", "available": "\(languages.count)"]) }
        logger.debug("loaded model", metadata: [
            "location": "\(location)", "parameters": "\(model.parameterCount)", "precision": "\(precision)",
            "kernels": "\(ReducedPrecisionKernels.kernels(for: precision))", "weights": "\(weightTypes.joined(separator: ","))",
        ])
        for warning in self.warnings { logger.warning("\(warning)", metadata: ["model": "\(location)"]) }
    }

    /// The same model running another language of a multilingual (MMS) checkpoint: only that language's adapters,
    /// head and vocabulary are loaded; the body's weights (all but a few megabytes of a 1B-parameter model) are shared
    /// with this transcriber, not copied. Throws ``ASRError/invalidLanguage(language:reason:available:)`` for a
    /// language the checkpoint lacks or a model with one language.
    public func switching(to language: String) throws -> Transcriber {
        let (weights, vocabSize) = try LanguageAdapters.weights(
            try files.weights(), language: language, configuration: configuration,
            vocabularies: try Vocabulary.languages(files)?.languages, available: languages, files: files)
        var configuration = self.configuration
        configuration.vocabSize = vocabSize
        let vocabulary = try Vocabulary.load(files, vocabSize: vocabSize, padTokenID: configuration.padTokenId, language: language)
        let model = try self.model.replacingLanguage(configuration: configuration, source: weights)
        return Transcriber(switching: self, language: language, configuration: configuration, vocabulary: vocabulary, model: model)
    }

    /// The same loaded model run with other per-run settings (threads, attention implementation) and `logger`: the
    /// weights are shared, not copied or reloaded — as whisper.cpp keeps the loaded `whisper_context` apart from each
    /// run's `whisper_state`. Give each worker of a pool its own, or run one model at several thread counts.
    public func running(with execution: ExecutionOptions, logger: Logger? = nil) -> Transcriber {
        Transcriber(switching: self, language: language, configuration: configuration, vocabulary: vocabulary, model: model,
                    execution: execution, logger: logger ?? self.logger)
    }

    private init(switching other: Transcriber, language: String?, configuration: Wav2Vec2Configuration, vocabulary: Vocabulary,
                 model: Wav2Vec2Model, execution: ExecutionOptions? = nil, logger: Logger? = nil) {
        self.configuration = configuration
        preprocessor = other.preprocessor
        self.vocabulary = vocabulary
        self.model = model
        location = other.location
        weightTypes = other.weightTypes
        self.execution = execution ?? other.execution
        precision = other.precision
        loadWarnings = other.loadWarnings
        self.logger = logger ?? other.logger
        self.language = language
        languages = other.languages
        files = other.files
    }

    /// Loading problems that did not stop it (e.g. NaN or infinite weights, a precision this CPU cannot run):
    /// worth showing the user.
    public var warnings: [String] { loadWarnings + model.warnings }

    /// Number of parameters the forward pass uses.
    public var parameterCount: Int { model.parameterCount }

    /// Number of parameters in the checkpoint, training-only tensors included (transformers' `num_parameters()`).
    public var storedParameterCount: Int { model.storedParameterCount }

    /// The sample rate the model expects (from `preprocessor_config.json`).
    public var sampleRate: Int { preprocessor.samplingRate }

    /// Seconds between CTC frames.
    public var frameDuration: Double { Double(configuration.samplesPerFrame) / Double(preprocessor.samplingRate) }

    /// CTC logits for mono samples at the model's sample rate, in one pass. The samples are normalised here when
    /// the feature extractor asks for it. Audio shorter than the receptive field (400 samples) yields zero frames.
    public func emissions(samples: [Float]) -> Emissions {
        let input = preprocessor.doNormalize ? Normalizer.zeroMeanUnitVariance(samples) : samples
        let logits = ThreadBudget.$current.withValue(execution.threads) {
            model.logits(for: input, fusedAttention: execution.fusedAttention)
        }
        return Emissions(frames: logits.rows, vocabularySize: logits.cols, logits: logits.storage, frameDuration: frameDuration)
    }

    /// One forward pass over `samples` (normalised here as usual) with the time of each stage added to `profile`.
    public func emissions(samples: [Float], profile: StageProfile) -> Emissions {
        let input = preprocessor.doNormalize ? Normalizer.zeroMeanUnitVariance(samples) : samples
        let logits = ThreadBudget.$current.withValue(execution.threads) {
            model.logits(for: input, profile: profile, fusedAttention: execution.fusedAttention)
        }
        return Emissions(frames: logits.rows, vocabularySize: logits.cols, logits: logits.storage, frameDuration: frameDuration)
    }

    /// CTC logits for audio pulled from `next` (mono, at the model's rate; nil at the end), in overlapping chunks
    /// when it is longer than a chunk. Memory holds one chunk of audio and the logits. Returns the logits and the
    /// number of samples seen.
    public func emissions(chunking: ChunkingOptions = .default, next: () throws -> [Float]?) throws -> (emissions: Emissions, samples: Int) {
        try emissions(chunking: chunking, progress: nil, next: next)
    }

    /// ``emissions(chunking:next:)`` with `progress` called after each chunk with the seconds of audio whose logits
    /// are final (`totalSeconds` is nil: a pulled source does not say how long it is).
    public func emissions(
        chunking: ChunkingOptions = .default, progress: ((TranscriptionProgress) -> Void)?, next: () throws -> [Float]?
    ) throws -> (emissions: Emissions, samples: Int) {
        try emissions(chunking: chunking, next: next) { seconds in
            progress?(TranscriptionProgress(processedSeconds: seconds, totalSeconds: nil))
        }
    }

    /// The one loop over chunks (ChunkedEmissions: window, stride, stitch) that every path runs — samples in memory,
    /// files, the server's uploads: `afterChunk` gets the seconds of audio whose logits are final after each chunk
    /// and may throw to stop (cancellation, a limit).
    /// `onLogits` receives each piece of final logits as it is made (the last at the end).
    func emissions(chunking: ChunkingOptions, next: () throws -> [Float]?, onLogits: ([Float], Double) -> Void = { _, _ in },
                   afterChunk: (Double) throws -> Void) throws -> (emissions: Emissions, samples: Int) {
        var chunker = ChunkedEmissions(transcriber: self, chunking: chunking)
        var logits: [Float] = []
        while let block = try next() {
            chunker.append(block)
            while let chunkLogits = chunker.nextChunk() {
                logits += chunkLogits
                let seconds = Double(chunker.finalSamples) / Double(sampleRate)
                onLogits(chunkLogits, Double(chunker.samplesSeen) / Double(sampleRate))
                try afterChunk(seconds)
            }
        }
        let last = chunker.finish()
        logits += last
        onLogits(last, Double(chunker.samplesSeen) / Double(sampleRate))
        let vocabularySize = configuration.vocabSize
        return (Emissions(frames: logits.count / vocabularySize, vocabularySize: vocabularySize, logits: logits, frameDuration: frameDuration),
                chunker.samplesSeen)
    }

    /// CTC logits of an audio file of any supported format, rate and channel count, streamed through the model in
    /// chunks exactly as ``transcribe(file:chunking:decoder:)`` reads it (memory: one chunk of audio and the logits),
    /// and the seconds of audio; `progress` is called after each chunk. `name` is how errors name the file (its path
    /// when nil).
    public func emissions(
        file: URL, name: String? = nil, chunking: ChunkingOptions = .default, progress: ((TranscriptionProgress) -> Void)? = nil
    ) throws -> (emissions: Emissions, duration: Double) {
        try streamedEmissions(file: file, name: name, chunking: chunking, progress: progress)
    }

    /// An audio file of any format, rate and channel count streamed through the chunk loop:
    /// the emissions and the seconds of audio. `maxSeconds` stops with `AudioTooLong` as soon as more audio than that
    /// has been read (the header's length is checked first; the count guards files whose header says less than they
    /// hold). `progress` and `checkCancellation` run after each chunk and once at the end.
    func streamedEmissions(
        file: URL, name: String? = nil, chunking: ChunkingOptions, maxSeconds: Double? = nil, progress: ((TranscriptionProgress) -> Void)? = nil,
        checkCancellation: () throws -> Void = {}, onLogits: ([Float], Double) -> Void = { _, _ in },
        onSamples: ([Float]) -> Void = { _ in }
    ) throws -> (emissions: Emissions, duration: Double) {
        let audio = try AudioFile(path: file.path, name: name)
        if let maxSeconds, audio.duration > maxSeconds { throw AudioTooLong(limitSeconds: maxSeconds) }
        logAudio(audio, chunking: chunking)
        let total = audio.frameCount > 0 ? Double(audio.frameCount) / Double(audio.sampleRate) : nil
        let stream = AudioStream(file: audio, sampleRate: sampleRate)
        let limit = maxSeconds.map { $0 * Double(sampleRate) } ?? .infinity
        var seen = 0
        let (emissions, samples) = try emissions(chunking: chunking, next: {
            let block = try stream.next()
            seen += block?.count ?? 0
            if Double(seen) > limit { throw AudioTooLong(limitSeconds: maxSeconds ?? 0) }
            if let block { onSamples(block) }
            return block
        }, onLogits: onLogits, afterChunk: { seconds in
            progress?(TranscriptionProgress(processedSeconds: seconds, totalSeconds: total))
            try checkCancellation()
        })
        let duration = Double(samples) / Double(sampleRate)
        progress?(TranscriptionProgress(processedSeconds: duration, totalSeconds: duration))
        try checkCancellation()
        return (emissions, duration)
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

    /// Reads an audio file as mono samples at the model's sample rate (any rate and channel count in); `name` is how
    /// errors name the file (its path when nil).
    public func loadAudio(file: URL, name: String? = nil) throws -> [Float] {
        try AudioFile(path: file.path, name: name).read(resampledTo: sampleRate).samples
    }

    /// Transcribes an audio file of any supported format, rate and channel count, streaming it through the model
    /// in chunks.
    public func transcribe(file: URL, chunking: ChunkingOptions = .default, decoder: (any CTCDecoder)? = nil) throws -> Transcription {
        try transcribe(file: file, chunking: chunking, decoder: decoder, progress: nil, checkCancellation: {})
    }

    /// The file path with a progress callback and a cancellation check run after each chunk.
    func transcribe(
        file: URL, name: String? = nil, chunking: ChunkingOptions, decoder: (any CTCDecoder)?, progress: ((TranscriptionProgress) -> Void)?,
        checkCancellation: () throws -> Void
    ) throws -> Transcription {
        let (emissions, duration) = try streamedEmissions(
            file: file, name: name, chunking: chunking, progress: progress, checkCancellation: checkCancellation)
        return decode(emissions, duration: duration, decoder: decoder)
    }

    /// Transcribes several files, one result per file in the same order: a file that fails does not stop the rest.
    public func transcribe(
        files: [URL], chunking: ChunkingOptions = .default, decoder: (any CTCDecoder)? = nil
    ) -> [Result<Transcription, ASRError>] {
        files.map { file in
            Result { try transcribe(file: file, chunking: chunking, decoder: decoder) }.mapError { Self.asASRError($0, file: file) }
        }
    }

    /// Async variant of ``transcribe(file:chunking:decoder:)``: runs off the caller's executor and honours
    /// cancellation between chunks (throwing `CancellationError`).
    ///
    /// - Parameters:
    ///   - file: an audio file of any supported format, rate and channel count.
    ///   - chunking: how long audio is cut into chunks.
    ///   - decoder: the decoder (greedy when nil).
    ///   - name: how errors name the file (e.g. "standard input" for a pipe spooled to a temporary file); its path
    ///     when nil.
    ///   - progress: called after each chunk (from the thread doing the work) with how much of the audio is done.
    public func transcribe(
        file: URL, name: String? = nil, chunking: ChunkingOptions = .default, decoder: (any CTCDecoder)? = nil,
        progress: (@Sendable (TranscriptionProgress) -> Void)? = nil
    ) async throws -> Transcription {
        let work = Task.detached(priority: Task.currentPriority) { [self] in
            try transcribe(file: file, name: name, chunking: chunking, decoder: decoder, progress: progress) { try Task.checkCancellation() }
        }
        return try await withTaskCancellationHandler { try await work.value } onCancel: { work.cancel() }
    }

    /// Async variant of ``transcribe(files:chunking:decoder:)``: runs off the caller's executor; cancellation
    /// stops it between chunks and throws `CancellationError` (it is not reported as a file's failure).
    public func transcribe(
        files: [URL], chunking: ChunkingOptions = .default, decoder: (any CTCDecoder)? = nil
    ) async throws -> [Result<Transcription, ASRError>] {
        var results: [Result<Transcription, ASRError>] = []
        for file in files {
            do {
                results.append(.success(try await transcribe(file: file, chunking: chunking, decoder: decoder)))
            } catch is CancellationError {
                throw CancellationError()
            } catch {
                results.append(.failure(Self.asASRError(error, file: file)))
            }
        }
        return results
    }

    /// Resampling and chunking decisions, at `.debug`.
    func logAudio(_ audio: AudioFile, chunking: ChunkingOptions) {
        guard logger.logLevel <= .debug else { return }
        let seconds = Double(audio.frameCount) / Double(max(1, audio.sampleRate))
        logger.debug("reading audio", metadata: [
            "file": "\(audio.name)", "format": "\(audio.formatDescription)", "rate": "\(audio.sampleRate)",
            "channels": "\(audio.channels)", "seconds": "\(String(format: "%.2f", seconds))",
        ])
        if audio.sampleRate != sampleRate { logger.debug("resampling \(audio.sampleRate) Hz → \(sampleRate) Hz (windowed sinc)") }
        if audio.channels > 1 { logger.debug("averaging \(audio.channels) channels to mono") }
        if seconds > chunking.chunkSeconds {
            logger.debug("chunked: \(chunking.chunkSeconds) s chunks with \(chunking.strideSeconds) s of context on each side")
        }
    }

    /// An error of one file as an `ASRError`: ASRKit's own errors as they are; anything else (which the file path
    /// does not throw today) as what it is, an I/O problem with that file, not an audio format error.
    static func asASRError(_ error: Error, file: URL) -> ASRError {
        if let error = error as? ASRError { return error }
        return .ioFailed(file: file.path, reason: "\(error)")
    }
}
