import Foundation

/// A timed transcript as every output writes it: the one model behind `transcribe`'s and `align`'s JSON files, the
/// `--jsonl` manifest lines, the live JSON lines and the server's responses. Numbers are held as written: times in
/// seconds rounded to the millisecond, confidences to 4 decimals.
public struct TimedTranscript: Sendable, Equatable {
    /// A word or character with its times.
    public struct Item: Sendable, Equatable, Encodable {
        /// As spoken (transcribe) or as the transcript spells it (align).
        public let text: String
        /// Seconds, to the millisecond.
        public let start: Double
        /// Seconds, to the millisecond.
        public let end: Double
        /// 0...1, to 4 decimals.
        public let confidence: Double
        /// Forced alignment only: ``AlignedWord/aligned``.
        public let aligned: Bool?
        /// Forced alignment only: ``AlignedWord/confident``.
        public let confident: Bool?

        /// An item with its numbers rounded as written.
        public init(text: String, start: Double, end: Double, confidence: Double, aligned: Bool? = nil, confident: Bool? = nil) {
            self.text = text
            self.start = TimedTranscript.seconds(start)
            self.end = TimedTranscript.seconds(end)
            self.confidence = TimedTranscript.confidence(confidence)
            self.aligned = aligned
            self.confident = confident
        }
    }

    /// The input's path as given, or nil.
    public let file: String?
    /// Seconds of audio, to the millisecond.
    public let duration: Double
    /// The transcript.
    public let text: String
    /// Every word.
    public let words: [Item]
    /// Every character (a space between words).
    public let characters: [Item]

    /// A transcription (`transcribe`, live, the server).
    public init(_ t: Transcription, file: String? = nil) {
        self.file = file
        duration = Self.seconds(t.duration)
        text = t.text
        words = Self.items(t.words)
        characters = t.characters.map { Item(text: $0.text, start: $0.start, end: $0.end, confidence: $0.confidence) }
    }

    /// A forced alignment (`align`): each word with its `aligned` and `confident` flags.
    public init(_ a: ForcedAlignment, file: String? = nil) {
        self.file = file
        duration = Self.seconds(a.duration)
        text = a.text
        words = a.words.map {
            Item(text: $0.text, start: $0.start, end: $0.end, confidence: $0.confidence, aligned: $0.aligned, confident: $0.confident)
        }
        characters = a.characters.map { Item(text: $0.text, start: $0.start, end: $0.end, confidence: $0.confidence) }
    }

    /// Decoded words as items.
    public static func items(_ words: [Word]) -> [Item] {
        words.map { Item(text: $0.text, start: $0.start, end: $0.end, confidence: $0.confidence) }
    }

    /// Seconds as written: rounded to the millisecond.
    public static func seconds(_ value: Double) -> Double { OutputFormat.round(value, 3) }

    /// A confidence as written: rounded to 4 decimals.
    public static func confidence(_ value: Double) -> Double { OutputFormat.round(value, 4) }

    /// The JSON document, written by hand so that keys keep a readable, stable order: {"file", "duration", "text",
    /// "words": [{"text", "start", "end", "confidence"(, "aligned", "confident")}], "characters": [...]}.
    public var json: String {
        let number = OutputFormat.number, quote = OutputFormat.quote
        func item(_ i: Item) -> String {
            var out = "{\"text\": \(quote(i.text)), \"start\": \(number(i.start, 3)), \"end\": \(number(i.end, 3)), "
                + "\"confidence\": \(number(i.confidence, 4))"
            if let aligned = i.aligned { out += ", \"aligned\": \(aligned)" }
            if let confident = i.confident { out += ", \"confident\": \(confident)" }
            return out + "}"
        }
        var out = "{\n"
        out += "  \"file\": \(file.map(quote) ?? "null"),\n"
        out += "  \"duration\": \(number(duration, 3)),\n"
        out += "  \"text\": \(quote(text)),\n"
        out += "  \"words\": [" + words.map { "\n    " + item($0) }.joined(separator: ",")
        out += words.isEmpty ? "],\n" : "\n  ],\n"
        out += "  \"characters\": [" + characters.map { "\n    " + item($0) }.joined(separator: ",")
        out += characters.isEmpty ? "]\n" : "\n  ]\n"
        return out + "}\n"
    }
}
