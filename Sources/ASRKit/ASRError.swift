import Foundation

/// Every error ASRKit throws. Each case carries what a user needs to find and fix the problem: the file, the field
/// or tensor, and what was expected.
public enum ASRError: Error, Equatable, Sendable {
    // MARK: Model directory and configuration
    /// A Hugging Face model id is not in the local cache.
    case modelNotCached(id: String, cache: String)
    /// The model given is neither an existing directory nor a cached model id (`reason` says which it is not).
    case modelNotFound(path: String, reason: String)
    /// A file the model directory must contain is absent.
    case missingModelFile(directory: String, file: String)
    /// A JSON file of the model directory could not be parsed.
    case malformedJSON(file: String, reason: String)
    /// A configuration field has a value we cannot run (wrong type, out of range, inconsistent).
    case invalidConfiguration(field: String, reason: String)
    /// The configuration asks for a feature this engine does not implement; running it would give wrong output.
    case unsupportedConfiguration(field: String, value: String)
    /// The vocabulary disagrees with the configuration or is unusable.
    case invalidVocabulary(file: String, reason: String)

    // MARK: Weights
    /// The safetensors file is not well formed.
    case invalidSafeTensors(file: String, reason: String)
    /// A PyTorch or sharded checkpoint is not well formed, or asks for something loading must not do.
    case invalidCheckpoint(file: String, reason: String)
    /// A tensor the architecture needs is not in the checkpoint.
    case missingTensor(name: String)
    /// A tensor's shape does not match what the configuration implies.
    case tensorShapeMismatch(name: String, expected: [Int], found: [Int])
    /// A tensor is stored in a type we cannot convert to Float.
    case unsupportedDType(name: String, dtype: String)
    /// The checkpoint holds tensors the architecture does not use (a different model or an unsupported variant).
    case unexpectedTensors(names: [String])
    /// An int8-quantized weight (or its scale) of an `asr_int8` checkpoint is unusable.
    case invalidQuantizedTensor(name: String, reason: String)

    // MARK: Quantizing (`asr quantize`)
    /// The model cannot be quantized as asked (already quantized, fp32 asked for, output = input).
    case quantizationRefused(directory: String, reason: String)
    /// The output directory exists and holds files, and replacing it was not asked for.
    case outputNotEmpty(directory: String)

    // MARK: Audio
    /// The audio file could not be opened or decoded.
    case unreadableAudio(file: String, reason: String)
    /// The audio is not usable as it is (wrong rate, empty, non-finite samples, ...).
    case invalidAudio(file: String, reason: String)

    /// Chunking settings that cannot work (non-finite, negative, or a stride that leaves no audio to keep).
    case invalidChunking(reason: String)

    /// A transcript to align cannot fit the audio: `tokens` tokens, `repeats` of them repeating the one before (a
    /// blank frame must separate those), need `tokens + repeats` frames and the audio gives `frames` (of
    /// `frameDuration` seconds each, when known).
    case transcriptTooLong(frames: Int, tokens: Int, repeats: Int, frameDuration: Double?)

    /// Aligning `tokens` tokens over `seconds` of audio in one pass would need `bytes` of memory, more than
    /// ``ForcedAligner/maxTableBytes``.
    case alignmentTooLarge(seconds: Double, tokens: Int, bytes: Int)

    /// A NumPy array file is not one we can read.
    case invalidArrayFile(file: String, reason: String)

    /// Fetching a model from the hub failed.
    case downloadFailed(file: String, reason: String)

    /// A language was asked of a multilingual (MMS) checkpoint that lacks it, or of a checkpoint with one language,
    /// or none was given where the checkpoint names no default; `available` lists the checkpoint's languages.
    case invalidLanguage(language: String?, reason: String, available: [String])

    // MARK: Language model
    /// An ARPA language model, a corpus for `lm build`, a hotword or a decoder option is unusable.
    case invalidLanguageModel(file: String, reason: String)
    /// A hotword cannot be used: unparsable (`word:weight` with a bad weight, no word) or not writable in the
    /// model's alphabet (`reason` names the characters).
    case invalidHotword(hotword: String, reason: String)

    /// Reading a file failed for a reason outside the audio itself (the operating system, the file system).
    case ioFailed(file: String, reason: String)

    // MARK: Output
    /// A result could not be written.
    case writeFailed(file: String, reason: String)
}

extension ASRError: LocalizedError, CustomStringConvertible {
    /// The same text as `description`, for `LocalizedError`.
    public var errorDescription: String? { description }

    /// A one-line, human-readable explanation of the error.
    public var description: String {
        switch self {
        case .modelNotCached(let id, let cache):
            return "model '\(id)' is neither a directory nor in the Hugging Face cache (\(cache))"
        case .modelNotFound(let path, let reason):
            return "model '\(path)': \(reason)"
        case .invalidChunking(let reason):
            return "invalid chunking: \(reason)"
        case .missingModelFile(let directory, let file):
            return "model directory '\(directory)' has no \(file)"
        case .malformedJSON(let file, let reason):
            return "\(file): malformed JSON: \(reason)"
        case .invalidConfiguration(let field, let reason):
            return "config.json: invalid '\(field)': \(reason)"
        case .unsupportedConfiguration(let field, let value):
            return "config.json: '\(field)' = \(value) is not supported by this engine"
        case .invalidVocabulary(let file, let reason):
            return "\(file): \(reason)"
        case .invalidSafeTensors(let file, let reason):
            return "\(file): invalid safetensors file: \(reason)"
        case .invalidCheckpoint(let file, let reason):
            return "\(file): \(reason)"
        case .missingTensor(let name):
            return "checkpoint has no tensor '\(name)'"
        case .tensorShapeMismatch(let name, let expected, let found):
            return "tensor '\(name)' has shape \(found), expected \(expected) from config.json"
        case .unsupportedDType(let name, let dtype):
            return "tensor '\(name)' has dtype \(dtype); only F32, F16 and BF16 are supported"
        case .unexpectedTensors(let names):
            let shown = names.prefix(5).joined(separator: ", ")
            let more = names.count > 5 ? " and \(names.count - 5) more" : ""
            return "checkpoint has tensors this architecture does not use: \(shown)\(more)"
        case .invalidQuantizedTensor(let name, let reason):
            return "tensor '\(name)': \(reason)"
        case .quantizationRefused(let directory, let reason):
            return "cannot quantize '\(directory)': \(reason)"
        case .outputNotEmpty(let directory):
            return "output directory '\(directory)' exists and is not empty (`asr quantize --overwrite` replaces it)"
        case .unreadableAudio(let file, let reason):
            return "\(file): cannot read audio: \(reason)"
        case .invalidAudio(let file, let reason):
            return "\(file): \(reason)"
        case .invalidArrayFile(let file, let reason):
            return "\(file): \(reason)"
        case .downloadFailed(let file, let reason):
            return "\(file): download failed: \(reason)"
        case .invalidLanguageModel(let file, let reason):
            return "\(file): \(reason)"
        case .transcriptTooLong(let frames, let tokens, let repeats, let frameDuration):
            let needed = tokens + repeats
            guard let frameDuration else {
                return "the transcript does not fit the audio: its \(tokens) tokens (\(repeats) repeated, which need a blank "
                    + "between) need at least \(needed) frames and the audio has \(frames)"
            }
            return String(format: "the transcript does not fit the audio: %.2f s of audio give %d frames of %.0f ms, and the "
                          + "transcript's %d characters (%d doubled letters, which need a pause between) need at least %d "
                          + "(%.2f s of speech); check that the transcript belongs to this audio, or cut the transcript to "
                          + "the part spoken", Double(frames) * frameDuration, frames, frameDuration * 1000, tokens, repeats,
                          needed, Double(needed) * frameDuration)
        case .alignmentTooLarge(let seconds, let tokens, let bytes):
            return String(format: "aligning %d transcript characters over %.0f s of audio in one pass would need %.1f GB; "
                          + "cut the recording and its transcript into parts (e.g. at chapter or paragraph breaks)",
                          tokens, seconds, Double(bytes) / 1e9)
        case .invalidHotword(let hotword, let reason):
            return "hotword '\(hotword)': \(reason)"
        case .invalidLanguage(let language, let reason, let available):
            let list = available.isEmpty ? "" : " (available: \(available.joined(separator: ", ")))"
            return (language.map { "language '\($0)': " } ?? "") + reason + list
        case .ioFailed(let file, let reason):
            return "\(file): \(reason)"
        case .writeFailed(let file, let reason):
            return "\(file): cannot write: \(reason)"
        }
    }
}
