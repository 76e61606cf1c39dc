import Foundation

/// A word or phrase to favour during beam search, with its weight (added to a hypothesis's score, in natural-log
/// units, for each occurrence; partial words on the way to it get a share proportional to their length).
public struct Hotword: Sendable, Equatable {
    /// The word or phrase, as the decoded text spells it.
    public var text: String
    /// Score added per occurrence, in natural-log units.
    public var weight: Double

    /// The weight a hotword gets unless one is given: 10.
    public static let defaultWeight = 10.0

    /// A hotword `text` with `weight` (natural-log units per occurrence).
    public init(_ text: String, weight: Double = Hotword.defaultWeight) {
        self.text = text
        self.weight = weight
    }

    /// Parses "word", "some phrase" or "word:weight" (the last colon separates the weight, which must be a number).
    public init(parsing spec: String) throws {
        if let colon = spec.lastIndex(of: ":") {
            let weightText = spec[spec.index(after: colon)...]
            guard let weight = Double(weightText) else {
                throw ASRError.invalidHotword(
                    hotword: spec, reason: "the weight after ':' must be a number, not '\(weightText)' (word:weight, e.g. Kubernetes:8)")
            }
            guard weight.isFinite else {
                throw ASRError.invalidHotword(hotword: spec, reason: "the weight must be a finite number")
            }
            self.init(String(spec[..<colon]), weight: weight)
        } else {
            self.init(spec)
        }
        guard !text.split(whereSeparator: \.isWhitespace).isEmpty else {
            throw ASRError.invalidHotword(hotword: spec, reason: "it has no word in it")
        }
    }
}

/// The kept hypotheses of every frame of a beam search, one line each ("T<frame>\twords|partial|last\tscore"), to
/// compare frame by frame with another decoder (how the pyctcdecode differences were traced). Equal only to itself.
package final class BeamTrace: Sendable, Equatable {
    let write: @Sendable (String) -> Void
    package init(_ write: @escaping @Sendable (String) -> Void) { self.write = write }
    package static func == (a: BeamTrace, b: BeamTrace) -> Bool { a === b }
}

/// Knobs of the CTC prefix beam search. The defaults are pyctcdecode's (which transformers'
/// `Wav2Vec2ProcessorWithLM` uses), except the beam width: 32 keeps decoding well under a tenth of the model's time.
public struct BeamSearchOptions: Sendable, Equatable {
    /// Hypotheses kept after each frame.
    public var beamWidth: Int = 32
    /// Language model weight α: the LM's natural-log probability of each word is multiplied by it.
    public var alpha: Double = 0.5
    /// Word insertion bonus β, added per word the LM scores.
    public var beta: Double = 1.5
    /// Added (in log10 units, before α) to a word the LM does not know; partial words that cannot become a known
    /// word get it as it is, in natural-log units and without α, as pyctcdecode does (scaled up for partial words
    /// longer than six characters).
    public var unknownWordPenalty: Double = -10
    /// Hypotheses scoring below the best by more than this (natural log) are dropped.
    public var beamPruneThreshold: Double = -10
    /// Tokens whose log probability at a frame is below this are not tried there (the frame's best always is).
    public var tokenMinLogProbability: Double = -5
    /// Score the first word after `<s>` and add `</s>` at the end, as the LM's sentences have them.
    public var scoreBoundary: Bool = true
    /// Words or phrases to favour; none by default.
    public var hotwords: [Hotword] = []
    /// Receives the kept hypotheses of every frame, for debugging (the CLI sets it from ASR_BEAM_TRACE; the library
    /// reads no environment variables).
    package var trace: BeamTrace? = nil

    /// The default options.
    public init() {}

    func validate() throws {
        func bad(_ what: String) -> ASRError { .invalidLanguageModel(file: "beam search options", reason: what) }
        guard beamWidth >= 1, beamWidth <= 100_000 else { throw bad("beam width \(beamWidth) is not in 1...100000") }
        for (name, value) in [("alpha", alpha), ("beta", beta), ("unknown-word penalty", unknownWordPenalty),
                              ("beam prune threshold", beamPruneThreshold),
                              ("token minimum log probability", tokenMinLogProbability)] where !value.isFinite {
            throw bad("\(name) must be a finite number")
        }
        for hotword in hotwords where !hotword.weight.isFinite { throw bad("hotword '\(hotword.text)' has a non-finite weight") }
        guard beamPruneThreshold <= 0 else { throw bad("the beam prune threshold must be ≤ 0 (it is a log-probability margin)") }
        guard tokenMinLogProbability <= 0 else { throw bad("the token minimum log probability must be ≤ 0") }
    }
}

/// A language model ready for decoding: the n-gram model plus the set of words partial hypotheses are checked
/// against (pyctcdecode's "unigrams": by default every word of the model).
public final class DecodingLanguageModel: Sendable {
    /// The n-gram model that scores words.
    public let model: NGramLanguageModel
    /// Known words, sorted by their UTF-8 bytes, for prefix tests of partial words.
    let lexicon: SortedWords

    /// `unigrams` restricts the known words (e.g. pyctcdecode's `unigrams.txt`); words the model lacks are dropped.
    public init(model: NGramLanguageModel, unigrams: [String]? = nil) {
        self.model = model
        var words: [String] = []
        if let unigrams {
            words = unigrams.filter { model.wordID($0) != nil }
        } else {
            words.reserveCapacity(model.vocabularySize)
            for id in 0..<Int32(model.vocabularySize) { words.append(model.word(id)) }
        }
        words.removeAll { $0 == "<s>" || $0 == "</s>" || $0 == "<unk>" }
        lexicon = SortedWords(words)
    }

    /// Reads an ARPA file (plain or gzip), or a directory laid out as pyctcdecode saves one (`language_model/`:
    /// an `.arpa`/`.arpa.gz` file, optionally `unigrams.txt` and `attrs.json`). Returns the options the directory's
    /// `attrs.json` sets (alpha, beta, unk_score_offset, score_boundary) applied over `options`.
    public static func load(path: String, options: BeamSearchOptions = BeamSearchOptions()) throws
        -> (model: DecodingLanguageModel, options: BeamSearchOptions) {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ASRError.invalidLanguageModel(file: path, reason: "no such file or directory")
        }
        guard isDirectory.boolValue else {
            return (DecodingLanguageModel(model: try NGramLanguageModel(arpa: path)), options)
        }
        let directory = URL(fileURLWithPath: path)
        let names = (try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []
        let arpas = names.filter { $0.hasSuffix(".arpa") || $0.hasSuffix(".arpa.gz") }.sorted()
        guard arpas.count == 1 else {
            if names.contains(where: { $0.hasSuffix(".bin") || $0.hasSuffix(".binary") }) && arpas.isEmpty {
                throw ASRError.invalidLanguageModel(
                    file: path, reason: "holds a KenLM binary model, which this engine cannot read; convert or supply the ARPA file (KenLM's lmplz writes one; `asr lm build` too)")
            }
            throw ASRError.invalidLanguageModel(
                file: path, reason: arpas.isEmpty ? "no .arpa or .arpa.gz file in the directory" : "several ARPA files: \(arpas.joined(separator: ", "))")
        }
        let model = try NGramLanguageModel(arpa: directory.appendingPathComponent(arpas[0]).path)
        var unigrams: [String]?
        let unigramsFile = directory.appendingPathComponent("unigrams.txt")
        if FileManager.default.fileExists(atPath: unigramsFile.path) {
            guard let text = try? String(contentsOf: unigramsFile, encoding: .utf8) else {
                throw ASRError.invalidLanguageModel(file: unigramsFile.path, reason: "not readable as UTF-8 text")
            }
            unigrams = text.split(whereSeparator: \.isNewline).map(String.init).filter { !$0.isEmpty }
            if unigrams!.isEmpty { unigrams = nil }
        }
        var options = options
        let attrsFile = directory.appendingPathComponent("attrs.json")
        if FileManager.default.fileExists(atPath: attrsFile.path) {
            guard let data = try? Data(contentsOf: attrsFile) else {
                throw ASRError.invalidLanguageModel(file: attrsFile.path, reason: "cannot be read")
            }
            let json: JSONValue
            do { json = try JSONValue.parse(data) } catch {
                throw ASRError.invalidLanguageModel(file: attrsFile.path, reason: "malformed JSON: \(error)")
            }
            guard let members = json.objectMembers else {
                throw ASRError.invalidLanguageModel(file: attrsFile.path, reason: "expected a JSON object")
            }
            for (key, value) in members {
                switch key {
                case "alpha", "beta", "unk_score_offset":
                    guard let number = value.doubleValue, number.isFinite else {
                        throw ASRError.invalidLanguageModel(file: attrsFile.path, reason: "'\(key)' must be a number")
                    }
                    if key == "alpha" { options.alpha = number }
                    if key == "beta" { options.beta = number }
                    if key == "unk_score_offset" { options.unknownWordPenalty = number }
                case "score_boundary":
                    guard case .bool(let flag) = value else {
                        throw ASRError.invalidLanguageModel(file: attrsFile.path, reason: "'score_boundary' must be true or false")
                    }
                    options.scoreBoundary = flag
                default:
                    break
                }
            }
        }
        return (DecodingLanguageModel(model: model, unigrams: unigrams), options)
    }

    /// Fraction of the known words that `vocabulary` can spell (a low value usually means a case mismatch: the
    /// LM was built from lower-case text for an upper-case model).
    public func spellableFraction(by vocabulary: Vocabulary) -> Double {
        let alphabet = BeamSearchDecoder.Alphabet(vocabulary: vocabulary)
        var spellable = 0
        for i in 0..<lexicon.count where alphabet.canSpell(lexicon.string(i)) { spellable += 1 }
        return lexicon.count == 0 ? 1 : Double(spellable) / Double(lexicon.count)
    }
}

/// Byte strings sorted in byte order, for narrowing a prefix range one token at a time.
struct SortedWords: Sendable {
    private let bytes: [UInt8]
    private let offsets: [Int]     // per sorted position: start; offsets[i+1]: end
    private let payload: [Int]     // per sorted position: the index the caller gave

    var count: Int { payload.count }

    init(_ words: [String], payload given: [Int]? = nil) {
        let order = words.indices.sorted { Array(words[$0].utf8).lexicographicallyPrecedes(Array(words[$1].utf8)) }
        var bytes: [UInt8] = []
        var offsets = [0]
        var kept: [Int] = []
        var previous: String?
        // Byte equality: String's == treats canonically equivalent spellings (é vs e + ◌́) as equal.
        for i in order where !(previous.map { words[i].utf8.elementsEqual($0.utf8) } ?? false) {
            bytes += words[i].utf8
            offsets.append(bytes.count)
            kept.append(given?[i] ?? i)
            previous = words[i]
        }
        self.bytes = bytes
        self.offsets = offsets
        self.payload = kept
    }

    func length(_ i: Int) -> Int { offsets[i + 1] - offsets[i] }
    func payload(_ i: Int) -> Int { payload[i] }
    func string(_ i: Int) -> String { String(decoding: bytes[offsets[i]..<offsets[i + 1]], as: UTF8.self) }

    /// Compares word i's bytes [at, at + token.count) with `token`; a word that ends early sorts first.
    private func compare(_ i: Int, at: Int, _ token: [UInt8]) -> Int {
        let start = offsets[i] + at, end = offsets[i + 1]
        for k in 0..<token.count {
            if start + k >= end { return -1 }
            let a = bytes[start + k], b = token[k]
            if a != b { return a < b ? -1 : 1 }
        }
        return 0
    }

    /// Within `range`, whose words share their first `at` bytes, the words continuing with `token`.
    func narrow(_ range: Range<Int>, at: Int, by token: [UInt8]) -> Range<Int> {
        var lo = range.lowerBound, hi = range.upperBound
        while lo < hi {
            let mid = (lo + hi) / 2
            if compare(mid, at: at, token) < 0 { lo = mid + 1 } else { hi = mid }
        }
        let first = lo
        hi = range.upperBound
        while lo < hi {
            let mid = (lo + hi) / 2
            if compare(mid, at: at, token) <= 0 { lo = mid + 1 } else { hi = mid }
        }
        return first..<lo
    }
}

/// CTC prefix beam search with an optional word n-gram LM and hotwords, lexicon-free, following pyctcdecode's
/// algorithm (so that its results can be reproduced):
///
/// - a hypothesis is (finished words, the partial word, the last token); extending by the blank or by a repeat of
///   the last token keeps the text, a word delimiter finishes the partial word, another token extends it;
///   hypotheses that reach the same state add their probabilities;
/// - after each frame every hypothesis is scored as its acoustic log probability plus, per finished word,
///   α·ln p_LM(word | history) + β (plus the unknown-word penalty for words the LM lacks), plus the hotword bonus,
///   plus a penalty for a partial word that is not the beginning of any known word; hypotheses far below the best
///   are pruned and the best `beamWidth` kept;
/// - at the end the partial word is finished and `</s>` scored.
///
/// One deliberate difference: pyctcdecode scores an empty "word" (so an unknown-word penalty) at the end of a
/// hypothesis whose last token is the word delimiter; here a trailing delimiter adds no word.
///
/// Timestamps come from the best hypothesis's own alignment (each character's first and last frame).
public final class BeamSearchDecoder: CTCDecoder {
    /// The CTC vocabulary the logits index.
    public let vocabulary: Vocabulary
    /// The language model that scores words, or nil to search on the acoustic model (and hotwords) alone.
    public let languageModel: DecodingLanguageModel?
    /// Beam width, pruning, LM weights and hotwords.
    public let options: BeamSearchOptions
    let alphabet: Alphabet
    let hotwords: SortedWords
    let hotwordWeights: [Double]
    let hotwordLengths: [Int]

    /// A decoder for `vocabulary`. Throws when `options` are out of range or the vocabulary's blank is not one of
    /// its tokens.
    public init(vocabulary: Vocabulary, languageModel: DecodingLanguageModel?, options: BeamSearchOptions = BeamSearchOptions()) throws {
        try options.validate()
        guard vocabulary.blankID >= 0, vocabulary.blankID < vocabulary.count else {
            throw ASRError.invalidVocabulary(file: "vocabulary", reason: "blank id \(vocabulary.blankID) is outside 0..<\(vocabulary.count)")
        }
        self.vocabulary = vocabulary
        self.languageModel = languageModel
        self.options = options
        alphabet = Alphabet(vocabulary: vocabulary)
        // Hotword phrases are boosted word by word (as pyctcdecode); spelled in the model's alphabet.
        var words: [String] = []
        var weights: [Double] = []
        for hotword in options.hotwords {
            for piece in hotword.text.split(whereSeparator: \.isWhitespace) {
                guard let spelled = alphabet.respell(String(piece)) else {
                    let missing = alphabet.unwritable(String(piece)).map { "'\($0)'" }.joined(separator: ", ")
                    throw ASRError.invalidHotword(
                        hotword: hotword.text,
                        reason: "the model cannot write \(missing) (its characters: \(alphabet.displayLetters))")
                }
                if let existing = words.firstIndex(where: { $0.utf8.elementsEqual(spelled.utf8) }) {
                    weights[existing] = max(weights[existing], hotword.weight)
                } else {
                    words.append(spelled)
                    weights.append(hotword.weight)
                }
            }
        }
        let sorted = SortedWords(words)
        hotwords = sorted
        hotwordWeights = (0..<sorted.count).map { weights[sorted.payload($0)] }
        hotwordLengths = (0..<sorted.count).map { sorted.string($0).unicodeScalars.count }
    }

    /// What each token id does in the search.
    struct Alphabet: Sendable {
        enum Kind: Sendable, Equatable { case blank, delimiter, text }
        let kinds: [Kind]
        let bytes: [[UInt8]]
        let characterCounts: [Int]
        let letters: Set<String>

        init(vocabulary: Vocabulary) {
            var kinds: [Kind] = [], bytes: [[UInt8]] = [], counts: [Int] = []
            var letters: Set<String> = []
            for id in 0..<vocabulary.count {
                let token = vocabulary.token(id)
                if id == vocabulary.blankID {
                    kinds.append(.blank); bytes.append([]); counts.append(0)
                } else if token == vocabulary.wordDelimiter {
                    kinds.append(.delimiter); bytes.append([]); counts.append(0)
                } else {
                    // pyctcdecode writes the unknown token as "⁇".
                    let text = token == vocabulary.unknownToken ? "⁇" : token
                    kinds.append(.text); bytes.append(Array(text.utf8)); counts.append(text.unicodeScalars.count)
                    if text.unicodeScalars.count == 1 { letters.insert(text) }
                }
            }
            self.kinds = kinds
            self.bytes = bytes
            characterCounts = counts
            self.letters = letters
        }

        /// Spelling is checked per Unicode scalar (so a vowel sign or combining accent that is its own token counts).
        func canSpell(_ word: String) -> Bool { word.unicodeScalars.allSatisfy { letters.contains(String($0)) } }

        /// The characters of `word` that no letter case of the alphabet has, each once, in order.
        func unwritable(_ word: String) -> [String] {
            var seen = Set<String>()
            return word.unicodeScalars.map(String.init).filter { s in
                !letters.contains(s) && !letters.contains(s.uppercased()) && !letters.contains(s.lowercased()) && seen.insert(s).inserted
            }
        }

        /// The alphabet for messages: letters and digits first, then the rest, space-separated.
        var displayLetters: String {
            letters.sorted { a, b in
                let la = a.unicodeScalars.first.map { CharacterSet.alphanumerics.contains($0) } ?? false
                let lb = b.unicodeScalars.first.map { CharacterSet.alphanumerics.contains($0) } ?? false
                return la != lb ? la : a < b
            }.joined(separator: " ")
        }

        /// `word` in the model's letter case when only that case is in the alphabet; nil if unspellable.
        func respell(_ word: String) -> String? {
            var out = ""
            for scalar in word.unicodeScalars {
                let s = String(scalar)
                if letters.contains(s) { out += s }
                else if letters.contains(s.uppercased()) { out += s.uppercased() }
                else if letters.contains(s.lowercased()) { out += s.lowercased() }
                else { return nil }
            }
            return out
        }
    }

    /// Beam-searches `emissions`.
    public func decode(_ emissions: Emissions) -> CTCDecoding {
        decode(logits: emissions.logits, frames: emissions.frames)
    }

    /// Beam-searches row-major `logits` of `frames` rows, one column per vocabulary token.
    public func decode(logits: [Float], frames: Int) -> CTCDecoding {
        var search = BeamSearch(decoder: self)
        return search.run(logits: logits, frames: frames)
    }
}

/// The state of one decoding run.
struct BeamSearch {
    let decoder: BeamSearchDecoder
    let options: BeamSearchOptions
    let alphabet: BeamSearchDecoder.Alphabet
    let lm: DecodingLanguageModel?
    let vocabularySize: Int
    let blank: Int32
    let contextLength: Int
    let lmScale: Double

    // Finished-word sequences: a tree of text nodes.
    var textParent: [Int32] = [-1]
    var textWord: [Int32] = [0]                 // LM word id (≥ 0) or -(OOV index + 1)
    var textContext: [Int32]                     // contextLength ids per node, oldest first; -1 = none
    var textScore: [Double] = [0]                // Σ per word: α·ln p + β (+ unknown penalty), plus hotword bonus
    var textEndScore: [Double] = [.nan]          // α·ln p(</s> | context), computed when needed
    var textChildren: [UInt64: Int32] = [:]
    var oovWords = WordTable()

    // Partial words: a trie over tokens.
    var partialParent: [Int32] = [-1]
    var partialToken: [Int32] = [-1]
    var partialLexicon: [Range<Int>]             // matching known words
    var partialHotwords: [Range<Int>]            // matching hotwords
    var partialBytes: [Int32] = [0]
    var partialCharacters: [Int32] = [0]
    var partialScore: [Double] = [0]
    var partialWordKey: [Int32] = [Int32.min]
    var partialChildren: [UInt64: Int32] = [:]

    // Alignment history: one node per emitted token (delimiters included).
    var historyParent: [Int32] = []
    var historyToken: [Int32] = []
    var historyStart: [Int32] = []
    var historyParentEnd: [Int32] = []

    /// What makes two hypotheses the same state (their probabilities are then added).
    struct StateKey: Hashable {
        let text: Int32, partial: Int32, last: Int32
    }

    /// log(eᵃ + eᵇ) without overflow.
    func logAddExp(_ a: Double, _ b: Double) -> Double {
        a >= b ? a + log1p(Foundation.exp(b - a)) : b + log1p(Foundation.exp(a - b))
    }

    struct Beam {
        var text: Int32
        var partial: Int32
        var last: Int32          // last token; -1 before the first frame
        var logit: Double        // acoustic log probability (summed over merged alignments)
        var history: Int32       // last history node, -1 if none
        var historyEnd: Int32    // end frame (exclusive) of the last emitted token
        var pendingToken: Int32 = -1   // a token started at this frame, materialised into history if kept
        var score: Double = 0
    }

    init(decoder: BeamSearchDecoder) {
        self.decoder = decoder
        options = decoder.options
        alphabet = decoder.alphabet
        lm = decoder.languageModel
        vocabularySize = decoder.vocabulary.count
        blank = Int32(decoder.vocabulary.blankID)
        contextLength = max(1, (lm?.model.order ?? 1) - 1)
        lmScale = options.alpha * M_LN10
        var context = [Int32](repeating: -1, count: contextLength)
        if options.scoreBoundary, let begin = lm?.model.beginID { context[contextLength - 1] = begin }
        textContext = context
        partialLexicon = [0..<(lm?.lexicon.count ?? 0)]
        partialHotwords = [0..<decoder.hotwords.count]
    }

    // MARK: Words

    mutating func partialChild(_ parent: Int32, _ token: Int32) -> Int32 {
        let key = UInt64(UInt32(bitPattern: parent)) << 32 | UInt64(UInt32(bitPattern: token))
        if let node = partialChildren[key] { return node }
        let node = Int32(partialParent.count)
        let at = Int(partialBytes[Int(parent)])
        let tokenBytes = alphabet.bytes[Int(token)]
        partialParent.append(parent)
        partialToken.append(token)
        let lexicon = partialLexicon[Int(parent)]
        partialLexicon.append(lexicon.isEmpty ? lexicon : lm!.lexicon.narrow(lexicon, at: at, by: tokenBytes))
        let hot = partialHotwords[Int(parent)]
        partialHotwords.append(hot.isEmpty ? hot : decoder.hotwords.narrow(hot, at: at, by: tokenBytes))
        partialBytes.append(Int32(at + tokenBytes.count))
        let characters = Int(partialCharacters[Int(parent)]) + alphabet.characterCounts[Int(token)]
        partialCharacters.append(Int32(characters))
        partialWordKey.append(Int32.min)
        partialScore.append(scorePartial(node: Int(node), characters: characters))
        partialChildren[key] = node
        return node
    }

    /// pyctcdecode's partial-word score: a hotword prefix earns its share of the hotword weight; otherwise, with
    /// an LM, a prefix of no known word costs the unknown-word penalty (longer than 6 characters: proportionally more).
    func scorePartial(node: Int, characters: Int) -> Double {
        let hot = partialHotwords[node]
        if !hot.isEmpty {
            var shortest = hot.lowerBound
            for i in hot where decoder.hotwordLengths[i] < decoder.hotwordLengths[shortest] { shortest = i }
            return decoder.hotwordWeights[shortest] * Double(characters) / Double(max(1, decoder.hotwordLengths[shortest]))
        }
        guard lm != nil else { return 0 }
        guard partialLexicon[node].isEmpty else { return 0 }
        var penalty = options.unknownWordPenalty
        if characters > 6 { penalty *= Double(characters) / 6 }
        return penalty
    }

    /// The spelling of a partial word.
    func spelling(_ node: Int32) -> [UInt8] {
        var tokens: [Int32] = []
        var n = node
        while n > 0 { tokens.append(partialToken[Int(n)]); n = partialParent[Int(n)] }
        var bytes: [UInt8] = []
        for t in tokens.reversed() { bytes += alphabet.bytes[Int(t)] }
        return bytes
    }

    /// Word key of a finished partial word: its LM id when the LM knows it, else a negative OOV index.
    mutating func wordKey(_ node: Int32) -> Int32 {
        if partialWordKey[Int(node)] != Int32.min { return partialWordKey[Int(node)] }
        var key: Int32 = -1
        let range = partialLexicon[Int(node)]
        // The exact word, when known, sorts first among the words it begins.
        if let lm, !range.isEmpty, lm.lexicon.length(range.lowerBound) == Int(partialBytes[Int(node)]),
           let id = lm.model.wordID(lm.lexicon.string(range.lowerBound)) {
            key = id
        }
        if key < 0 {
            let bytes = spelling(node)
            let id = bytes.withUnsafeBufferPointer { oovWords.add($0).id }
            key = -(id + 1)
        }
        partialWordKey[Int(node)] = key
        return key
    }

    func hotwordBonus(partial node: Int32) -> Double {
        let hot = partialHotwords[Int(node)]
        guard !hot.isEmpty, decoder.hotwords.length(hot.lowerBound) == Int(partialBytes[Int(node)]) else { return 0 }
        return decoder.hotwordWeights[hot.lowerBound]
    }

    mutating func textChild(_ parent: Int32, finishing partial: Int32) -> Int32 {
        let word = wordKey(partial)
        let key = UInt64(UInt32(bitPattern: parent)) << 32 | UInt64(UInt32(bitPattern: word))
        if let node = textChildren[key] { return node }
        let node = Int32(textParent.count)
        textParent.append(parent)
        textWord.append(word)
        let base = Int(parent) * contextLength
        var score = textScore[Int(parent)] + hotwordBonus(partial: partial)
        var newContext = Array(textContext[(base + 1)..<(base + contextLength)])
        if let lm {
            let id = word >= 0 ? word : lm.model.unknownID
            let context = Array(textContext[base..<(base + contextLength)].drop { $0 < 0 })
            var log10p = Double(lm.model.log10Probability(of: id, after: context))
            if word < 0 { log10p += options.unknownWordPenalty }
            score += lmScale * log10p + options.beta
            newContext.append(id)
        } else {
            newContext.append(-1)
        }
        textContext += newContext
        textScore.append(score)
        textEndScore.append(.nan)
        textChildren[key] = node
        return node
    }

    mutating func endScore(_ node: Int32) -> Double {
        guard let lm, options.scoreBoundary, let end = lm.model.endID else { return 0 }
        if textEndScore[Int(node)].isNaN {
            let base = Int(node) * contextLength
            let context = Array(textContext[base..<(base + contextLength)].drop { $0 < 0 })
            textEndScore[Int(node)] = lmScale * Double(lm.model.log10Probability(of: end, after: context))
        }
        return textEndScore[Int(node)]
    }

    // MARK: Search


    mutating func run(logits: [Float], frames: Int) -> CTCDecoding {
        precondition(logits.count == frames * vocabularySize)
        var beams = [Beam(text: 0, partial: 0, last: -1, logit: 0, history: -1, historyEnd: 0)]
        var candidates: [Beam] = []
        var merged: [StateKey: Int] = [:]
        var logProbabilities = [Double](repeating: 0, count: vocabularySize)
        var tokens: [Int32] = []
        let floor = log(1e-15)

        for t in 0..<frames {
            // Log-softmax of the frame, clipped as pyctcdecode clips it.
            logits.withUnsafeBufferPointer { l in
                let row = l.baseAddress! + t * vocabularySize
                var maxValue = -Double.infinity
                var best = 0
                for v in 0..<vocabularySize where Double(row[v]) > maxValue { maxValue = Double(row[v]); best = v }
                var sum = 0.0
                for v in 0..<vocabularySize { sum += Foundation.exp(Double(row[v]) - maxValue) }
                let logSum = maxValue + Foundation.log(sum)
                tokens.removeAll(keepingCapacity: true)
                for v in 0..<vocabularySize {
                    let lp = min(0, max(floor, Double(row[v]) - logSum))
                    logProbabilities[v] = lp
                    if lp >= options.tokenMinLogProbability || v == best { tokens.append(Int32(v)) }
                }
            }

            candidates.removeAll(keepingCapacity: true)
            merged.removeAll(keepingCapacity: true)
            for token in tokens {
                let lp = logProbabilities[Int(token)]
                let kind = alphabet.kinds[Int(token)]
                for beam in beams {
                    var next = beam
                    next.logit += lp
                    next.pendingToken = -1
                    if kind == .blank || token == beam.last {
                        if kind != .blank { next.historyEnd = Int32(t + 1) }
                    } else if kind == .delimiter {
                        if beam.partial != 0 {
                            next.text = textChild(beam.text, finishing: beam.partial)
                            next.partial = 0
                        }
                        next.pendingToken = token
                    } else {
                        next.partial = partialChild(beam.partial, token)
                        next.pendingToken = token
                    }
                    next.last = token
                    let key = StateKey(text: next.text, partial: next.partial, last: next.last)
                    if let existing = merged[key] {
                        candidates[existing].logit = logAddExp(candidates[existing].logit, next.logit)
                    } else {
                        merged[key] = candidates.count
                        candidates.append(next)
                    }
                }
            }

            // Score, prune, keep the best.
            var best = -Double.infinity
            for i in candidates.indices {
                let c = candidates[i]
                var score = c.logit + textScore[Int(c.text)]
                if c.partial != 0 { score += partialScore[Int(c.partial)] }
                candidates[i].score = score
                best = max(best, score)
            }
            let threshold = best + options.beamPruneThreshold
            var kept = candidates.indices.filter { candidates[$0].score >= threshold }
            kept.sort { candidates[$0].score > candidates[$1].score || (candidates[$0].score == candidates[$1].score && $0 < $1) }
            if kept.count > options.beamWidth { kept.removeLast(kept.count - options.beamWidth) }
            if let trace = options.trace {
                for i in kept {
                    let c = candidates[i]
                    var words: [String] = []
                    var node = c.text
                    while node > 0 { let k = textWord[Int(node)]; words.append(k >= 0 ? lm!.model.word(k) : oovWords.string(-k - 1)); node = textParent[Int(node)] }
                    let part = String(decoding: spelling(c.partial), as: UTF8.self)
                    trace.write("T\(t)\t\(words.reversed().joined(separator: " "))|\(part)|\(c.last)\t" + String(format: "%.4f", c.score))
                }
            }
            beams = kept.map { i -> Beam in
                var b = candidates[i]
                if b.pendingToken >= 0 {
                    historyParent.append(b.history)
                    historyToken.append(b.pendingToken)
                    historyStart.append(Int32(t))
                    historyParentEnd.append(b.historyEnd)
                    b.history = Int32(historyParent.count - 1)
                    b.historyEnd = Int32(t + 1)
                    b.pendingToken = -1
                }
                return b
            }
        }

        // Finish partial words, merge equal texts, add the end of sentence.
        var finals: [(beam: Beam, score: Double)] = []
        var finalIndex: [Int32: Int] = [:]
        for beam in beams {
            var b = beam
            if b.partial != 0 { b.text = textChild(b.text, finishing: b.partial); b.partial = 0 }
            if let i = finalIndex[b.text] {
                finals[i].beam.logit = logAddExp(finals[i].beam.logit, b.logit)
            } else {
                finalIndex[b.text] = finals.count
                finals.append((b, 0))
            }
        }
        var bestIndex = 0
        for i in finals.indices {
            finals[i].score = finals[i].beam.logit + textScore[Int(finals[i].beam.text)] + endScore(finals[i].beam.text)
            if finals[i].score > finals[bestIndex].score { bestIndex = i }
        }
        return result(finals.isEmpty ? nil : finals[bestIndex].beam, frames: frames)
    }

    /// The transcript and alignment of the best hypothesis.
    func result(_ beam: Beam?, frames: Int) -> CTCDecoding {
        let vocabulary = decoder.vocabulary
        var path = [Int](repeating: vocabulary.blankID, count: frames)
        guard let beam else { return CTCDecoding(text: "", path: path, characters: []) }
        var words: [String] = []
        var node = beam.text
        while node > 0 {
            let key = textWord[Int(node)]
            words.append(key >= 0 ? lm!.model.word(key) : oovWords.string(-key - 1))
            node = textParent[Int(node)]
        }
        var spans: [CharacterSpan] = []
        var h = beam.history
        var end = beam.historyEnd
        while h >= 0 {
            let token = Int(historyToken[Int(h)])
            let start = Int(historyStart[Int(h)])
            let isDelimiter = alphabet.kinds[token] == .delimiter
            var text = isDelimiter ? vocabulary.wordDelimiterReplacement : vocabulary.token(token)
            if vocabulary.lowercaseOutput { text = text.lowercased() }
            spans.append(CharacterSpan(text: text, startFrame: start, endFrame: Int(end), isWordDelimiter: isDelimiter))
            for f in start..<Int(end) { path[f] = token }
            end = historyParentEnd[Int(h)]
            h = historyParent[Int(h)]
        }
        var text = words.reversed().joined(separator: " ")
        if vocabulary.lowercaseOutput { text = text.lowercased() }
        return CTCDecoding(text: text, path: path, characters: spans.reversed())
    }
}
