import ASRKit
import Logging
import CBuiltinModel
import Foundation

/// The small English model linked into this binary, so that `asr` works with no download.
///
/// It is a real Wav2Vec2ForCTC checkpoint (base-960h layout, scaled down) trained from scratch on synthetic speech
/// (espeak-ng, flite and festival voices; see tools/train/). It transcribes clear synthetic-sounding English well
/// and real recordings poorly: for real speech, use a Hugging Face checkpoint such as facebook/wav2vec2-base-960h.
public enum BuiltinModel {
    /// Shown by `asr info` and in the README.
    public static let summary =
        "built-in model: a small Wav2Vec2ForCTC trained from scratch on synthetic speech (espeak-ng, flite, festival voices). "
        + "It is meant for trying asr out; for real recordings use a Hugging Face checkpoint (e.g. facebook/wav2vec2-base-960h) with --model."

    /// Loads the built-in model (the weights are read in place from the binary's read-only data), its large
    /// products in `precision`.
    /// Diagnostics go to `logger` (see ``Transcriber``; discarded by default).
    public static func load(
        precision: Precision = .fp32, execution: ExecutionOptions = ExecutionOptions(), logger: Logger = Transcriber.silentLogger
    ) throws -> Transcriber {
        var files: [String: UnsafeRawBufferPointer] = [:]
        for name in ["config.json", "vocab.json", "tokenizer_config.json", "preprocessor_config.json", "model.safetensors"] {
            var size = 0
            if let start = asr_builtin_model_file(name, &size) {
                files[name] = UnsafeRawBufferPointer(start: start, count: size)
            }
        }
        return try Transcriber(
            embeddedFiles: files, location: "built-in model", precision: precision, execution: execution, logger: logger)
    }

    /// Training facts of the built-in model (steps, audio hours seen, minutes of training), as JSON.
    public static var trainingRecord: String {
        var size = 0
        guard let start = asr_builtin_model_file("training.json", &size) else { return "{}" }
        return String(decoding: UnsafeRawBufferPointer(start: start, count: size), as: UTF8.self)
    }
}
