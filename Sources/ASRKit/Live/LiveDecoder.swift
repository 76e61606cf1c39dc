import Foundation

/// A piece of a live transcript: final once its audio can no longer change it, or a partial hypothesis.
public struct TranscriptSegment: Sendable, Equatable, Codable {
    /// The segment's text (no leading or trailing spaces). The final segments' texts joined by single spaces are the
    /// transcript the file path gives for the same audio.
    public let text: String
    /// Start of the segment's audio, in seconds from the start of the stream.
    public let start: Double
    /// End of the segment's audio, in seconds from the start of the stream.
    public let end: Double
    /// Words with start and end times (seconds from the start of the stream) and confidence.
    public let words: [Word]
    /// Decoded characters with times and confidence: those of the final segments, in order, are the file path's
    /// characters (a word delimiter that ends a segment belongs to it).
    public let characters: [TimedCharacter]

    /// Creates a segment.
    public init(text: String, start: Double, end: Double, words: [Word], characters: [TimedCharacter]) {
        self.text = text
        self.start = start
        self.end = end
        self.words = words
        self.characters = characters
    }
}

/// Greedy CTC decoding of logits that arrive over time, cut into segments where the cut cannot change the text.
///
/// Frames are final when they arrive (``ChunkedEmissions`` hands out only logits no later audio changes), and greedy
/// decoding is per frame, so the best path of the final frames is final. A segment ends at a word delimiter with a
/// letter or digit on each side (and not before an `n` that could start `n't`), which is where the transcript's
/// clean-up of tokenization spaces and its trimming cannot reach across: the segments' texts joined by spaces are
/// exactly the text of decoding all frames at once.
struct LiveDecoder {
    let vocabulary: Vocabulary
    let frameDuration: Double
    /// Absolute index of the first held frame.
    private(set) var frameOffset = 0
    /// Best token and its probability for each frame not yet in a segment.
    private var path: [Int] = []
    private var probability: [Double] = []

    init(vocabulary: Vocabulary, frameDuration: Double) {
        self.vocabulary = vocabulary
        self.frameDuration = frameDuration
    }

    /// Adds final logits (frames × vocabulary size); returns the segment they complete, if any. `duration`: seconds
    /// of audio received so far.
    mutating func append(_ logits: [Float], duration: Double) -> TranscriptSegment? {
        let size = vocabulary.count
        let frames = logits.count / size
        guard frames > 0 else { return nil }
        let newPath = CTCGreedyDecoder.bestPath(logits: logits, frames: frames, vocabularySize: size)
        path += newPath
        probability += Alignment.probabilities(path: newPath, logits: logits, vocabularySize: size)
        let spans = CTCGreedyDecoder.decode(path: path, vocabulary: vocabulary).characters
        if spans.isEmpty {
            // Only blanks: nothing to keep (a run of one id starts afresh after them, as in one pass).
            frameOffset += path.count
            path = []
            probability = []
            return nil
        }
        guard let cut = lastCut(spans) else { return nil }
        return take(spans: Array(spans[...cut]), frames: spans[cut].endFrame, duration: duration)
    }

    /// The rest of the transcript at the end of the audio (nil when it has no text).
    mutating func finish(duration: Double) -> TranscriptSegment? {
        let spans = CTCGreedyDecoder.decode(path: path, vocabulary: vocabulary).characters
        let segment = take(spans: spans, frames: path.count, duration: duration)
        return segment.text.isEmpty ? nil : segment
    }

    /// The text of the held frames followed by tentative logits (not kept).
    func partial(tentative logits: [Float], duration: Double) -> TranscriptSegment? {
        let size = vocabulary.count
        let extra = CTCGreedyDecoder.bestPath(logits: logits, frames: logits.count / size, vocabularySize: size)
        var all = probability
        all += Alignment.probabilities(path: extra, logits: logits, vocabularySize: size)
        let decoding = CTCGreedyDecoder.decode(path: path + extra, vocabulary: vocabulary)
        let (characters, words) = Alignment.align(
            characters: decoding.characters, probability: all, frameOffset: frameOffset, frameDuration: frameDuration,
            duration: duration)
        let text = decoding.text
        guard !text.isEmpty else { return nil }
        return TranscriptSegment(
            text: text, start: Double(frameOffset) * frameDuration, end: min(duration, Double(frameOffset + all.count) * frameDuration),
            words: words, characters: characters)
    }

    /// The last span index where a segment can end: a word delimiter (written as one space) between a letter or
    /// digit and a following character that is a letter or digit, the following span being known.
    private func lastCut(_ spans: [CharacterSpan]) -> Int? {
        func alphanumeric(_ c: Character?) -> Bool { c.map { $0.isLetter || $0.isNumber } ?? false }
        var k = spans.count - 2
        while k >= 1 {
            defer { k -= 1 }
            guard spans[k].isWordDelimiter, spans[k].text == " ",
                  alphanumeric(spans[k - 1].text.last), alphanumeric(spans[k + 1].text.first) else { continue }
            if spans[k + 1].text.first == "n" {
                // " n't" is cleaned up to "n't": the character after the n must be known and not an apostrophe.
                let next = spans[k + 1].text.count > 1 ? spans[k + 1].text.dropFirst().first
                    : (k + 2 < spans.count ? spans[k + 2].text.first : nil)
                guard alphanumeric(next) else { continue }
            }
            return k
        }
        return nil
    }

    /// Makes a segment of `spans` (relative frames), which covers the first `frames` held frames, and drops them.
    private mutating func take(spans: [CharacterSpan], frames: Int, duration: Double) -> TranscriptSegment {
        var text = spans.map(\.text).joined().trimmingCharacters(in: .whitespacesAndNewlines)
        if vocabulary.cleanUpTokenizationSpaces { text = CTCGreedyDecoder.cleanUpTokenization(text) }
        let (characters, words) = Alignment.align(
            characters: spans, probability: Array(probability[..<frames]), frameOffset: frameOffset,
            frameDuration: frameDuration, duration: duration)
        let segment = TranscriptSegment(
            text: text, start: min(duration, Double(frameOffset) * frameDuration),
            end: min(duration, Double(frameOffset + frames) * frameDuration), words: words, characters: characters)
        frameOffset += frames
        path.removeFirst(frames)
        probability.removeFirst(frames)
        return segment
    }
}
