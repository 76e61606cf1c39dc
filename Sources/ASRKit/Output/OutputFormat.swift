import Foundation

/// Transcript file formats.
public enum OutputFormat: String, CaseIterable, Sendable {
    /// The transcript and a newline.
    case txt
    /// Everything: text, duration, words and characters with times and confidences (schema in the README).
    case json
    /// SubRip subtitles, cues built from words.
    case srt
    /// WebVTT subtitles, cues built from words.
    case vtt
    /// One word per line: start and end in milliseconds, the word, its confidence; with a header line.
    case tsv

    /// The file extension for this format, without the dot ("txt", "json", ...).
    public var fileExtension: String { rawValue }

    /// The file's contents for `transcription`. `source` (the input's path) goes into the JSON.
    public func render(_ transcription: Transcription, source: String? = nil) -> String {
        switch self {
        case .txt: return transcription.text + "\n"
        case .json: return Self.json(transcription, source: source)
        case .srt: return Self.subtitles(transcription, vtt: false)
        case .vtt: return Self.subtitles(transcription, vtt: true)
        case .tsv:
            var out = "start\tend\tword\tconfidence\n"
            for w in transcription.words {
                out += "\(Self.milliseconds(w.start))\t\(Self.milliseconds(w.end))\t\(w.text)\t\(Self.round(w.confidence, 4))\n"
            }
            return out
        }
    }

    // MARK: JSON

    /// The JSON document: ``TimedTranscript/json``, the schema every output shares.
    static func json(_ t: Transcription, source: String?) -> String { TimedTranscript(t, file: source).json }

    /// A JSON string literal.
    static func quote(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case _ where scalar.value < 0x20: out += String(format: "\\u%04x", scalar.value)
            default: out.unicodeScalars.append(scalar)
            }
        }
        return out + "\""
    }

    /// A number rounded to `digits` decimals, without trailing zeros ("0.5", "12", "0.125").
    static func number(_ value: Double, _ digits: Int) -> String {
        guard value.isFinite else { return "null" }
        var text = String(format: "%.\(digits)f", round(value, digits))
        if text.contains(".") {
            while text.hasSuffix("0") { text.removeLast() }
            if text.hasSuffix(".") { text.removeLast() }
        }
        return text == "-0" ? "0" : text
    }

    static func round(_ value: Double, _ digits: Int) -> Double {
        let scale = pow(10, Double(digits))
        return (value * scale).rounded() / scale
    }

    static func milliseconds(_ seconds: Double) -> Int { Int((seconds * 1000).rounded()) }

    // MARK: Subtitles

    /// A subtitle cue: consecutive words shown together.
    public struct Cue: Sendable, Equatable {
        /// Seconds from the start of the audio at which the cue appears.
        public let start: Double
        /// Seconds from the start of the audio at which the cue disappears.
        public let end: Double
        /// The words shown.
        public let text: String
    }

    /// Groups words into cues of at most `maxCharacters` characters and `maxSeconds` seconds, starting a new cue
    /// at a pause longer than `maxGap` seconds. A cue shorter than `minSeconds` (a lone short word: 80 ms cannot be
    /// read) is shown longer, into the pause after it; where the next cue follows too closely for that, it is merged
    /// with its neighbour.
    public static func cues(
        _ words: [Word], maxCharacters: Int = 42, maxSeconds: Double = 7, maxGap: Double = 1.0, minSeconds: Double = 0.5
    ) -> [Cue] {
        var cues = groupedCues(words, maxCharacters: maxCharacters, maxSeconds: maxSeconds, maxGap: maxGap)
        var i = 0
        while i < cues.count {
            let cue = cues[i]
            guard cue.end - cue.start < minSeconds else { i += 1; continue }
            let limit = i + 1 < cues.count ? cues[i + 1].start : cue.start + minSeconds
            let end = max(cue.end, min(cue.start + minSeconds, limit))
            if end - cue.start >= minSeconds - 1e-9 || cues.count == 1 {
                cues[i] = Cue(start: cue.start, end: end, text: cue.text)
                i += 1
            } else if i + 1 < cues.count {
                let next = cues.remove(at: i + 1)
                cues[i] = Cue(start: cue.start, end: next.end, text: cue.text + " " + next.text)
            } else {
                let previous = cues.remove(at: i - 1)
                cues[i - 1] = Cue(start: previous.start, end: max(previous.end, cue.end), text: previous.text + " " + cue.text)
                i -= 1
            }
        }
        return cues
    }

    static func groupedCues(_ words: [Word], maxCharacters: Int, maxSeconds: Double, maxGap: Double) -> [Cue] {
        var cues: [Cue] = []
        var current: [Word] = []
        func flush() {
            guard let first = current.first, let last = current.last else { return }
            cues.append(Cue(start: first.start, end: last.end, text: current.map(\.text).joined(separator: " ")))
            current = []
        }
        for word in words {
            if let first = current.first, let last = current.last {
                let length = current.reduce(0) { $0 + $1.text.count + 1 } + word.text.count
                if length > maxCharacters || word.end - first.start > maxSeconds || word.start - last.end > maxGap {
                    flush()
                }
            }
            current.append(word)
        }
        flush()
        return cues
    }

    static func subtitles(_ t: Transcription, vtt: Bool) -> String {
        var out = vtt ? "WEBVTT\n\n" : ""
        for (index, cue) in cues(t.words).enumerated() {
            if !vtt { out += "\(index + 1)\n" }
            out += "\(timestamp(cue.start, vtt: vtt)) --> \(timestamp(cue.end, vtt: vtt))\n\(cue.text)\n\n"
        }
        return out
    }

    /// 00:01:02,345 (SRT) or 00:01:02.345 (WebVTT).
    static func timestamp(_ seconds: Double, vtt: Bool) -> String {
        let ms = milliseconds(max(0, seconds))
        return String(format: "%02d:%02d:%02d%@%03d", ms / 3_600_000, ms / 60_000 % 60, ms / 1000 % 60, vtt ? "." : ",", ms % 1000)
    }
}
