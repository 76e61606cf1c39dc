import Foundation

/// A back-off n-gram language model read from an ARPA file (plain or gzip), scored as KenLM scores it.
///
/// Storage is compact and flat: words are interned once in a byte arena; unigrams are two Float arrays indexed by
/// word id; each higher order is an open-addressing table keyed by a 64-bit hash of its word ids (as KenLM's
/// "probing" structure), holding the log10 probability and, below the top order, the back-off weight. That is
/// 16 bytes per n-gram (12 at the top order) at a load factor of 2/3: 24 (18) bytes per n-gram in memory, plus
/// the words themselves. A 675 MB 4-gram ARPA (18.5 M n-grams) takes about 400 MB. Two different n-grams of the same order share a key with probability about
/// count²/2⁶⁵ (1e-5 for ten million n-grams); KenLM accepts the same risk (it would silently mis-score; here the
/// load fails with "appears twice").
///
/// Scores follow the ARPA back-off rule: log p(w | h) = log p(h w) when the n-gram exists, otherwise
/// backoff(h) + log p(w | h minus its oldest word), with backoff(h) = 0 for a context not in the file. Words not
/// in the file score as `<unk>`; a file without `<unk>` gets it at log10 p = -100, as KenLM does.
public final class NGramLanguageModel: Sendable {
    /// Highest n-gram order.
    public let order: Int
    /// Number of n-grams per order, from 1.
    public let counts: [Int]
    /// Where it was read from.
    public let path: String

    let words: WordTable
    let unigramProbability: [Float]
    let unigramBackoff: [Float]
    /// Orders 2...order at indices 0...order-2.
    let tables: [NGramTable]
    /// The word ID of `<unk>`.
    public let unknownID: Int32
    /// The word ID of `<s>`, or nil when the model has none (sentences then start without context).
    public let beginID: Int32?
    /// The word ID of `</s>`, or nil when the model has none (sentence ends are then not scored).
    public let endID: Int32?

    /// Words in the model's vocabulary, `<s>`, `</s>` and `<unk>` included.
    public var vocabularySize: Int { words.count }

    /// The id of `word`, or nil when the model does not know it.
    public func wordID(_ word: String) -> Int32? {
        var word = word
        return word.withUTF8 { words.find($0) }
    }

    func wordID(bytes: UnsafeBufferPointer<UInt8>) -> Int32? { words.find(bytes) }

    /// The spelling of word `id`.
    public func word(_ id: Int32) -> String { words.string(id) }

    /// log10 p(word | context), context oldest word first (only the last order-1 words matter).
    public func log10Probability(of word: Int32, after context: [Int32]) -> Float {
        context.withUnsafeBufferPointer { log10Probability(of: word, after: $0) }
    }

    func log10Probability(of word: Int32, after context: UnsafeBufferPointer<Int32>) -> Float {
        let usable = min(context.count, order - 1)
        guard usable > 0 else { return unigramProbability[Int(word)] }
        // keys[k-1]: hash of (last k context words, word), an n-gram of order k+1.
        // contextKeys[k-1]: hash of the last k context words alone, an n-gram of order k.
        var keys = (UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0), UInt64(0))
        var contextKeys = keys
        withUnsafeMutableBytes(of: &keys) { keyBytes in
            withUnsafeMutableBytes(of: &contextKeys) { contextBytes in
                let key = keyBytes.bindMemory(to: UInt64.self)
                let contextKey = contextBytes.bindMemory(to: UInt64.self)
                var h = NGramHash.start(word)
                var g: UInt64 = 0
                for k in 1...usable {
                    let id = context[context.count - k]
                    h = NGramHash.extend(h, id)
                    g = k == 1 ? NGramHash.start(id) : NGramHash.extend(g, id)
                    key[k - 1] = h
                    contextKey[k - 1] = g
                }
            }
        }
        return withUnsafeBytes(of: &keys) { keyBytes in
            withUnsafeBytes(of: &contextKeys) { contextBytes in
                let key = keyBytes.bindMemory(to: UInt64.self)
                let contextKey = contextBytes.bindMemory(to: UInt64.self)
                var backoff: Float = 0
                var k = usable
                while k >= 1 {
                    if let p = tables[k - 1].probability(key[k - 1]) { return backoff + p }
                    // The context of this length, as an n-gram of order k, carries the back-off weight.
                    if k == 1 {
                        backoff += unigramBackoff[Int(context[context.count - 1])]
                    } else {
                        backoff += tables[k - 2].backoff(contextKey[k - 1]) ?? 0
                    }
                    k -= 1
                }
                return backoff + unigramProbability[Int(word)]
            }
        }
    }

    /// Total log10 probability of a sentence of whitespace-separated words, with `<s>` and `</s>` around it as
    /// KenLM's `score(sentence, bos=True, eos=True)`.
    public func log10Probability(sentence: String) -> Float {
        var context: [Int32] = beginID.map { [$0] } ?? []
        var total: Float = 0
        for token in sentence.split(whereSeparator: \.isWhitespace) {
            let id = wordID(String(token)) ?? unknownID
            total += log10Probability(of: id, after: context)
            context.append(id)
            if context.count >= order { context.removeFirst() }
        }
        if let endID { total += log10Probability(of: endID, after: context) }
        return total
    }

    // MARK: Reading ARPA

    /// Reads an ARPA file, plain or gzip-compressed.
    public convenience init(arpa path: String) throws {
        try self.init(reader: ARPAReader(path: path))
    }

    private init(reader: ARPAReader) throws {
        let parsed = try reader.read()
        order = parsed.counts.count
        counts = parsed.counts
        path = reader.file.path
        words = parsed.words
        unigramProbability = parsed.unigramProbability
        unigramBackoff = parsed.unigramBackoff
        tables = parsed.tables
        unknownID = parsed.unknownID
        beginID = words.find("<s>")
        endID = words.find("</s>")
    }
}

/// The hash that keys n-grams: a chain over word ids, newest word first, so extending an n-gram into the past
/// extends its key. splitmix64's finaliser mixes each step.
enum NGramHash {
    @inline(__always) static func mix(_ x: UInt64) -> UInt64 {
        var z = x &+ 0x9E37_79B9_7F4A_7C15
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    @inline(__always) static func start(_ id: Int32) -> UInt64 { mix(UInt64(UInt32(bitPattern: id))) | 1 }
    @inline(__always) static func extend(_ h: UInt64, _ id: Int32) -> UInt64 {
        mix(h ^ (UInt64(UInt32(bitPattern: id)) &* 0xD6E8_FEB8_6659_FD93)) | 1
    }
}

/// Open-addressing table from n-gram keys (never 0: the low bit is set) to log10 probability and back-off.
final class NGramTable: @unchecked Sendable {
    let capacity: Int
    private let keys: UnsafeMutablePointer<UInt64>
    private let probabilities: UnsafeMutablePointer<Float>
    private let backoffs: UnsafeMutablePointer<Float>?
    private(set) var count = 0

    init(expectedCount: Int, hasBackoff: Bool) {
        // 1.5 slots per n-gram (as KenLM's probing default); any size, mapped by multiply-shift rather than a mask,
        // so memory is not rounded up to a power of two.
        let size = max(16, expectedCount + expectedCount / 2 + 1)
        capacity = size
        keys = .allocate(capacity: size)
        keys.initialize(repeating: 0, count: size)
        probabilities = .allocate(capacity: size)
        probabilities.initialize(repeating: 0, count: size)
        if hasBackoff {
            backoffs = .allocate(capacity: size)
            backoffs!.initialize(repeating: 0, count: size)
        } else {
            backoffs = nil
        }
    }

    deinit {
        keys.deallocate()
        probabilities.deallocate()
        backoffs?.deallocate()
    }

    /// Bytes held.
    var memoryBytes: Int { capacity * (backoffs == nil ? 12 : 16) }

    /// Inserts; returns false when the key is already present (a duplicate n-gram).
    func insert(_ key: UInt64, probability: Float, backoff: Float) -> Bool {
        precondition(count < capacity - 1, "n-gram table sized from the ARPA header overflowed")
        var slot = home(key)
        while keys[slot] != 0 {
            if keys[slot] == key { return false }
            slot += 1
            if slot == capacity { slot = 0 }
        }
        keys[slot] = key
        probabilities[slot] = probability
        backoffs?[slot] = backoff
        count += 1
        return true
    }

    @inline(__always) private func home(_ key: UInt64) -> Int {
        Int(truncatingIfNeeded: key.multipliedFullWidth(by: UInt64(capacity)).high)
    }

    @inline(__always) private func find(_ key: UInt64) -> Int? {
        var slot = home(key)
        while true {
            let k = keys[slot]
            if k == key { return slot }
            if k == 0 { return nil }
            slot += 1
            if slot == capacity { slot = 0 }
        }
    }

    @inline(__always) func probability(_ key: UInt64) -> Float? { find(key).map { probabilities[$0] } }
    @inline(__always) func backoff(_ key: UInt64) -> Float? { find(key).map { backoffs?[$0] ?? 0 } }
}

/// Interned words: bytes in one arena, found through an open-addressing table of FNV-1a hashes.
final class WordTable: @unchecked Sendable {
    private(set) var bytes: [UInt8] = []
    private(set) var offsets: [Int] = [0]
    private var slots: [Int32] = Array(repeating: -1, count: 1024)
    private var hashes: [UInt64] = []

    var count: Int { offsets.count - 1 }

    init(expectedCount: Int = 0) {
        var size = 1024
        while size < expectedCount * 2 { size <<= 1 }
        slots = Array(repeating: -1, count: size)
        hashes.reserveCapacity(expectedCount)
        offsets.reserveCapacity(expectedCount + 1)
    }

    @inline(__always) static func hash(_ word: UnsafeBufferPointer<UInt8>) -> UInt64 {
        var h: UInt64 = 0xCBF2_9CE4_8422_2325
        for b in word { h = (h ^ UInt64(b)) &* 0x0000_0100_0000_01B3 }
        return h
    }

    func string(_ id: Int32) -> String {
        String(decoding: bytes[offsets[Int(id)]..<offsets[Int(id) + 1]], as: UTF8.self)
    }

    private func equals(_ id: Int32, _ word: UnsafeBufferPointer<UInt8>) -> Bool {
        let start = offsets[Int(id)], end = offsets[Int(id) + 1]
        guard end - start == word.count else { return false }
        return bytes.withUnsafeBufferPointer { all in
            word.count == 0 || memcmp(all.baseAddress! + start, word.baseAddress!, word.count) == 0
        }
    }

    func find(_ word: String) -> Int32? {
        var word = word
        return word.withUTF8 { find($0) }
    }

    func find(_ word: UnsafeBufferPointer<UInt8>) -> Int32? {
        let h = Self.hash(word)
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: h) & mask
        while true {
            let id = slots[slot]
            if id < 0 { return nil }
            if hashes[Int(id)] == h, equals(id, word) { return id }
            slot = (slot + 1) & mask
        }
    }

    /// Adds a word; returns its id and whether it was new.
    @discardableResult
    func add(_ word: UnsafeBufferPointer<UInt8>) -> (id: Int32, isNew: Bool) {
        if let id = find(word) { return (id, false) }
        if (count + 1) * 2 > slots.count { grow() }
        let h = Self.hash(word)
        let id = Int32(count)
        bytes.append(contentsOf: word)
        offsets.append(bytes.count)
        hashes.append(h)
        let mask = slots.count - 1
        var slot = Int(truncatingIfNeeded: h) & mask
        while slots[slot] >= 0 { slot = (slot + 1) & mask }
        slots[slot] = id
        return (id, true)
    }

    @discardableResult
    func add(_ word: String) -> (id: Int32, isNew: Bool) {
        var word = word
        return word.withUTF8 { add($0) }
    }

    private func grow() {
        slots = Array(repeating: -1, count: slots.count * 2)
        let mask = slots.count - 1
        for id in 0..<count {
            var slot = Int(truncatingIfNeeded: hashes[id]) & mask
            while slots[slot] >= 0 { slot = (slot + 1) & mask }
            slots[slot] = Int32(id)
        }
    }
}

/// The ARPA format: a `\data\` header with `ngram N=count` lines, then `\N-grams:` sections of lines
/// "log10prob w1 ... wN [backoff]" (fields separated by tabs or spaces), then `\end\`.
struct ARPAReader {
    let file: TextFile

    init(path: String) throws { file = try TextFile(path: path) }

    struct Parsed {
        var counts: [Int]
        var words: WordTable
        var unigramProbability: [Float]
        var unigramBackoff: [Float]
        var tables: [NGramTable]
        var unknownID: Int32
    }

    private func fail(_ reason: String) -> ASRError {
        .invalidLanguageModel(file: file.path, reason: "line \(file.lineNumber): \(reason)")
    }

    private static func isSpace(_ b: UInt8) -> Bool { b == 0x20 || b == 0x09 || b == 0x0B || b == 0x0C || b == 0x0D }

    private static func trimmed(_ line: UnsafeMutableBufferPointer<UInt8>) -> String {
        String(decoding: line, as: UTF8.self).trimmingCharacters(in: .whitespaces)
    }

    /// Splits a line into whitespace-separated fields (at most `limit`); returns nil when there are more.
    private static func fields(_ line: UnsafeMutableBufferPointer<UInt8>, into out: inout [Range<Int>], limit: Int) -> Bool {
        out.removeAll(keepingCapacity: true)
        guard let p = line.baseAddress else { return true }
        var i = 0
        let n = line.count
        while i < n {
            while i < n, p[i] <= 0x20, isSpace(p[i]) { i += 1 }
            if i == n { break }
            let start = i
            while i < n, p[i] > 0x20 || !isSpace(p[i]) { i += 1 }
            if out.count == limit { return false }
            out.append(start..<i)
        }
        return true
    }

    /// Powers of ten exactly representable as Double.
    private static let powersOfTen: [Double] = (0...22).map { pow(10, Double($0)) }

    /// The common ARPA number shape, "-1.234567" or "-1.2e-05", parsed without libc (it dominates loading time
    /// otherwise); nil for anything else, which then goes to strtof. Within 1 ulp of strtof.
    @inline(__always)
    private static func quickNumber(_ p: UnsafeMutablePointer<UInt8>, _ count: Int) -> Float? {
        var i = 0
        var negative = false
        if i < count, p[i] == UInt8(ascii: "-") || p[i] == UInt8(ascii: "+") { negative = p[i] == UInt8(ascii: "-"); i += 1 }
        var mantissa: UInt64 = 0
        var digits = 0, fraction = 0
        while i < count, p[i] &- 48 < 10 { mantissa = mantissa &* 10 &+ UInt64(p[i] &- 48); digits += 1; i += 1 }
        if i < count, p[i] == UInt8(ascii: ".") {
            i += 1
            while i < count, p[i] &- 48 < 10 { mantissa = mantissa &* 10 &+ UInt64(p[i] &- 48); digits += 1; fraction += 1; i += 1 }
        }
        guard digits > 0, digits <= 18 else { return nil }
        var exponent = -fraction
        if i < count, p[i] == UInt8(ascii: "e") || p[i] == UInt8(ascii: "E") {
            i += 1
            var negativeExponent = false
            if i < count, p[i] == UInt8(ascii: "-") || p[i] == UInt8(ascii: "+") { negativeExponent = p[i] == UInt8(ascii: "-"); i += 1 }
            var e = 0, eDigits = 0
            while i < count, p[i] &- 48 < 10, eDigits < 4 { e = e * 10 + Int(p[i] &- 48); eDigits += 1; i += 1 }
            guard eDigits > 0 else { return nil }
            exponent += negativeExponent ? -e : e
        }
        guard i == count, exponent >= -22, exponent <= 22 else { return nil }
        var value = Double(mantissa)
        value = exponent < 0 ? value / powersOfTen[-exponent] : value * powersOfTen[exponent]
        let result = Float(negative ? -value : value)
        return result.isFinite ? result : nil   // out of Float range: strtof's path reports it
    }

    private func number(_ line: UnsafeMutableBufferPointer<UInt8>, _ range: Range<Int>, what: String) throws -> Float {
        let start = line.baseAddress! + range.lowerBound
        if let value = Self.quickNumber(start, range.count) { return value }
        // strtof stops at the whitespace after the field; the line ends in a NUL.
        var end: UnsafeMutablePointer<CChar>?
        let value = start.withMemoryRebound(to: CChar.self, capacity: range.count + 1) { p -> Float in
            let v = strtof(p, &end)
            return v
        }
        let consumed = end.map { UnsafeMutableRawPointer($0) - UnsafeMutableRawPointer(start) } ?? 0
        guard consumed == range.count else {
            throw fail("\(what) '\(String(decoding: UnsafeBufferPointer(rebasing: line[range]), as: UTF8.self))' is not a number")
        }
        guard value.isFinite || (value == -.infinity && what == "probability") else {
            throw fail("\(what) is not finite")
        }
        return value
    }

    func read() throws -> Parsed {
        // Header.
        // A short preamble (some tools write comments) may precede \data\; anything longer is not an ARPA file,
        // and a KenLM binary is named as such rather than scanned to its end.
        var sawData = false
        var preambleBytes = 0
        while let line = try file.nextLine() {
            if file.lineNumber == 1, line.count >= 8, line.starts(with: Array("mmap lm ".utf8)) {
                throw ASRError.invalidLanguageModel(
                    file: file.path, reason: "a KenLM binary model, which this engine cannot read; use the ARPA file it was built from (or build one with `asr lm build`)")
            }
            if Self.trimmed(line) == "\\data\\" { sawData = true; break }
            preambleBytes += line.count + 1
            if preambleBytes > 1 << 16 || file.lineNumber > 1000 { break }
        }
        guard sawData else { throw ASRError.invalidLanguageModel(file: file.path, reason: "not an ARPA file: no \\data\\ section at its start") }
        var counts: [Int] = []
        var pendingSection: String?
        while let line = try file.nextLine() {
            let text = Self.trimmed(line)
            if text.isEmpty { continue }
            if text.hasPrefix("\\") { pendingSection = text; break }
            guard text.hasPrefix("ngram "), let eq = text.firstIndex(of: "="),
                  let n = Int(text[text.index(text.startIndex, offsetBy: 6)..<eq].trimmingCharacters(in: .whitespaces)),
                  let count = Int(text[text.index(after: eq)...].trimmingCharacters(in: .whitespaces)) else {
                throw fail("expected 'ngram N=count', found '\(text.prefix(80))'")
            }
            guard n == counts.count + 1 else { throw fail("'ngram \(n)=' out of order (expected order \(counts.count + 1))") }
            // Tables are sized from these counts: a count the file cannot hold (each line takes at least 2n + 2
            // bytes; gzip is allowed 64× its size) is refused before anything is allocated.
            guard count >= 0, count <= file.byteBudget / (2 * n + 2) else {
                throw fail("the header announces \(count) \(n)-grams, more than a file of this size can hold")
            }
            counts.append(count)
        }
        guard !counts.isEmpty else { throw fail("the \\data\\ section lists no 'ngram N=count' lines") }
        guard counts.count <= 8 else { throw fail("order \(counts.count) is above the supported maximum of 8") }
        guard counts[0] > 0 else { throw fail("the model has no unigrams") }
        let order = counts.count

        let words = WordTable(expectedCount: counts[0] + 1)
        var unigramProbability: [Float] = []
        var unigramBackoff: [Float] = []
        unigramProbability.reserveCapacity(counts[0] + 1)
        unigramBackoff.reserveCapacity(counts[0] + 1)
        var tables: [NGramTable] = []
        var fields: [Range<Int>] = []
        var ids = [Int32](repeating: 0, count: order)

        for n in 1...order {
            // Section header.
            var header = pendingSection
            pendingSection = nil
            while header == nil, let line = try file.nextLine() {
                let text = Self.trimmed(line)
                if !text.isEmpty { header = text }
            }
            guard header == "\\\(n)-grams:" else {
                throw fail("expected '\\\(n)-grams:', found '\((header ?? "end of file").prefix(80))'")
            }
            let table = n > 1 ? NGramTable(expectedCount: counts[n - 1], hasBackoff: n < order) : nil
            var read = 0
            while read < counts[n - 1] {
                guard let line = try file.nextLine() else {
                    throw fail("end of file after \(read) of the \(counts[n - 1]) \(n)-grams the header announces")
                }
                guard Self.fields(line, into: &fields, limit: n + 2) else {
                    throw fail("a \(n)-gram line has more than \(n + 2) fields")
                }
                if fields.isEmpty { continue }
                if line[fields[0].lowerBound] == UInt8(ascii: "\\") {
                    throw fail("section ends after \(read) \(n)-grams; the header announces \(counts[n - 1])")
                }
                guard fields.count == n + 1 || fields.count == n + 2 else {
                    throw fail("a \(n)-gram line needs a probability, \(n) word\(n == 1 ? "" : "s") and an optional back-off")
                }
                let probability = try number(line, fields[0], what: "probability")
                guard probability <= 0 else {
                    throw fail("log10 probability \(probability) is positive")
                }
                let backoff = fields.count == n + 2 ? try number(line, fields[n + 1], what: "back-off") : 0
                if n == 1 {
                    let word = UnsafeBufferPointer(rebasing: line[fields[1]])
                    let (_, isNew) = words.add(word)
                    guard isNew else { throw fail("unigram '\(String(decoding: word, as: UTF8.self))' appears twice") }
                    unigramProbability.append(probability)
                    unigramBackoff.append(backoff)
                } else {
                    for k in 0..<n {
                        let word = UnsafeBufferPointer(rebasing: line[fields[1 + k]])
                        guard let id = words.find(word) else {
                            throw fail("word '\(String(decoding: word, as: UTF8.self))' of a \(n)-gram is not among the unigrams")
                        }
                        ids[k] = id
                    }
                    var h = NGramHash.start(ids[n - 1])
                    for k in stride(from: n - 2, through: 0, by: -1) { h = NGramHash.extend(h, ids[k]) }
                    guard table!.insert(h, probability: probability, backoff: backoff) else {
                        throw fail("the \(n)-gram appears twice")
                    }
                }
                read += 1
            }
            if let table { tables.append(table) }
        }
        // Trailer: anything but blank lines before \end\ is an error (more n-grams than announced).
        var sawEnd = false
        while let line = try file.nextLine() {
            let text = Self.trimmed(line)
            if text.isEmpty { continue }
            guard text == "\\end\\" else { throw fail("expected '\\end\\' after the \(order)-grams, found '\(text.prefix(80))'") }
            sawEnd = true
            break
        }
        guard sawEnd else { throw ASRError.invalidLanguageModel(file: file.path, reason: "truncated: no \\end\\ line") }

        let unknownID: Int32
        if let id = words.find("<unk>") {
            unknownID = id
        } else {
            unknownID = words.add("<unk>").id
            unigramProbability.append(-100)
            unigramBackoff.append(0)
        }
        return Parsed(counts: counts, words: words, unigramProbability: unigramProbability,
                      unigramBackoff: unigramBackoff, tables: tables, unknownID: unknownID)
    }
}
