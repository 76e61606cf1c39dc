import Foundation

/// A decoded character with its time span and the model's probability for it.
public struct TimedCharacter: Sendable, Equatable, Codable {
    /// The character's text.
    public let text: String
    /// Seconds from the start of the audio.
    public let start: Double
    /// Seconds from the start of the audio to the character's end.
    public let end: Double
    /// Mean probability of this character over the frames that emit it.
    public let confidence: Double
}

/// A word with its time span and confidence.
public struct Word: Sendable, Equatable, Codable {
    /// The word's text.
    public let text: String
    /// Seconds from the start of the audio.
    public let start: Double
    /// Seconds from the start of the audio to the word's end.
    public let end: Double
    /// Mean frame probability of the word's characters (0...1).
    public let confidence: Double
}

/// Turns a greedy CTC path into timed characters and words.
///
/// A character spans the frames of its run of equal ids, [startFrame, endFrame) × the frame duration (0.02 s for
/// released models, from the conv strides); a word spans its first character's start to its last character's end,
/// as transformers' `output_word_offsets`. Times are clamped to the audio's duration: the last frame's window
/// can reach past the end of the samples.
enum Alignment {
    static func align(
        decoding: CTCDecoding, logits: [Float], vocabularySize: Int, frameDuration: Double, duration: Double,
        wordDelimiter: String
    ) -> (characters: [TimedCharacter], words: [Word]) {
        let probability = probabilities(path: decoding.path, logits: logits, vocabularySize: vocabularySize)
        return align(characters: decoding.characters, probability: probability, frameOffset: 0,
                     frameDuration: frameDuration, duration: duration)
    }

    /// Probability of the chosen token at every frame: exp(logit - logsumexp(row)).
    static func probabilities(path: [Int], logits: [Float], vocabularySize: Int) -> [Double] {
        var probability = [Double](repeating: 0, count: path.count)
        logits.withUnsafeBufferPointer { l in
            for t in path.indices {
                let row = l.baseAddress! + t * vocabularySize
                var maxValue = -Float.infinity
                for v in 0..<vocabularySize { maxValue = max(maxValue, row[v]) }
                var sum = 0.0
                for v in 0..<vocabularySize { sum += Foundation.exp(Double(row[v] - maxValue)) }
                probability[t] = Foundation.exp(Double(row[path[t]] - maxValue)) / sum
            }
        }
        return probability
    }

    /// Timed characters and words for character spans whose frames count from `frameOffset` (`probability[0]` is
    /// that frame's).
    static func align(
        characters spans: [CharacterSpan], probability: [Double], frameOffset: Int, frameDuration: Double, duration: Double
    ) -> (characters: [TimedCharacter], words: [Word]) {
        func time(_ frame: Int) -> Double { min(duration, Double(frame + frameOffset) * frameDuration) }

        var characters: [TimedCharacter] = []
        var words: [Word] = []
        var wordText = ""
        var wordStart = 0.0, wordEnd = 0.0
        var wordProbability = 0.0, wordFrames = 0
        func finishWord() {
            if !wordText.isEmpty {
                words.append(Word(text: wordText, start: wordStart, end: wordEnd,
                                  confidence: wordProbability / Double(max(1, wordFrames))))
            }
            wordText = ""; wordProbability = 0; wordFrames = 0
        }
        for span in spans {
            let frames = span.startFrame..<span.endFrame
            let total = frames.reduce(0.0) { $0 + probability[$1] }
            let character = TimedCharacter(
                text: span.text, start: time(span.startFrame), end: time(span.endFrame),
                confidence: total / Double(frames.count))
            characters.append(character)
            if span.isWordDelimiter || span.text.allSatisfy(\.isWhitespace) {
                finishWord()
                continue
            }
            if wordText.isEmpty { wordStart = character.start }
            wordText += span.text
            wordEnd = character.end
            wordProbability += total
            wordFrames += frames.count
        }
        finishWord()
        return (characters, words)
    }
}
