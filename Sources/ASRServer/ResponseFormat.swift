import ASRKit
import Foundation
import Hummingbird

/// OpenAI's `response_format` values. text, srt and vtt are the CLI's txt, srt and vtt renderings byte for byte.
enum ResponseFormat: String, CaseIterable {
    case json
    case text
    case srt
    case vtt
    case verboseJSON = "verbose_json"

    func response(_ t: Transcription, language: String?, words: Bool) -> Response {
        switch self {
        case .json:
            return Self.make(JSON.encode(["text": t.text]), type: "application/json")
        case .text:
            return Self.make(ByteBuffer(string: OutputFormat.txt.render(t)), type: "text/plain; charset=utf-8")
        case .srt:
            return Self.make(ByteBuffer(string: OutputFormat.srt.render(t)), type: "application/x-subrip; charset=utf-8")
        case .vtt:
            return Self.make(ByteBuffer(string: OutputFormat.vtt.render(t)), type: "text/vtt; charset=utf-8")
        case .verboseJSON:
            return Self.make(JSON.encode(Verbose(t, language: language, words: words)), type: "application/json")
        }
    }

    private static func make(_ body: ByteBuffer, type: String) -> Response {
        Response(status: .ok, headers: [.contentType: type], body: .init(byteBuffer: body))
    }

    /// Times as in the CLI's JSON: seconds rounded to milliseconds.
    static func seconds(_ value: Double) -> Double { TimedTranscript.seconds(value) }

    /// OpenAI's verbose_json. Segments are the subtitle cues (the same as the srt/vtt cues). Fields that describe
    /// Whisper's sampling have fixed values: tokens [], temperature 0, compression_ratio 1, no_speech_prob 0;
    /// avg_logprob is the mean log confidence of the segment's words.
    struct Verbose: Encodable {
        struct Segment: Encodable {
            let id: Int
            let seek: Int
            let start: Double
            let end: Double
            let text: String
            let tokens: [Int]
            let temperature: Double
            let avg_logprob: Double
            let compression_ratio: Double
            let no_speech_prob: Double
        }
        struct TimedWord: Encodable {
            let word: String
            let start: Double
            let end: Double
        }
        let task = "transcribe"
        let language: String
        let duration: Double
        let text: String
        let segments: [Segment]
        let words: [TimedWord]?

        init(_ t: Transcription, language: String?, words includeWords: Bool) {
            self.language = language ?? "unknown"
            duration = ResponseFormat.seconds(t.duration)
            text = t.text
            var segments: [Segment] = []
            var index = 0
            for cue in OutputFormat.cues(t.words) {
                // A cue is consecutive words joined by spaces.
                let count = cue.text.split(separator: " ", omittingEmptySubsequences: false).count
                let logs = t.words[min(index, t.words.count)..<min(index + count, t.words.count)].map { log(max($0.confidence, 1e-10)) }
                index += count
                let average = logs.isEmpty ? 0 : logs.reduce(0, +) / Double(logs.count)
                segments.append(Segment(
                    id: segments.count, seek: 0, start: ResponseFormat.seconds(cue.start), end: ResponseFormat.seconds(cue.end),
                    text: cue.text, tokens: [], temperature: 0, avg_logprob: (average * 10000).rounded() / 10000,
                    compression_ratio: 1, no_speech_prob: 0))
            }
            self.segments = segments
            self.words = includeWords ? TimedTranscript.items(t.words).map { TimedWord(word: $0.text, start: $0.start, end: $0.end) } : nil
        }
    }
}
