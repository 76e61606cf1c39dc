import ASRKit
import Foundation

/// One JSON line of a batch manifest (``ManifestWriter``): the transcript schema's fields and numbers (ASRKit's `TimedTranscript`), with the
/// status, timing and error of the input.
public enum ManifestLine {

    struct Line: Encodable {
        var file: String
        var status: String
        var duration: Double?
        var transcript: String?
        var words: [TimedTranscript.Item]?
        var elapsed: Double?
        var realTimeFactor: Double?
        var error: String?
        var outputs: [String]?

        enum CodingKeys: String, CodingKey {
            case file, status, duration, transcript, words, elapsed, error, outputs
            case realTimeFactor = "real_time_factor"
        }
    }

    static func encode(_ line: Line) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(line)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    static func round(_ value: Double, _ digits: Int) -> Double {
        let scale = pow(10, Double(digits))
        return (value * scale).rounded() / scale
    }

    /// A transcribed input: its transcript, words, and the seconds it took.
    public static func success(_ path: String, _ t: Transcription, elapsed: Double) -> String {
        success(path, TimedTranscript(t), elapsed: elapsed, audio: t.duration)
    }

    /// An aligned input (`asr align`): the transcript as given and every word with its times and flags.
    public static func success(_ path: String, _ a: ForcedAlignment, elapsed: Double) -> String {
        success(path, TimedTranscript(a), elapsed: elapsed, audio: a.duration)
    }

    private static func success(_ path: String, _ t: TimedTranscript, elapsed: Double, audio: Double) -> String {
        encode(Line(file: path, status: "ok", duration: t.duration, transcript: t.text, words: t.words,
                    elapsed: round(elapsed, 3), realTimeFactor: audio > 0 ? round(elapsed / audio, 4) : nil))
    }

    /// An input that failed, with the error in words.
    public static func failure(_ path: String, message: String) -> String {
        encode(Line(file: path, status: "error", error: message))
    }

    /// An input passed over because its outputs exist.
    public static func skipped(_ path: String, outputs: [String]) -> String {
        encode(Line(file: path, status: "skipped", outputs: outputs))
    }
}
