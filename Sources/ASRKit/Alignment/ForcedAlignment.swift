import Foundation

/// A word of a known transcript with the time it is spoken.
public struct AlignedWord: Sendable, Equatable, Codable {
    /// The word exactly as the transcript spells it (case, punctuation, digits and accents kept).
    public let text: String
    /// Seconds from the start of the audio to the word's first frame.
    public let start: Double
    /// Seconds from the start of the audio to the end of the word's last frame.
    public let end: Double
    /// Mean probability the model gives the word's tokens over the frames aligned to them (0...1).
    public let confidence: Double
    /// False when nothing of the word could be aligned by the model's own tokens: it is all characters the
    /// vocabulary lacks (a number, a symbol, another script; aligned through the wildcard), or all punctuation (then it
    /// has no frames: `start == end`, at the boundary where it stands). Its times are then only an estimate.
    public let aligned: Bool
    /// False when the model gives the word's tokens a mean probability below ``ForcedAligner/confidenceThreshold``
    /// where the path placed them: the path had to put the word somewhere, but the audio there does not sound like
    /// it — typically a word of the transcript that is not spoken (or is spoken very differently). Its times are then
    /// a guess. A word with no frames (punctuation alone) is not judged: true.
    public let confident: Bool

    /// A word and its times; `confident` defaults to what ``ForcedAligner/confidenceThreshold`` says of `confidence`.
    public init(text: String, start: Double, end: Double, confidence: Double, aligned: Bool, confident: Bool? = nil) {
        self.text = text
        self.start = start
        self.end = end
        self.confidence = confidence
        self.aligned = aligned
        self.confident = confident ?? (start == end || confidence >= ForcedAligner.confidenceThreshold)
    }
}

/// A transcript aligned to audio: every word of it, in order, with times.
public struct ForcedAlignment: Sendable, Equatable {
    /// The transcript as given.
    public let text: String
    /// Seconds of audio.
    public let duration: Double
    /// Every word of the transcript (split at white space), in order, none dropped.
    public let words: [AlignedWord]
    /// The characters that were aligned, in the transcript's spelling: one entry per vocabulary token, one per
    /// run of characters the vocabulary lacks (aligned through the wildcard), and a space for each word boundary.
    public let characters: [TimedCharacter]

    /// As a ``Transcription``, for the renderers of transcripts (txt, json, srt, vtt, tsv).
    public var transcription: Transcription {
        Transcription(text: text, duration: duration,
                      words: words.map { Word(text: $0.text, start: $0.start, end: $0.end, confidence: $0.confidence) },
                      characters: characters)
    }
}

/// Forced alignment of a known transcript on a model's emissions: the transcript is spelled in the vocabulary's
/// tokens (letter case folded to the vocabulary's, the word delimiter between words), characters the vocabulary
/// lacks become a wildcard token whose probability is that of "any non-blank token" (log(1 − p(blank))), and
/// ``CTCViterbi`` finds the best path. Punctuation the vocabulary lacks is not aligned (it is not spoken) but stays
/// in the words' text.
public enum ForcedAligner {
    /// One token of the spelled transcript, and where it comes from.
    struct Piece {
        let token: Int          // vocabulary id, or the wildcard (vocabulary size)
        let word: Int           // index of its word, or -1 for a word delimiter
        let text: String        // the characters of the transcript it stands for
        /// A number spelled out in words: the pieces of one number share it (the index of its word); its first piece's
        /// text is the number as written, the others' empty, and together they make one character of the output.
        var number: Int? = nil
    }

    /// English cardinal words for `n` (0 ≤ n < 10⁹), as a speaker reads it: "two hundred and eighty", "seven
    /// thousand and five".
    static func englishWords(_ n: Int) -> [String] {
        let ones = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
                    "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen"]
        let tens = ["", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]
        if n < 20 { return [ones[n]] }
        if n < 100 { return [tens[n / 10]] + (n % 10 == 0 ? [] : [ones[n % 10]]) }
        if n < 1000 { return [ones[n / 100], "hundred"] + (n % 100 == 0 ? [] : ["and"] + englishWords(n % 100)) }
        for (value, name) in [(1_000_000, "million"), (1000, "thousand")] where n >= value {
            let rest = n % value
            return englishWords(n / value) + [name] + (rest == 0 ? [] : (rest < 100 ? ["and"] : []) + englishWords(rest))
        }
        return []
    }

    /// The words a number written in digits is spoken as, in `vocabulary`'s spelling; nil when the vocabulary writes
    /// digits itself, cannot write these English words, or the word is not a plain number of at most 9 digits.
    /// Measured with `benchmarks/align.py --numbers` (README): spelled out, numbers' boundaries are 4× closer to
    /// the truth than through the wildcard.
    static func spokenNumber(_ word: String, ids: [String: Int]) -> [[Int]]? {
        let core = word.trimmingCharacters(in: .punctuationCharacters)
        guard (1...9).contains(core.count), core.unicodeScalars.allSatisfy({ ("0"..."9").contains($0) }),
              ids["1"] == nil, let n = Int(core) else { return nil }
        var spoken: [[Int]] = []
        for spokenWord in englishWords(n) {
            var tokens: [Int] = []
            for scalar in spokenWord.unicodeScalars {
                guard let id = token(String(scalar), ids) else { return nil }
                tokens.append(id)
            }
            spoken.append(tokens)
        }
        return spoken
    }

    /// The vocabulary id of one character, its letter case folded to the vocabulary's.
    static func token(_ s: String, _ ids: [String: Int]) -> Int? { ids[s] ?? ids[s.uppercased()] ?? ids[s.lowercased()] }

    /// An alignment pass that would hold more than this (``CTCViterbi/memory(frames:tokens:)``) is refused with a
    /// clear error rather than exhausting memory (4 GiB; an hour of audio with 50,000 characters of transcript
    /// takes about 0.2 GB).
    public static let maxTableBytes = 4 << 30

    /// Below this mean probability of its tokens a word is flagged (``AlignedWord/confident`` false). Chosen by
    /// measurement (`benchmarks/align.py`, the README's table): words added to a transcript that are not spoken score
    /// a median of ~0.1 with the built-in model, spoken words ~0.7.
    public static let confidenceThreshold = 0.2

    /// Spells `words` in `vocabulary`'s tokens.
    static func spell(_ words: [String], vocabulary: Vocabulary) -> [Piece] {
        var ids: [String: Int] = [:]
        for id in 0..<vocabulary.count where id != vocabulary.blankID {
            let token = vocabulary.token(id)
            if token != vocabulary.unknownToken && ids[token] == nil { ids[token] = id }
        }
        let wildcard = vocabulary.count
        let delimiter = ids[vocabulary.wordDelimiter]
        var pieces: [Piece] = []
        for (index, word) in words.enumerated() {
            if let delimiter, let spoken = spokenNumber(word, ids: ids) {
                // Each letter of the spoken words, the word delimiter between them; one character of output.
                var numberPieces: [Piece] = []
                for (w, tokens) in spoken.enumerated() {
                    if w > 0 { numberPieces.append(Piece(token: delimiter, word: index, text: "", number: index)) }
                    numberPieces += tokens.map { Piece(token: $0, word: index, text: "", number: index) }
                }
                numberPieces[0] = Piece(token: numberPieces[0].token, word: index,
                                        text: word.trimmingCharacters(in: .punctuationCharacters), number: index)
                if !pieces.isEmpty { pieces.append(Piece(token: delimiter, word: -1, text: " ")) }
                pieces += numberPieces
                continue
            }
            var wordPieces: [Piece] = []
            for scalar in word.unicodeScalars {
                let s = String(scalar)
                if let id = token(s, ids) {
                    wordPieces.append(Piece(token: id, word: index, text: s))
                } else if CharacterSet.alphanumerics.contains(scalar) || CharacterSet.symbols.contains(scalar) {
                    // A spoken character the vocabulary lacks: one wildcard for the whole run of them.
                    if let last = wordPieces.last, last.token == wildcard {
                        wordPieces[wordPieces.count - 1] = Piece(token: wildcard, word: index, text: last.text + s)
                    } else {
                        wordPieces.append(Piece(token: wildcard, word: index, text: s))
                    }
                } else if let last = wordPieces.last, CharacterSet.nonBaseCharacters.contains(scalar) {
                    // A combining mark belongs to the character before it.
                    wordPieces[wordPieces.count - 1] = Piece(token: last.token, word: index, text: last.text + s)
                }
                // Punctuation the vocabulary lacks is not spoken: not aligned (it stays in the word's text).
            }
            if wordPieces.isEmpty { continue }
            if let delimiter, !pieces.isEmpty { pieces.append(Piece(token: delimiter, word: -1, text: " ")) }
            pieces += wordPieces
        }
        return pieces
    }

    /// Aligns `transcript` to `emissions` (logits of `vocabulary`), for audio of `duration` seconds.
    public static func align(
        transcript: String, emissions: Emissions, vocabulary: Vocabulary, duration: Double
    ) throws -> ForcedAlignment {
        try align(transcript: transcript, emissions: emissions, vocabulary: vocabulary, duration: duration, levels: nil)
    }

    /// `align(transcript:emissions:vocabulary:duration:)`, with word ends moved by the audio's level (dB per frame)
    /// when `levels` is given (``WordEndPlacement/acoustic``).
    static func align(
        transcript: String, emissions: Emissions, vocabulary: Vocabulary, duration: Double, levels: [Float]?
    ) throws -> ForcedAlignment {
        let words = transcript.split(whereSeparator: \.isWhitespace).map(String.init)
        let pieces = spell(words, vocabulary: vocabulary)
        let T = emissions.frames, C = emissions.vocabularySize
        let bytes = CTCViterbi.memory(frames: T, tokens: pieces.count)
        if bytes > maxTableBytes {
            throw ASRError.alignmentTooLarge(seconds: duration, tokens: pieces.count, bytes: bytes)
        }
        // Log-softmax, then the wildcard's column: log(1 − p(blank)) = log Σ_{non-blank} p.
        let logProbs = CTCViterbi.logSoftmax(emissions.logits, frames: T, classes: C)
        let classes = C + 1
        var augmented = [Float](repeating: 0, count: T * classes)
        for t in 0..<T {
            for c in 0..<C { augmented[t * classes + c] = logProbs[t * C + c] }
            let blank = Double(logProbs[t * C + vocabulary.blankID])
            augmented[t * classes + C] = Float(Foundation.log(max(1e-30, -Foundation.expm1(blank))))
        }
        let path: [Int]
        do {
            path = try CTCViterbi.states(logProbabilities: augmented, frames: T, classes: classes,
                                         targets: pieces.map(\.token), blank: vocabulary.blankID)
        } catch ASRError.transcriptTooLong(let frames, let tokens, let repeats, _) {
            throw ASRError.transcriptTooLong(frames: frames, tokens: tokens, repeats: repeats, frameDuration: emissions.frameDuration)
        }
        // Frames of each piece, and its mean probability over them.
        var first = [Int](repeating: -1, count: pieces.count), last = [Int](repeating: -1, count: pieces.count)
        var probability = [Double](repeating: 0, count: pieces.count)
        for (t, k) in path.enumerated() where k >= 0 {
            if first[k] < 0 { first[k] = t }
            last[k] = t
            probability[k] += Foundation.exp(Double(augmented[t * classes + pieces[k].token]))
        }
        // Confidence is over the path's own frames, whatever the ends become.
        let pathFrames = (0..<pieces.count).map { last[$0] - first[$0] + 1 }
        if let levels {
            extendWordEnds(pieces: pieces, first: first, last: &last, levels: levels, frameDuration: emissions.frameDuration)
        }
        let stride = emissions.frameDuration
        func time(_ frame: Int) -> Double { min(duration, Double(frame) * stride) }
        var characters: [TimedCharacter] = []
        var spans = [(start: Double, end: Double, probability: Double, frames: Int, spelled: Bool)?](repeating: nil, count: words.count)
        var numberCharacter: (index: Int, probability: Double, frames: Int)?
        var wordEnd = 0.0
        for (k, piece) in pieces.enumerated() {
            let frames = pathFrames[k]
            var start = time(first[k]), end = time(last[k] + 1)
            if piece.word < 0 {
                // A word delimiter starts where the word before it ends (later than on the path when that end moved).
                start = max(start, wordEnd)
                end = max(end, start)
            } else {
                wordEnd = end
            }
            if let number = piece.number, let current = numberCharacter, pieces[k - 1].number == number {
                // The rest of a spelled-out number: its one character grows to cover it.
                let c = characters[current.index]
                numberCharacter = (current.index, current.probability + probability[k], current.frames + frames)
                characters[current.index] = TimedCharacter(text: c.text, start: c.start, end: end,
                                                           confidence: (current.probability + probability[k]) / Double(current.frames + frames))
            } else {
                characters.append(TimedCharacter(text: piece.text, start: start, end: end, confidence: probability[k] / Double(frames)))
                numberCharacter = piece.number == nil ? nil : (characters.count - 1, probability[k], frames)
            }
            guard piece.word >= 0 else { continue }
            let spelled = piece.token != vocabulary.count
            if let span = spans[piece.word] {
                spans[piece.word] = (span.start, end, span.probability + probability[k], span.frames + frames, span.spelled || spelled)
            } else {
                spans[piece.word] = (start, end, probability[k], frames, spelled)
            }
        }
        // A word with nothing to align (all punctuation) sits at the end of the word before it, at zero length.
        var aligned: [AlignedWord] = []
        var boundary = 0.0
        for (index, word) in words.enumerated() {
            if let span = spans[index] {
                aligned.append(AlignedWord(text: word, start: span.start, end: span.end,
                                           confidence: span.probability / Double(span.frames), aligned: span.spelled))
                boundary = span.end
            } else {
                aligned.append(AlignedWord(text: word, start: boundary, end: boundary, confidence: 0, aligned: false))
            }
        }
        return ForcedAlignment(text: transcript, duration: duration, words: aligned, characters: characters)
    }
}

extension Transcriber {
    /// Aligns a known `transcript` to mono samples at the model's rate: the emissions are computed as
    /// `transcribe` computes them (chunked the same way), then ``ForcedAligner`` places every word; `wordEnds`
    /// says where words end (the exact Viterbi path's ends by default).
    ///
    /// - Throws: ``ASRError/transcriptTooLong(frames:tokens:repeats:frameDuration:)`` when the transcript cannot fit
    ///   the audio; ``ASRError/alignmentTooLarge(seconds:tokens:bytes:)`` when one pass would need more than
    ///   ``ForcedAligner/maxTableBytes``.
    public func align(_ samples: [Float], transcript: String, chunking: ChunkingOptions = .default,
                      wordEnds: WordEndPlacement = .viterbi) throws -> ForcedAlignment {
        var consumed = false
        let result = try emissions(chunking: chunking) { () -> [Float]? in
            defer { consumed = true }
            return consumed ? nil : samples
        }
        let duration = Double(samples.count) / Double(sampleRate)
        var levels = audioLevels(for: wordEnds)
        levels?.add(samples)
        return try ForcedAligner.align(transcript: transcript, emissions: result.emissions, vocabulary: vocabulary,
                                       duration: duration, levels: levels?.decibels())
    }

    /// Aligns a known `transcript` to an audio file of any supported format, rate and channel count, streamed
    /// through the model in chunks; `progress` is called after each chunk. `name` is how errors name the file (its
    /// path when nil); `wordEnds` says where words end (the exact Viterbi path's ends by default).
    public func align(
        file: URL, name: String? = nil, transcript: String, chunking: ChunkingOptions = .default,
        wordEnds: WordEndPlacement = .viterbi, progress: ((TranscriptionProgress) -> Void)? = nil
    ) throws -> ForcedAlignment {
        try align(file: file, name: name, transcript: transcript, chunking: chunking, maxSeconds: nil,
                  wordEnds: wordEnds, progress: progress)
    }

    /// `align(file:...)` stopping with `AudioTooLong` past `maxSeconds` of audio (a server's limit), and calling
    /// `checkCancellation` after each chunk.
    package func align(
        file: URL, name: String? = nil, transcript: String, chunking: ChunkingOptions, maxSeconds: Double?,
        wordEnds: WordEndPlacement = .viterbi, progress: ((TranscriptionProgress) -> Void)? = nil,
        checkCancellation: () throws -> Void = {}
    ) throws -> ForcedAlignment {
        var levels = audioLevels(for: wordEnds)
        let (emissions, duration) = try streamedEmissions(
            file: file, name: name, chunking: chunking, maxSeconds: maxSeconds, progress: progress,
            checkCancellation: checkCancellation, onSamples: { levels?.add($0) })
        return try ForcedAligner.align(transcript: transcript, emissions: emissions, vocabulary: vocabulary,
                                       duration: duration, levels: levels?.decibels())
    }

    /// The frame levels `wordEnds` needs, to be filled with the audio: none for the Viterbi's ends.
    private func audioLevels(for wordEnds: WordEndPlacement) -> AudioLevels? {
        wordEnds == .acoustic ? AudioLevels(samplesPerFrame: configuration.samplesPerFrame) : nil
    }
}
