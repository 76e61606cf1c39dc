import Foundation

/// A decoded character and the CTC frames it spans: [startFrame, endFrame).
public struct CharacterSpan: Sendable, Equatable {
    /// The character's text.
    public let text: String
    /// The first frame that emits it.
    public let startFrame: Int
    /// One past the last frame that emits it.
    public let endFrame: Int
    /// The word delimiter token (its text is the replacement, a space by default).
    public let isWordDelimiter: Bool

    /// A span of `text` over frames `startFrame..<endFrame`.
    public init(text: String, startFrame: Int, endFrame: Int, isWordDelimiter: Bool = false) {
        self.text = text
        self.startFrame = startFrame
        self.endFrame = endFrame
        self.isWordDelimiter = isWordDelimiter
    }
}

/// Turns emissions into a transcript and the alignment behind it. Two implementations: `GreedyDecoder` (best path,
/// exactly transformers' output) and `BeamSearchDecoder` (prefix beam search with a language model and hotwords).
public protocol CTCDecoder: Sendable {
    func decode(_ emissions: Emissions) -> CTCDecoding
}

/// Greedy decoding as a `CTCDecoder` value (what `Transcriber` does when given no decoder).
public struct GreedyDecoder: CTCDecoder {
    /// The CTC vocabulary the logits index.
    public let vocabulary: Vocabulary
    /// A greedy decoder for `vocabulary`.
    public init(vocabulary: Vocabulary) { self.vocabulary = vocabulary }
    /// The best path of `emissions`, collapsed to text.
    public func decode(_ emissions: Emissions) -> CTCDecoding {
        CTCGreedyDecoder.decode(logits: emissions.logits, frames: emissions.frames, vocabulary: vocabulary)
    }
}

/// The result of CTC decoding.
public struct CTCDecoding: Sendable, Equatable {
    /// The transcript, exactly as transformers' `Wav2Vec2CTCTokenizer.decode` writes it.
    public let text: String
    /// The token id of every frame on the chosen alignment (greedy: the best token of the frame).
    public let path: [Int]
    /// Characters after grouping repeats and dropping blanks, with their frame spans (the word delimiter included,
    /// already replaced by a space).
    public let characters: [CharacterSpan]
}

/// Greedy (best path) CTC decoding with transformers' semantics: argmax per frame, group consecutive equal ids,
/// then drop the blank. Grouping comes first so that a blank between two equal letters keeps both ("LL").
public enum CTCGreedyDecoder {
    /// The index of the largest logit of each frame (the first on ties, as `torch.argmax`).
    public static func bestPath(logits: [Float], frames: Int, vocabularySize: Int) -> [Int] {
        precondition(logits.count == frames * vocabularySize)
        var path = [Int](repeating: 0, count: frames)
        logits.withUnsafeBufferPointer { l in
            for t in 0..<frames {
                let row = l.baseAddress! + t * vocabularySize
                var best = 0
                var bestValue = row[0]
                for v in 1..<vocabularySize where row[v] > bestValue {
                    best = v
                    bestValue = row[v]
                }
                path[t] = best
            }
        }
        return path
    }

    /// Collapses a path of token IDs (one per frame): merges repeats, drops blanks, and maps tokens to text.
    public static func decode(path: [Int], vocabulary: Vocabulary) -> CTCDecoding {
        var characters: [CharacterSpan] = []
        var start = 0
        while start < path.count {
            var end = start + 1
            while end < path.count, path[end] == path[start] { end += 1 }
            let id = path[start]
            let token = vocabulary.token(id)
            // transformers filters the blank by its token text, so any id spelled like the pad token is dropped too.
            if token != vocabulary.token(vocabulary.blankID) {
                let isDelimiter = token == vocabulary.wordDelimiter
                var text = isDelimiter ? vocabulary.wordDelimiterReplacement : token
                if vocabulary.lowercaseOutput { text = text.lowercased() }
                characters.append(CharacterSpan(text: text, startFrame: start, endFrame: end, isWordDelimiter: isDelimiter))
            }
            start = end
        }
        var text = characters.map(\.text).joined().trimmingCharacters(in: .whitespacesAndNewlines)
        if vocabulary.cleanUpTokenizationSpaces { text = cleanUpTokenization(text) }
        return CTCDecoding(text: text, path: path, characters: characters)
    }

    /// Greedy decoding of row-major `logits` of `frames` rows: the best token of each frame, collapsed to text.
    public static func decode(logits: [Float], frames: Int, vocabulary: Vocabulary) -> CTCDecoding {
        decode(path: bestPath(logits: logits, frames: frames, vocabularySize: vocabulary.count), vocabulary: vocabulary)
    }

    /// transformers' `clean_up_tokenization`.
    static func cleanUpTokenization(_ text: String) -> String {
        var s = text
        for (from, to) in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"), (" n't", "n't"),
                           (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"), (" 're", "'re")] {
            s = s.replacingOccurrences(of: from, with: to)
        }
        return s
    }
}
