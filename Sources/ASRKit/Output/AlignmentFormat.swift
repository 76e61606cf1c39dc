import Foundation

/// File formats of a forced alignment (`asr align`). The transcript formats keep their schema (``OutputFormat``);
/// subtitles keep the transcript's own lines; TextGrid and CTM are what phoneticians and speech toolkits read.
public enum AlignmentFormat: String, CaseIterable, Sendable {
    /// The transcript as given and a newline.
    case txt
    /// The transcript JSON schema (``OutputFormat/json``), each word with `"aligned"` and `"confident"` added.
    case json
    /// SubRip subtitles: one cue per non-empty line of the transcript (the user's own line breaks).
    case srt
    /// WebVTT subtitles: one cue per non-empty line of the transcript.
    case vtt
    /// One word per line: start and end in milliseconds, the word, its confidence, whether it was aligned and whether
    /// it was placed with confidence.
    case tsv
    /// A Praat TextGrid (long text format) with a "words" and a "chars" interval tier, gaps as empty intervals, as
    /// the Montreal Forced Aligner writes its tiers.
    case textgrid
    /// Kaldi CTM: `<file> 1 <start> <duration> <word> <confidence>`, one word per line.
    case ctm

    /// The file extension for this format ("TextGrid" for Praat, which expects that spelling).
    public var fileExtension: String { self == .textgrid ? "TextGrid" : rawValue }

    /// The file's contents for `alignment`; `source` (the audio's path) names the file in JSON and CTM.
    public func render(_ alignment: ForcedAlignment, source: String? = nil) -> String {
        switch self {
        case .txt: return alignment.text.trimmingCharacters(in: .newlines) + "\n"
        case .json: return Self.json(alignment, source: source)
        case .srt: return Self.subtitles(alignment, vtt: false)
        case .vtt: return Self.subtitles(alignment, vtt: true)
        case .tsv:
            var out = "start\tend\tword\tconfidence\taligned\tconfident\n"
            for w in alignment.words {
                out += "\(OutputFormat.milliseconds(w.start))\t\(OutputFormat.milliseconds(w.end))\t\(w.text)\t"
                    + "\(OutputFormat.round(w.confidence, 4))\t\(w.aligned)\t\(w.confident)\n"
            }
            return out
        case .textgrid: return Self.textGrid(alignment)
        case .ctm:
            let name = source.map { (($0 as NSString).lastPathComponent as NSString).deletingPathExtension } ?? "audio"
            let id = name.isEmpty || name == "-" ? "audio" : name.replacingOccurrences(of: " ", with: "_")
            return alignment.words.map { w in
                "\(id) 1 \(OutputFormat.number(w.start, 3)) \(OutputFormat.number(w.end - w.start, 3)) "
                    + "\(w.text) \(OutputFormat.number(w.confidence, 4))\n"
            }.joined()
        }
    }

    /// The transcript schema (``TimedTranscript/json``), each word with its `aligned` and `confident` flags.
    static func json(_ a: ForcedAlignment, source: String?) -> String { TimedTranscript(a, file: source).json }

    /// The transcript's non-empty lines as cues: each from its first word's start to its last word's end.
    public static func lineCues(_ a: ForcedAlignment) -> [OutputFormat.Cue] {
        var cues: [OutputFormat.Cue] = []
        var index = 0
        for line in a.text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline) {
            let count = line.split(whereSeparator: \.isWhitespace).count
            guard count > 0, index + count <= a.words.count else { continue }
            let words = a.words[index..<(index + count)]
            index += count
            cues.append(OutputFormat.Cue(start: words.first!.start, end: max(words.first!.start, words.last!.end),
                                         text: line.trimmingCharacters(in: .whitespaces)))
        }
        return cues
    }

    static func subtitles(_ a: ForcedAlignment, vtt: Bool) -> String {
        var out = vtt ? "WEBVTT\n\n" : ""
        for (index, cue) in lineCues(a).enumerated() {
            if !vtt { out += "\(index + 1)\n" }
            out += "\(OutputFormat.timestamp(cue.start, vtt: vtt)) --> \(OutputFormat.timestamp(cue.end, vtt: vtt))\n\(cue.text)\n\n"
        }
        return out
    }

    /// Praat's long text format: two interval tiers covering 0…duration, gaps as intervals with empty text.
    static func textGrid(_ a: ForcedAlignment) -> String {
        func escaped(_ s: String) -> String { s.replacingOccurrences(of: "\"", with: "\"\"") }
        func intervals(_ items: [(text: String, start: Double, end: Double)]) -> [(Double, Double, String)] {
            var out: [(Double, Double, String)] = []
            var at = 0.0
            for item in items where item.end > item.start {
                let start = max(at, item.start), end = min(a.duration, item.end)
                guard end > start else { continue }
                if start > at { out.append((at, start, "")) }
                out.append((start, end, item.text))
                at = end
            }
            if a.duration > at || out.isEmpty { out.append((at, max(at, a.duration), "")) }
            return out
        }
        let tiers: [(String, [(Double, Double, String)])] = [
            ("words", intervals(a.words.map { ($0.text, $0.start, $0.end) })),
            ("chars", intervals(a.characters.filter { $0.text != " " }.map { ($0.text, $0.start, $0.end) })),
        ]
        func time(_ t: Double) -> String { OutputFormat.number(t, 3) }
        var out = "File type = \"ooTextFile\"\nObject class = \"TextGrid\"\n\n"
        out += "xmin = 0\nxmax = \(time(a.duration))\ntiers? <exists>\nsize = \(tiers.count)\nitem []:\n"
        for (n, tier) in tiers.enumerated() {
            out += "    item [\(n + 1)]:\n        class = \"IntervalTier\"\n        name = \"\(tier.0)\"\n"
            out += "        xmin = 0\n        xmax = \(time(a.duration))\n        intervals: size = \(tier.1.count)\n"
            for (i, interval) in tier.1.enumerated() {
                out += "        intervals [\(i + 1)]:\n            xmin = \(time(interval.0))\n            xmax = \(time(interval.1))\n"
                out += "            text = \"\(escaped(interval.2))\"\n"
            }
        }
        return out
    }
}
