import Foundation
import Testing
@testable import ASRKit

/// `KneserNeyBuilder` against KenLM's lmplz (reference ARPA files made by tools/lm/make_tiny_corpus.py and
/// committed), the normalisation of every context, and the error cases.
@Suite struct KneserNeyTests {
    static let lm = Fixtures.root.appendingPathComponent("lm")
    static let tinyCorpus = lm.appendingPathComponent("tiny_corpus.txt")
    static let fallbackCorpus = lm.appendingPathComponent("fallback_corpus.txt")

    /// An ARPA file read into dictionaries, independently of the code under test.
    struct ARPA {
        struct Entry { var probability: Double; var backoff: Double? }
        var counts: [Int] = []
        /// Per order (index 0: unigrams), n-grams keyed by their words joined with single spaces.
        var orders: [[String: Entry]] = []

        init(_ text: String) throws {
            var section = 0
            for line in text.split(separator: "\n", omittingEmptySubsequences: true) {
                if line.hasPrefix("ngram ") {
                    counts.append(Int(line.split(separator: "=")[1])!)
                } else if line.hasSuffix("-grams:") {
                    section = Int(line.dropFirst().prefix { $0.isNumber })!
                    orders.append([:])
                } else if section > 0, line != "\\end\\" {
                    let fields = line.split(separator: "\t", omittingEmptySubsequences: false)
                    try #require(fields.count == 2 || fields.count == 3, "bad line: \(line)")
                    let words = fields[1].split(separator: " ")
                    try #require(words.count == section, "bad line: \(line)")
                    orders[section - 1][words.joined(separator: " ")] = Entry(
                        probability: Double(fields[0])!, backoff: fields.count == 3 ? Double(fields[2])! : nil)
                }
            }
        }

        var order: Int { orders.count }

        /// log10 p(word | context) with ARPA back-off.
        func score(_ word: String, after context: [String]) -> Double {
            var context = context
            var backoff = 0.0
            while true {
                let key = (context + [word]).joined(separator: " ")
                if let entry = orders[context.count][key] { return backoff + entry.probability }
                if context.isEmpty { return -.infinity }
                backoff += orders[context.count - 1][context.joined(separator: " ")]?.backoff ?? 0
                context.removeFirst()
            }
        }
    }

    static func build(_ corpus: URL, order: Int, configure: (inout KneserNeyBuilder) -> Void = { _ in }) throws -> KneserNeyModel {
        var builder = try KneserNeyBuilder(order: order)
        configure(&builder)
        try builder.add(contentsOf: corpus)
        return try builder.build()
    }

    static func ours(_ corpus: URL, order: Int) throws -> ARPA {
        try ARPA(String(decoding: build(corpus, order: order).arpa(), as: UTF8.self))
    }

    static func lmplz(_ name: String) throws -> ARPA {
        try ARPA(String(contentsOf: lm.appendingPathComponent(name), encoding: .utf8))
    }

    // MARK: Same model as lmplz

    /// Same n-grams, and each probability and backoff within 1e-4 in log10. (lmplz computes in float, we in double;
    /// both print float precision, so agreement is about 1e-6.)
    @Test(arguments: [("tiny_corpus.txt", 3), ("tiny_corpus.txt", 4), ("fallback_corpus.txt", 3)])
    func sameModelAsLmplz(corpus: String, order: Int) throws {
        let ours = try Self.ours(Self.lm.appendingPathComponent(corpus), order: order)
        let reference = try Self.lmplz(corpus.replacingOccurrences(of: ".txt", with: ".lmplz.order\(order).arpa"))
        #expect(ours.counts == reference.counts)
        try #require(ours.order == order && reference.order == order)
        var mismatches: [String] = []
        for k in 0..<order {
            let missing = Set(reference.orders[k].keys).subtracting(ours.orders[k].keys)
            let extra = Set(ours.orders[k].keys).subtracting(reference.orders[k].keys)
            #expect(missing.isEmpty, "\(k + 1)-grams only lmplz has: \(missing.sorted().prefix(5))")
            #expect(extra.isEmpty, "\(k + 1)-grams only we have: \(extra.sorted().prefix(5))")
            for (key, expected) in reference.orders[k] {
                guard let entry = ours.orders[k][key] else { continue }
                if abs(entry.probability - expected.probability) > 1e-4 {
                    mismatches.append("p(\(key)): ours \(entry.probability), lmplz \(expected.probability)")
                }
                switch (entry.backoff, expected.backoff) {
                case (nil, nil): break
                case (let backoff?, let reference?) where abs(backoff - reference) <= 1e-4: break
                default: mismatches.append("b(\(key)): ours \(String(describing: entry.backoff)), lmplz \(String(describing: expected.backoff))")
                }
            }
        }
        #expect(mismatches.isEmpty, "\(mismatches.count) differences, e.g. \(mismatches.sorted().prefix(10))")
    }

    @Test func specialUnigramsAsLmplzWritesThem() throws {
        let ours = try Self.ours(Self.tinyCorpus, order: 3)
        #expect(ours.orders[0]["<s>"]?.probability == 0)  // probability 1: never predicted
        #expect(ours.orders[0]["</s>"]?.backoff == 0)     // never a context
        #expect(ours.orders[0]["<unk>"].map { $0.probability < -2 } == true)  // the uniform share of γ
        #expect(ours.orders[1]["<s> </s>"] != nil)         // the corpus's empty line
    }

    // MARK: Invariants

    /// For every context (a sample of those of each order), p(w | context) summed over the vocabulary (all words
    /// but <s>, including </s> and <unk>) is 1. Checked on lmplz's files too, which validates the check itself.
    @Test(arguments: [3, 4])
    func probabilitiesSumToOne(order: Int) throws {
        let ours = try Self.ours(Self.tinyCorpus, order: order)
        let reference = try Self.lmplz("tiny_corpus.lmplz.order\(order).arpa")
        for model in [ours, reference] {
            let vocabulary = model.orders[0].keys.filter { $0 != "<s>" }
            var contexts: [[String]] = [[]]
            for k in 0..<(order - 1) {
                let keys = model.orders[k].keys.filter { !$0.hasSuffix("</s>") }.sorted()
                contexts += stride(from: 0, to: keys.count, by: max(1, keys.count / 60)).map { keys[$0].split(separator: " ").map(String.init) }
            }
            contexts.append(["<s>"])
            for context in contexts {
                let total = vocabulary.reduce(0.0) { $0 + pow(10, model.score($1, after: context)) }
                #expect(abs(total - 1) <= 1e-4, "Σ p(w | \(context.joined(separator: " "))) = \(total)")
            }
        }
    }

    @Test func sameTextSameModelWhateverTheLineEndings() throws {
        func arpa(_ text: String) throws -> Data {
            var builder = try KneserNeyBuilder(order: 2)
            try builder.add(text: text)
            return try builder.build().arpa()
        }
        let reference = try arpa("a b c\nb a\n\nc a b b\n")
        #expect(try arpa("a b c\nb a\n\nc a b b") == reference)           // no newline at the end
        #expect(try arpa("a b c\r\nb a\r\n\r\nc a b b\r\n") == reference)  // CRLF
        #expect(try arpa(" a\tb  c \nb a\n\nc a b b\n") == reference)     // tabs and runs of spaces
        #expect(try arpa("a b c\nb a\nc a b b\n") != reference)           // an empty line is a sentence
    }

    @Test func normalisation() {
        let both: KneserNeyBuilder.Normalization = [.uppercase, .lettersOnly]
        #expect(KneserNeyBuilder.normalize("Hello,", []) == ["Hello,"])
        #expect(KneserNeyBuilder.normalize("Hello,", .uppercase) == ["HELLO,"])
        #expect(KneserNeyBuilder.normalize("Hello,", both) == ["HELLO"])
        #expect(KneserNeyBuilder.normalize("well-known", both) == ["WELL", "KNOWN"])
        #expect(KneserNeyBuilder.normalize("don’t", both) == ["DON'T"])
        #expect(KneserNeyBuilder.normalize("'quoted'", both) == ["QUOTED"])
        #expect(KneserNeyBuilder.normalize("3.5", both) == [])
        #expect(KneserNeyBuilder.normalize("café", .lettersOnly) == ["café"])
    }

    @Test func normalisedCorpusCountsNormalisedWords() throws {
        var builder = try KneserNeyBuilder(order: 3, normalization: [.uppercase, .lettersOnly])
        try builder.add(text: "The cat's toy.\nthe CAT -- 42 sat!\n")
        // THE CAT'S TOY / THE CAT SAT ("--" and "42" have no letter)
        #expect(builder.wordCount == 6)
        #expect(builder.vocabularySize == 5)
    }

    @Test func writesAtomically() throws {
        let directory = try Fixtures.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: directory) }
        let model = try Self.build(Self.fallbackCorpus, order: 3)
        let url = directory.appendingPathComponent("lm.arpa")
        try model.writeARPA(to: url)
        #expect(try Data(contentsOf: url) == model.arpa())
        #expect(try FileManager.default.contentsOfDirectory(atPath: directory.path) == ["lm.arpa"])
    }

    // MARK: Errors

    static func reason(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch ASRError.invalidLanguageModel(_, let reason) {
            return reason
        } catch {
            return "unexpected error: \(error)"
        }
    }

    static func corpusFile(_ bytes: [UInt8]) throws -> URL {
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("corpus.txt")
        try Data(bytes).write(to: url)
        return url
    }

    @Test func orderOutOfRange() {
        for order in [-1, 0, 1, 7] {
            #expect(Self.reason { _ = try KneserNeyBuilder(order: order) }?.contains("2 to 6") == true)
        }
    }

    @Test func emptyCorpus() throws {
        for bytes in [[], Array("\n\n  \n".utf8)] as [[UInt8]] {
            let url = try Self.corpusFile(bytes)
            #expect(Self.reason { _ = try Self.build(url, order: 3) }?.contains("no words") == true)
        }
    }

    @Test func missingAndUnreadableCorpora() throws {
        #expect(Self.reason { _ = try Self.build(URL(fileURLWithPath: "/nonexistent/corpus.txt"), order: 3) } == "no such file")
        #expect(Self.reason { _ = try Self.build(Fixtures.root, order: 3) }?.contains("directory") == true)
        let url = try Self.corpusFile(Array("fine line\nbad \u{FF}".utf8) + [0xC3, 0x28, 0x0A])
        #expect(Self.reason { _ = try Self.build(url, order: 3) } == "line 2 is not valid UTF-8")
    }

    @Test func reservedSymbols() throws {
        let url = try Self.corpusFile(Array("a b\nc <s> d\n".utf8))
        #expect(Self.reason { _ = try Self.build(url, order: 3) }?.contains("line 2: '<s>'") == true)
        let model = try Self.build(url, order: 3) { $0.skipSpecialTokens = true }
        #expect(model.wordCount == 4)
    }

    /// Without the fallback, undefined discounts are an error naming the order and what to do.
    @Test func undefinedDiscounts() throws {
        let lenient = try Self.build(Self.fallbackCorpus, order: 3)
        #expect(!lenient.warnings.isEmpty)
        #expect(lenient.discounts.contains(.lmplzFallback))
        let reason = Self.reason { _ = try Self.build(Self.fallbackCorpus, order: 3) { $0.discountFallback = nil } }
        #expect(reason?.contains("-grams") == true && reason?.contains("lower order") == true, "\(reason ?? "no error")")
        #expect(try Self.build(Self.tinyCorpus, order: 4).warnings.isEmpty)
    }

    @Test func discountsFollowChenAndGoodman() throws {
        // n1..n4 = 10 5 3 2: Y = 10/20 = 0.5; D1 = 1 − 2·0.5·5/10 = 0.5; D2 = 2 − 3·0.5·3/5 = 1.1; D3 = 3 − 4·0.5·2/3.
        let discount = try KneserNeyBuilder.Discount.estimate(countsOfCounts: [0, 10, 5, 3, 2], order: 2).get()
        #expect(abs(discount.d1 - 0.5) < 1e-12 && abs(discount.d2 - 1.1) < 1e-12 && abs(discount.d3 - (3 - 4.0 / 3)) < 1e-12)
        #expect((try? KneserNeyBuilder.Discount.estimate(countsOfCounts: [0, 10, 0, 3, 2], order: 2).get()) == nil)
    }
}
