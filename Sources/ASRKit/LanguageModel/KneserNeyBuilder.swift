import Foundation

/// Estimates an interpolated modified Kneser-Ney n-gram language model from text, to be written as ARPA (`asr lm
/// build`).
///
///     var builder = try KneserNeyBuilder(order: 4, normalization: [.uppercase, .lettersOnly])
///     try builder.add(contentsOf: corpus)        // or add(text:), as often as needed
///     let model = try builder.build()            // model.warnings: orders that needed fallback discounts
///     try model.writeARPA(to: output)
///
/// It follows KenLM's `lmplz` step by step, so that both give the same model on the same text (the tests compare
/// them n-gram by n-gram on a committed `lmplz` output):
/// - each line is a sentence; words are separated by spaces, tabs, carriage returns or NUL bytes (lmplz's set, so
///   other Unicode spaces are part of words); `<s>` and `</s>` are added around each sentence; an empty line is the
///   sentence `<s> </s>`. Unlike lmplz, a last line without a newline still gets its `</s>` (lmplz drops it), and
///   a UTF-8 byte order mark at the start of a file is not taken for part of the first word.
/// - the highest order keeps raw counts. A lower-order n-gram's count is its number of distinct one-word left
///   extensions (the "continuation" count of Kneser-Ney), except n-grams that begin with `<s>`, which cannot be
///   extended to the left and keep their raw counts.
/// - three discounts per order (D1, D2, D3+) from the counts of counts n1…n4 of that order (Chen & Goodman, eq. 26:
///   Y = n1 / (n1 + 2 n2), Dk = k − (k + 1) Y n(k+1) / nk).
/// - p(w | c) = (a(c w) − D(a(c w))) / Σ a(c ·) + γ(c) p(w | c′), with γ(c) = (D1 N1(c ·) + D2 N2(c ·) + D3+ N3+(c ·))
///   / Σ a(c ·) and c′ the context without its first word; unigrams are interpolated with the uniform distribution
///   over the vocabulary without `<s>`, so `<unk>` (never seen) gets γ / V. The written backoff of a context is its
///   γ; n-grams that are no context get 0 (log10 1), as lmplz writes them.
/// - `<s>` gets probability 1 (log10 0), as lmplz: it is never predicted, only used as a context.
///
/// One known difference: lmplz counts the last n-gram of each lower order (in its suffix-sorted stream) with its raw
/// count instead of its adjusted count when it collects the counts of counts (`AdjustCounts::Run` in
/// adjust_counts.cc). We use the adjusted count everywhere. That shifts at most one n-gram per order between the
/// n1…n4 buckets, and none when the corpus's last new word occurs once, which is the usual case.
///
/// Memory: counting is in memory, with n-grams packed into 128-bit keys. The text costs 4 bytes per word; while
/// counting, the highest order holds one 16-byte key per word before duplicates are merged; each distinct n-gram
/// then costs 36 bytes (key, count, probability, backoff), and the ARPA text (25–45 bytes per n-gram) is built in
/// memory before it is written. Measured peak: about 100 bytes per distinct n-gram (3.3 M words at order 4:
/// 4 M n-grams, 0.37 GB, 5 s on one core).
public struct KneserNeyBuilder: Sendable {
    /// Orders we build. An order 1 model has no context (useless for decoding); above 6 the 128-bit n-gram keys
    /// would leave too few bits per word for real vocabularies.
    public static let supportedOrders = 2...6

    /// Optional rewriting of the words of the text. The default is none: words are kept verbatim, as lmplz does.
    public struct Normalization: OptionSet, Sendable, Hashable {
        /// The option bits.
        public let rawValue: Int
        /// The options whose bits are set in `rawValue`.
        public init(rawValue: Int) { self.rawValue = rawValue }
        /// Upper-case every word (Unicode case mapping), for acoustic models that spell in capitals.
        public static let uppercase = Normalization(rawValue: 1 << 0)
        /// Keep letters and apostrophes only: any other character splits the word ("well-known" → "well known",
        /// "3.5" → nothing), typographic apostrophes (’ ʼ) become ', apostrophes at the edges of a word (mostly
        /// quotation marks) are dropped, and pieces without a letter are dropped.
        public static let lettersOnly = Normalization(rawValue: 1 << 1)
    }

    /// The three modified Kneser-Ney discounts of one order: for adjusted counts 1, 2 and 3 or more.
    public struct Discount: Sendable, Equatable, CustomStringConvertible {
        /// Discount for n-grams with adjusted count 1.
        public var d1: Double
        /// Discount for n-grams with adjusted count 2.
        public var d2: Double
        /// Discount for n-grams with adjusted count 3 or more.
        public var d3: Double
        /// The discounts `d1`, `d2` and `d3`.
        public init(d1: Double, d2: Double, d3: Double) { (self.d1, self.d2, self.d3) = (d1, d2, d3) }

        /// lmplz's `--discount_fallback` values.
        public static let lmplzFallback = Discount(d1: 0.5, d2: 1, d3: 1.5)

        func callAsFunction(_ count: UInt32) -> Double {
            switch count {
            case 0: return 0
            case 1: return d1
            case 2: return d2
            default: return d3
            }
        }

        /// The discounts as lmplz prints them: "D1=… D2=… D3+=…".
        public var description: String {
            "D1=\(Float(d1)) D2=\(Float(d2)) D3+=\(Float(d3))"
        }

        /// Chen & Goodman's estimate from the counts of counts `n[1...4]`, or why it is undefined for this order.
        static func estimate(countsOfCounts n: [Int], order: Int) -> Result<Discount, DiscountProblem> {
            for k in 1...3 where n[k] == 0 {
                return .failure(DiscountProblem(
                    reason: "no \(order)-gram has adjusted count \(k), so discount D\(k == 3 ? "3+" : "\(k)") is undefined"))
            }
            let y = Double(n[1]) / (Double(n[1]) + 2 * Double(n[2]))
            var d = [0.0, 0, 0]
            for k in 1...3 {
                d[k - 1] = Double(k) - Double(k + 1) * y * Double(n[k + 1]) / Double(n[k])
                // Outside [0, k] a discount would give negative probabilities or take more than the count.
                guard d[k - 1] >= 0, d[k - 1] <= Double(k) else {
                    return .failure(DiscountProblem(
                        reason: "discount D\(k == 3 ? "3+" : "\(k)") = \(Float(d[k - 1])) is outside [0, \(k)] "
                            + "(counts of counts n1…n4 = \(n[1...4].map(String.init).joined(separator: " ")))"))
                }
            }
            return .success(Discount(d1: d[0], d2: d[1], d3: d[2]))
        }
    }

    struct DiscountProblem: Error { let reason: String }

    /// The longest n-gram estimated (in `supportedOrders`).
    public let order: Int
    /// How the words of the text are rewritten before counting.
    public let normalization: Normalization
    /// Drop `<s>`, `</s>` and `<unk>` where they occur in the text (lmplz's `--skip_symbols`) instead of refusing
    /// them: they are the model's own symbols, and counting them as words would make a wrong model.
    public var skipSpecialTokens: Bool
    /// The discounts for an order whose counts of counts leave the closed-form estimate undefined or out of range
    /// (tiny or repetitive text: no n-gram seen exactly twice, say). `nil` makes that an error, as lmplz does
    /// without `--discount_fallback`. The default substitutes lmplz's fallback (0.5, 1, 1.5) and records a warning,
    /// so that a small domain text still gives a usable model.
    public var discountFallback: Discount? = .lmplzFallback

    /// Sentences (lines) read so far.
    public private(set) var sentenceCount = 0
    /// Words read so far, after normalisation (without `<s>` and `</s>`).
    public private(set) var wordCount = 0
    /// Distinct words read so far (without `<s>`, `</s>` and `<unk>`).
    public var vocabularySize: Int { words.count - Vocabulary.firstWord }

    /// Word ids follow lmplz: `<unk>` 0, `<s>` 1, `</s>` 2, then words in order of first appearance.
    enum Vocabulary {
        static let unk: UInt32 = 0
        static let bos: UInt32 = 1
        static let eos: UInt32 = 2
        static let firstWord = 3
        static let reserved: Set<String> = ["<unk>", "<s>", "</s>"]
    }

    private var words = ["<unk>", "<s>", "</s>"]
    private var wordIDs: [String: UInt32] = ["<unk>": 0, "<s>": 1, "</s>": 2]
    /// Each distinct token of the text and the word ids it became: normalisation runs once per distinct token.
    private var tokenIDs: [String: [UInt32]] = [:]
    /// Every sentence's word ids followed by `</s>` (so `</s>` marks the sentence ends; `<s>` is implicit).
    private var text: [UInt32] = []
    private var sources: [String] = []

    /// - Throws: `ASRError.invalidLanguageModel` for an order outside `supportedOrders`.
    public init(order: Int, normalization: Normalization = [], skipSpecialTokens: Bool = false) throws {
        guard Self.supportedOrders.contains(order) else {
            throw ASRError.invalidLanguageModel(
                file: "order", reason: "\(order) is not supported: the order must be \(Self.supportedOrders.lowerBound) to \(Self.supportedOrders.upperBound)")
        }
        self.order = order
        self.normalization = normalization
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Adds the sentences of a UTF-8 text file, one per line.
    public mutating func add(contentsOf url: URL) throws {
        let path = url.path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ASRError.invalidLanguageModel(file: path, reason: "no such file")
        }
        guard !isDirectory.boolValue else {
            throw ASRError.invalidLanguageModel(file: path, reason: "is a directory; the corpus must be a text file")
        }
        let data: Data
        do {
            data = try Data(contentsOf: url, options: .mappedIfSafe)
        } catch {
            throw ASRError.invalidLanguageModel(file: path, reason: "cannot read: \(error.localizedDescription)")
        }
        // Words must be text: the ARPA file is UTF-8, and invalid bytes would be silently replaced otherwise.
        guard String(data: data, encoding: .utf8) != nil else {
            var line = 0
            for piece in data.split(separator: 10, omittingEmptySubsequences: false) {
                line += 1
                if String(data: Data(piece), encoding: .utf8) == nil { break }
            }
            throw ASRError.invalidLanguageModel(file: path, reason: "line \(line) is not valid UTF-8")
        }
        sources.append(path)
        try data.withUnsafeBytes { try consume($0, source: path) }
    }

    /// Adds the sentences of `text`, one per line (the same rules as a file).
    public mutating func add(text: String) throws {
        var copy = text
        try copy.withUTF8 { try consume(UnsafeRawBufferPointer($0), source: "<text>") }
    }

    /// Splits lines and words exactly where lmplz does, on bytes: NUL, tab, line feed, carriage return and space.
    private mutating func consume(_ bytes: UnsafeRawBufferPointer, source: String) throws {
        @inline(__always) func isDelimiter(_ byte: UInt8) -> Bool {
            byte == 0x20 || byte == 0x0A || byte == 0x09 || byte == 0x0D || byte == 0x00
        }
        let end = bytes.count
        var i = end >= 3 && bytes[0] == 0xEF && bytes[1] == 0xBB && bytes[2] == 0xBF ? 3 : 0
        var line = 0
        while i < end {
            line += 1
            while true {
                while i < end && bytes[i] != 0x0A && isDelimiter(bytes[i]) { i += 1 }
                if i == end || bytes[i] == 0x0A { break }
                let start = i
                while i < end && !isDelimiter(bytes[i]) { i += 1 }
                let token = String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<i]), as: UTF8.self)
                try append(token: token, line: line, source: source)
            }
            text.append(Vocabulary.eos)
            sentenceCount += 1
            i += 1
        }
    }

    private mutating func append(token: String, line: Int, source: String) throws {
        if let ids = tokenIDs[token] {
            text.append(contentsOf: ids)
            wordCount += ids.count
            return
        }
        var ids: [UInt32] = []
        // The raw token is checked, so that `--uppercase` cannot turn `<unk>` into an ordinary word `<UNK>`.
        if Vocabulary.reserved.contains(token) {
            guard skipSpecialTokens else {
                throw ASRError.invalidLanguageModel(
                    file: source,
                    reason: "line \(line): '\(token)' is one of the model's own symbols (<s>, </s>, <unk>) and cannot be a word "
                        + "of the text; remove it, or drop such tokens (asr lm build --skip-symbols)")
            }
        } else {
            for word in Self.normalize(token, normalization) {
                if let id = wordIDs[word] {
                    ids.append(id)
                } else {
                    let id = UInt32(words.count)
                    words.append(word)
                    wordIDs[word] = id
                    ids.append(id)
                }
            }
        }
        tokenIDs[token] = ids
        text.append(contentsOf: ids)
        wordCount += ids.count
    }

    static func normalize(_ token: String, _ normalization: Normalization) -> [String] {
        let cased = normalization.contains(.uppercase) ? token.uppercased() : token
        guard normalization.contains(.lettersOnly) else { return [cased] }
        var pieces: [String] = []
        var current = ""
        func flush() {
            while current.first == "'" { current.removeFirst() }
            while current.last == "'" { current.removeLast() }
            if current.contains(where: \.isLetter) { pieces.append(current) }
            current = ""
        }
        for character in cased {
            if character.isLetter {
                current.append(character)
            } else if character == "'" || character == "\u{2019}" || character == "\u{02BC}" {
                current.append("'")
            } else {
                flush()
            }
        }
        flush()
        return pieces
    }

    /// Counts the n-grams, estimates the discounts and computes every probability and backoff.
    ///
    /// - Throws: `ASRError.invalidLanguageModel` when the text has no words, when the vocabulary is too large for
    ///   the order's 128-bit keys, or (with `discountFallback` nil) when an order's discounts are undefined.
    public func build() throws -> KneserNeyModel {
        let file = sources.isEmpty ? "<text>" : sources.joined(separator: ", ")
        guard wordCount > 0 else {
            throw ASRError.invalidLanguageModel(
                file: file, reason: "the corpus has no words (\(sentenceCount) empty lines); give it text, one sentence per line")
        }
        let maxID = UInt64(words.count - 1)
        let bits = max(1, UInt64.bitWidth - maxID.leadingZeroBitCount)
        guard bits * order <= 128 else {
            let limit = (UInt64(1) << (128 / order)) - UInt64(Vocabulary.firstWord)
            throw ASRError.invalidLanguageModel(
                file: file, reason: "the vocabulary of \(vocabularySize) words is too large for order \(order) "
                    + "(at most \(limit) words); use a lower order")
        }
        let packing = KneserNeyModel.Packing(bits: bits)
        var levels = count(packing)

        var discounts: [Discount] = []
        var warnings: [String] = []
        for (index, level) in levels.enumerated() {
            var n = [0, 0, 0, 0, 0]
            for count in level.counts where count >= 1 && count <= 4 { n[Int(count)] += 1 }
            switch Discount.estimate(countsOfCounts: n, order: index + 1) {
            case .success(let discount):
                discounts.append(discount)
            case .failure(let problem):
                guard let fallback = discountFallback else {
                    throw ASRError.invalidLanguageModel(
                        file: file, reason: "cannot estimate the Kneser-Ney discounts of the \(index + 1)-grams: "
                            + "\(problem.reason); the text is too small or too repetitive for order \(order): "
                            + "give more text or use a lower order")
                }
                discounts.append(fallback)
                warnings.append("\(index + 1)-grams: \(problem.reason) (small or repetitive text); used the fallback "
                                + "discounts \(fallback). More text or a lower order gives a better model.")
            }
        }
        KneserNeyModel.interpolate(&levels, discounts: discounts, packing: packing)
        return KneserNeyModel(
            order: order, words: words, packing: packing, levels: levels, discounts: discounts, warnings: warnings,
            sentenceCount: sentenceCount, wordCount: wordCount)
    }

    /// Every n-gram of orders 1…N with its Kneser-Ney count, each order sorted by key.
    private func count(_ packing: KneserNeyModel.Packing) -> [KneserNeyModel.Level] {
        typealias Key = KneserNeyModel.Key
        // The highest order: the n-gram ending at each word, padded with <s> on the left as far as the sentence
        // allows. Where the sentence start is closer than the order, the n-gram is shorter and begins with <s>:
        // those keep raw counts at their own order (`initial`).
        var top: [Key] = []
        top.reserveCapacity(text.count)
        var initial = [[Key]](repeating: [], count: order)
        var key = Key(Vocabulary.bos)
        var length = 1
        for word in text {
            key = packing.appending(word, to: key)
            if length + 1 >= order {
                key = packing.last(order, of: key)
                length = order
                top.append(key)
            } else {
                length += 1
                initial[length].append(key)
            }
            if word == Vocabulary.eos {
                key = Key(Vocabulary.bos)
                length = 1
            }
        }
        var levels = [KneserNeyModel.Level](repeating: KneserNeyModel.Level(), count: order)
        levels[order - 1] = KneserNeyModel.Level(counting: &top)
        top = []
        // Lower orders: the keys of order k + 1 are distinct, so counting their suffixes counts distinct left
        // extensions. N-grams beginning with <s> never are such a suffix; they come from `initial` with raw counts.
        for k in stride(from: order - 1, through: 1, by: -1) {
            var suffixes = levels[k].keys.map { packing.last(k, of: $0) }
            let continuation = KneserNeyModel.Level(counting: &suffixes)
            let raw = KneserNeyModel.Level(counting: &initial[k])
            levels[k - 1] = KneserNeyModel.Level(merging: continuation, raw)
        }
        // <unk> and <s> are unigrams of every model, with count 0 (their ids sort first).
        levels[0].keys.insert(contentsOf: [Key(Vocabulary.unk), Key(Vocabulary.bos)], at: 0)
        levels[0].counts.insert(contentsOf: [0, 0], at: 0)
        return levels
    }
}

/// A modified Kneser-Ney model estimated by `KneserNeyBuilder`, ready to be written as ARPA.
public struct KneserNeyModel: Sendable {
    /// The model's order: its longest n-gram.
    public let order: Int
    /// The discounts used for each order (index 0: unigrams).
    public let discounts: [KneserNeyBuilder.Discount]
    /// Orders whose discounts fell back to `KneserNeyBuilder.discountFallback`, in words.
    public let warnings: [String]
    /// Sentences (lines) counted in the text.
    public let sentenceCount: Int
    /// Words counted in the text.
    public let wordCount: Int
    /// N-grams written per order (index 0: unigrams, including `<unk>`, `<s>` and `</s>`).
    public var ngramCounts: [Int] { levels.map(\.keys.count) }

    let words: [String]
    let packing: Packing
    let levels: [Level]

    init(order: Int, words: [String], packing: Packing, levels: [Level], discounts: [KneserNeyBuilder.Discount],
         warnings: [String], sentenceCount: Int, wordCount: Int) {
        self.order = order
        self.words = words
        self.packing = packing
        self.levels = levels
        self.discounts = discounts
        self.warnings = warnings
        self.sentenceCount = sentenceCount
        self.wordCount = wordCount
    }

    /// An n-gram of word ids packed into 128 bits, first word most significant: within one order, numeric order is
    /// lexicographic order (the extensions of a context are adjacent once sorted), the context is a shift and the
    /// suffix a mask. Cheaper to sort and compare than arrays of ids.
    struct Key: Comparable, Hashable, Sendable {
        var high: UInt64
        var low: UInt64
        init(high: UInt64, low: UInt64) { (self.high, self.low) = (high, low) }
        init(_ word: UInt32) { (high, low) = (0, UInt64(word)) }
        static func < (a: Key, b: Key) -> Bool { a.high != b.high ? a.high < b.high : a.low < b.low }
    }

    /// How many bits each word takes in a key (just enough for the largest id).
    struct Packing: Sendable {
        let bits: Int

        func appending(_ word: UInt32, to key: Key) -> Key {
            Key(high: (key.high << bits) | (key.low >> (64 - bits)), low: (key.low << bits) | UInt64(word))
        }

        /// The last `count` words (the suffix).
        func last(_ count: Int, of key: Key) -> Key {
            let width = count * bits
            if width >= 128 { return key }
            if width >= 64 { return Key(high: key.high & ((1 << (width - 64)) - 1), low: key.low) }
            return Key(high: 0, low: key.low & ((1 << width) - 1))
        }

        /// The key without its last word (the context).
        func droppingLast(_ key: Key) -> Key { shiftedRight(key, by: bits) }

        /// Word `index` (0: first) of an n-gram of `count` words.
        func word(_ index: Int, of key: Key, count: Int) -> UInt32 {
            UInt32(truncatingIfNeeded: shiftedRight(key, by: (count - 1 - index) * bits).low & ((1 << bits) - 1))
        }

        private func shiftedRight(_ key: Key, by shift: Int) -> Key {
            if shift == 0 { return key }
            if shift >= 64 { return Key(high: 0, low: key.high >> (shift - 64)) }
            return Key(high: key.high >> shift, low: (key.low >> shift) | (key.high << (64 - shift)))
        }
    }

    /// The n-grams of one order, sorted by key, with their counts and (once interpolated) probabilities and
    /// backoffs (linear, not log10).
    struct Level: Sendable {
        var keys: [Key] = []
        var counts: [UInt32] = []
        var probabilities: [Double] = []
        var backoffs: [Double] = []

        init() {}

        /// Sorts `keys` and counts each distinct one (the array is consumed to save memory).
        init(counting keys: inout [Key]) {
            keys.sort()
            var index = 0
            while index < keys.count {
                var next = index + 1
                while next < keys.count && keys[next] == keys[index] { next += 1 }
                self.keys.append(keys[index])
                counts.append(UInt32(truncatingIfNeeded: next - index))
                index = next
            }
            keys = []
        }

        /// The union of two sorted levels with no key in common.
        init(merging a: Level, _ b: Level) {
            keys.reserveCapacity(a.keys.count + b.keys.count)
            counts.reserveCapacity(a.keys.count + b.keys.count)
            var (i, j) = (0, 0)
            while i < a.keys.count || j < b.keys.count {
                if j == b.keys.count || (i < a.keys.count && a.keys[i] < b.keys[j]) {
                    keys.append(a.keys[i]); counts.append(a.counts[i]); i += 1
                } else {
                    keys.append(b.keys[j]); counts.append(b.counts[j]); j += 1
                }
            }
        }

        func index(of key: Key) -> Int? {
            var (low, high) = (0, keys.count)
            while low < high {
                let middle = (low + high) / 2
                if keys[middle] < key { low = middle + 1 } else { high = middle }
            }
            return low < keys.count && keys[low] == key ? low : nil
        }
    }

    /// Interpolated probabilities, order by order (each needs the one below), and the backoffs of the contexts.
    static func interpolate(_ levels: inout [Level], discounts: [KneserNeyBuilder.Discount], packing: Packing) {
        for k in levels.indices {
            levels[k].probabilities = [Double](repeating: 0, count: levels[k].keys.count)
            levels[k].backoffs = [Double](repeating: 1, count: levels[k].keys.count)
        }
        // Unigrams: the empty context, interpolated with the uniform distribution over every word but <s>.
        let discount = discounts[0]
        var denominator = 0.0
        var mass = 0.0
        for count in levels[0].counts {
            denominator += Double(count)
            mass += discount(count)
        }
        let gamma = mass / denominator
        let uniform = 1 / Double(levels[0].keys.count - 1)
        for (index, count) in levels[0].counts.enumerated() {
            levels[0].probabilities[index] = (Double(count) - discount(count)) / denominator + gamma * uniform
        }
        levels[0].probabilities[Int(KneserNeyBuilder.Vocabulary.bos)] = 1

        for k in 1..<levels.count {
            let discount = discounts[k]
            let keys = levels[k].keys
            let counts = levels[k].counts
            let lower = levels[k - 1]
            var lowerBackoffs = lower.backoffs
            levels[k - 1].backoffs = []
            var probabilities = [Double](repeating: 0, count: keys.count)
            var start = 0
            while start < keys.count {
                let context = packing.droppingLast(keys[start])
                var end = start
                var denominator = 0.0
                var mass = 0.0
                while end < keys.count && packing.droppingLast(keys[end]) == context {
                    denominator += Double(counts[end])
                    mass += discount(counts[end])
                    end += 1
                }
                let gamma = mass / denominator
                for index in start..<end {
                    // Every suffix and every context of a counted n-gram is itself counted one order below.
                    guard let suffix = lower.index(of: packing.last(k, of: keys[index])) else {
                        preconditionFailure("Kneser-Ney: an n-gram's suffix is missing from the order below")
                    }
                    probabilities[index] = (Double(counts[index]) - discount(counts[index])) / denominator
                        + gamma * lower.probabilities[suffix]
                }
                guard let contextIndex = lower.index(of: context) else {
                    preconditionFailure("Kneser-Ney: an n-gram's context is missing from the order below")
                }
                lowerBackoffs[contextIndex] = gamma
                start = end
            }
            levels[k].probabilities = probabilities
            levels[k - 1].backoffs = lowerBackoffs
        }
    }

    /// The model as an ARPA file: `\data\`, `ngram N=count`, one `\N-grams:` section per order
    /// (`log10 p <tab> words [<tab> log10 backoff]`), `\end\`. Numbers have float precision, as lmplz writes them.
    public func arpa() -> Data { Data(arpaBytes()) }

    func arpaBytes() -> [UInt8] {
        let spelled = words.map { Array($0.utf8) }
        var out: [UInt8] = []
        out.reserveCapacity(levels.reduce(64) { $0 + $1.keys.count * (24 + 8 * order) })
        func write(_ text: String) { out.append(contentsOf: text.utf8) }
        write("\\data\\\n")
        for (k, level) in levels.enumerated() { write("ngram \(k + 1)=\(level.keys.count)\n") }
        for (k, level) in levels.enumerated() {
            let count = k + 1
            write("\n\\\(count)-grams:\n")
            for index in level.keys.indices {
                write(Self.format(level.probabilities[index], isProbability: true))
                for position in 0..<count {
                    out.append(position == 0 ? 0x09 : 0x20)
                    out.append(contentsOf: spelled[Int(packing.word(position, of: level.keys[index], count: count))])
                }
                if count < order {
                    out.append(0x09)
                    write(Self.format(level.backoffs[index], isProbability: false))
                }
                out.append(0x0A)
            }
        }
        write("\n\\end\\\n")
        return out
    }

    /// Writes `arpa()` to `url` atomically (a temporary file renamed into place).
    public func writeARPA(to url: URL) throws {
        // The text is handed to AtomicFile without a copy into a Data: it is the largest buffer of the build.
        var bytes = arpaBytes()
        try bytes.withUnsafeMutableBytes { raw in
            try AtomicFile.write(Data(bytesNoCopy: raw.baseAddress!, count: raw.count, deallocator: .none), to: url)
        }
    }

    /// log10 of a probability or backoff, shortest float spelling ("-0.30103", "0"), never above 0 for a
    /// probability that rounding took past 1 (as lmplz), and -99 (ARPA's "impossible") rather than -inf.
    static func format(_ linear: Double, isProbability: Bool) -> String {
        let logarithm = log10(linear)
        let value = max(-99, isProbability ? min(0, logarithm) : logarithm)
        if value == 0 { return "0" }
        var text = Float(value).description
        if text.hasSuffix(".0") { text.removeLast(2) }
        return text
    }
}
