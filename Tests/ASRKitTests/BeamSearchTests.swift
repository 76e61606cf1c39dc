import Foundation
import XCTest
@testable import ASRKit

/// The CTC prefix beam search on hand-made emission matrices, where the right answer can be worked out by hand.
final class BeamSearchTests: XCTestCase {
    // Tokens: 0 blank, 1 word delimiter, then letters.
    let vocabulary = Vocabulary(tokens: ["<pad>", "|", "A", "B", "C", "D"], blankID: 0)
    let ids: [Character: Int] = ["_": 0, "|": 1, "A": 2, "B": 3, "C": 4, "D": 5]

    /// Emissions from per-frame probability rows (logits = log p, which the decoder renormalises).
    func emissions(_ rows: [[Double]]) -> Emissions {
        let logits = rows.flatMap { row in row.map { Float(Foundation.log(max($0, 1e-30))) } }
        return Emissions(frames: rows.count, vocabularySize: vocabulary.count, logits: logits, frameDuration: 0.02)
    }

    /// One near-certain token per frame, spelled as a string of token characters ("_" is the blank).
    func peaked(_ path: String, confidence: Double = 0.99) -> Emissions {
        emissions(path.map { c in
            var row = [Double](repeating: (1 - confidence) / Double(vocabulary.count - 1), count: vocabulary.count)
            row[ids[c]!] = confidence
            return row
        })
    }

    func decoder(_ lm: DecodingLanguageModel? = nil, configure: (inout BeamSearchOptions) -> Void = { _ in }) throws -> BeamSearchDecoder {
        var options = BeamSearchOptions()
        configure(&options)
        return try BeamSearchDecoder(vocabulary: vocabulary, languageModel: lm, options: options)
    }

    func testKnownBestPathCollapsesRepeatsAndKeepsBlankSeparatedLetters() throws {
        // A A _ A B | | C C _  →  "AAB C": the repeat merges, the blank keeps the third A, a doubled delimiter is one.
        let e = peaked("AA_AB||CC_")
        let result = try decoder().decode(e)
        XCTAssertEqual(result.text, "AAB C")
        XCTAssertEqual(result.text, CTCGreedyDecoder.decode(logits: e.logits, frames: e.frames, vocabulary: vocabulary).text)
    }

    func testAlignmentOfTheBestHypothesis() throws {
        let result = try decoder().decode(peaked("_AA_B|_CC_"))
        XCTAssertEqual(result.characters.map(\.text), ["A", "B", " ", "C"])
        XCTAssertEqual(result.characters.map(\.startFrame), [1, 4, 5, 7])
        XCTAssertEqual(result.characters.map(\.endFrame), [3, 5, 6, 9])
        XCTAssertEqual(result.characters.map(\.isWordDelimiter), [false, false, true, false])
        XCTAssertEqual(result.path, [0, 2, 2, 0, 3, 1, 0, 4, 4, 0])
    }

    func testSummingAlignmentsBeatsTheSingleBestPath() throws {
        // Two frames, p(A) = 0.4, p(blank) = 0.6 in each. The best single path is blank-blank (0.36, text ""),
        // but "A" has three alignments: AA, A_, _A = 0.16 + 0.24 + 0.24 = 0.64.
        let row = [0.6, 0.0, 0.4, 0.0, 0.0, 0.0]
        let e = emissions([row, row])
        XCTAssertEqual(CTCGreedyDecoder.decode(logits: e.logits, frames: 2, vocabulary: vocabulary).text, "")
        XCTAssertEqual(try decoder().decode(e).text, "A")
    }

    func testRepeatedLetterNeedsABlankBetween() throws {
        // "AA" without a blank is one A; with a blank in between it is two.
        XCTAssertEqual(try decoder().decode(peaked("AAAA")).text, "A")
        XCTAssertEqual(try decoder().decode(peaked("A_A")).text, "AA")
    }

    func testEmptyAndAllBlankInput() throws {
        XCTAssertEqual(try decoder().decode(peaked("")).text, "")
        XCTAssertEqual(try decoder().decode(peaked("____")).text, "")
        XCTAssertEqual(try decoder().decode(peaked("||_|")).text, "")
    }

    /// "AB" and "AC" acoustically ambiguous (C slightly ahead at the second letter).
    var ambiguous: Emissions {
        let a = [0.02, 0.02, 0.9, 0.02, 0.02, 0.02]
        let bc = [0.02, 0.02, 0.02, 0.44, 0.48, 0.02]
        let blank = [0.96, 0.01, 0.01, 0.01, 0.005, 0.005]
        return emissions([blank, a, blank, bc, blank])
    }

    func writeARPA(_ text: String) throws -> String {
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("lm.arpa")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url.path
    }

    func testLanguageModelOverridesAWeakAcousticPreference() throws {
        XCTAssertEqual(try decoder().decode(ambiguous).text, "AC")
        let path = try writeARPA("""
            \\data\\
            ngram 1=5

            \\1-grams:
            -1.0\t<unk>
            -99\t<s>\t0
            -0.5\t</s>
            -0.3\tAB\t0
            -3.0\tAC\t0

            \\end\\

            """)
        let lm = DecodingLanguageModel(model: try NGramLanguageModel(arpa: path))
        XCTAssertEqual(try decoder(lm).decode(ambiguous).text, "AB")
        // With α = 0 the LM only adds the same β to both: the acoustics decide again.
        XCTAssertEqual(try decoder(lm) { $0.alpha = 0 }.decode(ambiguous).text, "AC")
    }

    func testUnknownWordPenaltyAppliesToPartialWords() throws {
        // The LM knows only "AB": "AC" is not the start of any known word, so it is penalised while it is spelled.
        let path = try writeARPA("""
            \\data\\
            ngram 1=4

            \\1-grams:
            -1.0\t<unk>
            -99\t<s>\t0
            -0.5\t</s>
            -1.0\tAB\t0

            \\end\\

            """)
        let lm = DecodingLanguageModel(model: try NGramLanguageModel(arpa: path))
        XCTAssertEqual(try decoder(lm).decode(ambiguous).text, "AB")
        XCTAssertEqual(try decoder(lm) { $0.unknownWordPenalty = 0; $0.alpha = 0 }.decode(ambiguous).text, "AC")
    }

    func testHotwordBoost() throws {
        XCTAssertEqual(try decoder { $0.hotwords = [Hotword("ab")] }.decode(ambiguous).text, "AB", "case follows the model's alphabet")
        XCTAssertEqual(try decoder { $0.hotwords = [Hotword("AB", weight: 0)] }.decode(ambiguous).text, "AC")
        XCTAssertEqual(try Hotword(parsing: "Kubernetes:8"), Hotword("Kubernetes", weight: 8))
        XCTAssertEqual(try Hotword(parsing: "New York"), Hotword("New York"))
        XCTAssertEqual(try Hotword(parsing: "ratio 1:2"), Hotword("ratio 1", weight: 2))
        XCTAssertThrowsError(try Hotword(parsing: " :3"))
        XCTAssertThrowsError(try decoder { $0.hotwords = [Hotword("AB1")] }, "the model cannot write '1'")
    }

    func testBeamWidthOneIsGreedyOnPeakedInput() throws {
        let e = peaked("_CA_B|DD_A", confidence: 0.9)
        XCTAssertEqual(try decoder { $0.beamWidth = 1 }.decode(e).text, "CAB DA")
    }

    func testInvalidOptions() {
        XCTAssertThrowsError(try decoder { $0.beamWidth = 0 })
        XCTAssertThrowsError(try decoder { $0.alpha = .nan })
        XCTAssertThrowsError(try decoder { $0.beamPruneThreshold = 1 })
    }

    func testTranscriberTimestampsFromTheBeam() throws {
        // Through Transcriber.decode: words and times come from the chosen hypothesis.
        let transcriber = try Transcriber(modelDirectory: Fixtures.model("base-layout"))
        let v = transcriber.vocabulary
        var rows: [[Float]] = []
        func row(_ id: Int) -> [Float] { (0..<v.count).map { $0 == id ? 10 : 0 } }
        let blank = v.blankID
        let h = (0..<v.count).first { v.token($0) == "H" }!, i = (0..<v.count).first { v.token($0) == "I" }!
        let delimiter = (0..<v.count).first { v.token($0) == v.wordDelimiter }!
        for id in [blank, h, h, i, blank, delimiter, i, blank] { rows.append(row(id)) }
        let e = Emissions(frames: rows.count, vocabularySize: v.count, logits: rows.flatMap { $0 }, frameDuration: 0.02)
        let decoder = try BeamSearchDecoder(vocabulary: v, languageModel: nil)
        let t = transcriber.decode(e, duration: 0.16, decoder: decoder)
        XCTAssertEqual(t.text, "HI I")
        XCTAssertEqual(t.words.map(\.text), ["HI", "I"])
        XCTAssertEqual(t.words[0].start, 0.02, accuracy: 1e-9)
        XCTAssertEqual(t.words[0].end, 0.08, accuracy: 1e-9)
        XCTAssertEqual(t.words[1].start, 0.12, accuracy: 1e-9)
        XCTAssertGreaterThan(t.words[0].confidence, 0.99)
    }
}

/// The ARPA reader and back-off scoring, against hand-computed values and against KenLM.
final class NGramLanguageModelTests: XCTestCase {
    let small = """
        Some tools write a preamble before the data section.
        \\data\\
        ngram 1=5
        ngram 2=3
        ngram 3=1

        \\1-grams:
        -1.5\t<unk>
        -99\t<s>\t-0.4
        -0.8\t</s>
        -0.7 A -0.2
        -0.9\tB\t-0.1

        \\2-grams:
        -0.3\t<s> A\t-0.05
        -0.4\tA B\t-0.15
        -0.6\tB </s>

        \\3-grams:
        -0.1\t<s> A B

        \\end\\

        """

    func load(_ text: String) throws -> NGramLanguageModel {
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("lm.arpa")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return try NGramLanguageModel(arpa: url.path)
    }

    func testBackoffArithmetic() throws {
        let lm = try load(small)
        XCTAssertEqual(lm.order, 3)
        XCTAssertEqual(lm.counts, [5, 3, 1])
        let s = lm.wordID("<s>")!, a = lm.wordID("A")!, b = lm.wordID("B")!, end = lm.wordID("</s>")!
        XCTAssertEqual(lm.log10Probability(of: b, after: [s, a]), -0.1, accuracy: 1e-6)           // trigram
        XCTAssertEqual(lm.log10Probability(of: b, after: [b, a]), -0.4, accuracy: 1e-6)           // (B A) absent: bigram
        XCTAssertEqual(lm.log10Probability(of: a, after: [s, a]), -0.05 - 0.2 - 0.7, accuracy: 1e-6) // bo(<s> A) + bo(A) + p(A)
        XCTAssertEqual(lm.log10Probability(of: end, after: [a]), -0.2 - 0.8, accuracy: 1e-6)
        XCTAssertEqual(lm.log10Probability(of: lm.unknownID, after: []), -1.5, accuracy: 1e-6)
        XCTAssertNil(lm.wordID("C"))
        // Whole sentence: <s> A B </s> = p(A|<s>) + p(B|<s> A) + p(</s>|A B) = -0.3 - 0.1 + (bo(A B) + p(</s>|B)).
        XCTAssertEqual(lm.log10Probability(sentence: "A B"), -0.3 - 0.1 - 0.15 - 0.6, accuracy: 1e-5)
    }

    func testMissingUnknownGetsKenLMsDefault() throws {
        let lm = try load("\\data\\\nngram 1=3\n\n\\1-grams:\n-1\t<s>\n-1\t</s>\n-1\tX\n\n\\end\\\n")
        XCTAssertEqual(lm.log10Probability(of: lm.wordID("<unk>")!, after: []), -100)
        XCTAssertEqual(lm.log10Probability(sentence: "Y"), -1 - 100, accuracy: 1e-4)
    }

    /// Sentence scores equal the kenlm Python module's on committed lmplz models (orders 3 and 4, plain and gzip).
    func testScoresMatchKenLM() throws {
        let dir = Fixtures.root.appendingPathComponent("lm")
        let lines = try String(contentsOf: dir.appendingPathComponent("tiny_corpus.kenlm_scores.tsv"), encoding: .utf8)
            .split(separator: "\n").filter { !$0.hasPrefix("#") }
        var models: [String: NGramLanguageModel] = [:]
        var checked = 0
        for line in lines {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            let model = try models[fields[0]] ?? NGramLanguageModel(arpa: dir.appendingPathComponent(fields[0]).path)
            models[fields[0]] = model
            XCTAssertEqual(Double(model.log10Probability(sentence: fields[1])), Double(fields[2])!, accuracy: 2e-4, fields[1])
            checked += 1
        }
        XCTAssertEqual(checked, 100)
        let gz = try NGramLanguageModel(arpa: dir.appendingPathComponent("tiny_corpus.lmplz.order3.arpa.gz").path)
        let plain = models["tiny_corpus.lmplz.order3.arpa"]!
        XCTAssertEqual(gz.counts, plain.counts)
        for line in lines.prefix(50) {
            let sentence = String(line.split(separator: "\t")[1])
            XCTAssertEqual(gz.log10Probability(sentence: sentence), plain.log10Probability(sentence: sentence))
        }
    }

    func testMalformedFilesAreClearErrors() throws {
        func expectError(_ text: String, _ fragment: String, file: StaticString = #filePath, line: UInt = #line) {
            XCTAssertThrowsError(try load(text), file: file, line: line) { error in
                XCTAssertTrue("\(error)".contains(fragment), "\(error)", file: file, line: line)
            }
        }
        expectError("hello\n", "no \\data\\")
        expectError("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\tA\n\\end\\\n", "section ends after 1 1-grams")
        expectError("\\data\\\nngram 1=1\n\n\\1-grams:\n-1\tA\n-1\tB\n\\end\\\n", "expected '\\end\\'")
        expectError("\\data\\\nngram 1=1\nngram 2=1\n\n\\1-grams:\n-1\tA\n\n\\2-grams:\n-1\tA B\n\\end\\\n", "'B' of a 2-gram is not among the unigrams")
        expectError("\\data\\\nngram 1=1\n\n\\1-grams:\nx\tA\n\\end\\\n", "'x' is not a number")
        expectError("\\data\\\nngram 1=1\n\n\\1-grams:\n0.5\tA\n\\end\\\n", "positive")
        expectError("\\data\\\nngram 1=2\n\n\\1-grams:\n-1\tA\n-1\tA\n\\end\\\n", "appears twice")
        expectError("\\data\\\nngram 1=1\n\n\\1-grams:\n-1\tA\n", "no \\end\\")
        expectError("\\data\\\nngram 2=1\n", "out of order")
        expectError("\\data\\\nngram 1=1\n\n\\1-grams:\n-1\tA B C\n\\end\\\n", "more than 3 fields")
        expectError("\\data\\\nngram 1=17000000000\n", "more than a file of this size can hold")
        expectError("\\data\\\nngram 1=1\n\n\\1-grams:\n-1\tA\t123456789012345678e22\n\\end\\\n", "not finite")
        expectError(String(repeating: "not an arpa file\n", count: 5000) + "\\data\\\n", "no \\data\\ section at its start")
        XCTAssertThrowsError(try NGramLanguageModel(arpa: "/nonexistent/lm.arpa"))
    }

    func testTruncatedGzipIsAnError() throws {
        let data = try Data(contentsOf: Fixtures.root.appendingPathComponent("lm/tiny_corpus.lmplz.order3.arpa.gz"))
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("cut.arpa.gz")
        try data.prefix(data.count / 2).write(to: url)
        XCTAssertThrowsError(try NGramLanguageModel(arpa: url.path)) { error in
            XCTAssertTrue("\(error)".contains("cut.arpa.gz"), "\(error)")
        }
    }

    func testPyctcdecodeDirectoryLayout() throws {
        let dir = try Fixtures.temporaryDirectory().appendingPathComponent("language_model")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        try small.write(to: dir.appendingPathComponent("lm.arpa"), atomically: true, encoding: .utf8)
        try "{\"alpha\": 0.7, \"beta\": 2.0, \"unk_score_offset\": -8.0, \"score_boundary\": false}"
            .write(to: dir.appendingPathComponent("attrs.json"), atomically: true, encoding: .utf8)
        try "A\n".write(to: dir.appendingPathComponent("unigrams.txt"), atomically: true, encoding: .utf8)
        let (lm, options) = try DecodingLanguageModel.load(path: dir.path)
        XCTAssertEqual(options.alpha, 0.7)
        XCTAssertEqual(options.beta, 2.0)
        XCTAssertEqual(options.unknownWordPenalty, -8.0)
        XCTAssertFalse(options.scoreBoundary)
        XCTAssertEqual(lm.lexicon.count, 1, "unigrams.txt restricts the known words")
        try Data([0]).write(to: dir.appendingPathComponent("other.arpa"))
        XCTAssertThrowsError(try DecodingLanguageModel.load(path: dir.path)) { XCTAssertTrue("\($0)".contains("several ARPA files")) }
    }
}
