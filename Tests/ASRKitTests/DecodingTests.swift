import Foundation
import Testing
@testable import ASRKit

@Suite struct CTCGreedyDecoderTests {
    // base-960h's layout: <pad>=0 <s>=1 </s>=2 <unk>=3 |=4, then letters.
    static let letters = Array("ETAONIHSRDLUMWCFGYPBVK'XJQZ").map(String.init)
    static let vocabulary = Vocabulary(tokens: ["<pad>", "<s>", "</s>", "<unk>", "|"] + letters, blankID: 0)
    static func id(_ c: Character) -> Int {
        if c == "|" { return 4 }
        return 5 + letters.firstIndex(of: String(c))!
    }
    static func path(_ pattern: String) -> [Int] { pattern.map { $0 == "_" ? 0 : id($0) } }

    @Test func blankBetweenEqualLettersKeepsBoth() {
        let decoded = CTCGreedyDecoder.decode(path: Self.path("HHE_LL_L_OO"), vocabulary: Self.vocabulary)
        #expect(decoded.text == "HELLO")
    }

    @Test func repeatsWithoutBlankCollapse() {
        #expect(CTCGreedyDecoder.decode(path: Self.path("HHHEEELLLLOOO"), vocabulary: Self.vocabulary).text == "HELO")
    }

    @Test func delimiterBecomesSpaceAndEdgesAreTrimmed() {
        #expect(CTCGreedyDecoder.decode(path: Self.path("||A_|_B||"), vocabulary: Self.vocabulary).text == "A B")
        // transformers does not collapse inner runs: "|", blank, "|" stays two spaces.
        #expect(CTCGreedyDecoder.decode(path: Self.path("A|_|B"), vocabulary: Self.vocabulary).text == "A  B")
    }

    @Test func specialTokensAreSpelledOutAsTransformersDoes() {
        let decoded = CTCGreedyDecoder.decode(path: [1, 5, 2, 3], vocabulary: Self.vocabulary)
        #expect(decoded.text == "<s>E</s><unk>")
    }

    @Test func allBlankIsEmpty() {
        #expect(CTCGreedyDecoder.decode(path: [0, 0, 0], vocabulary: Self.vocabulary).text == "")
        #expect(CTCGreedyDecoder.decode(path: [], vocabulary: Self.vocabulary).text == "")
    }

    @Test func characterSpansCoverTheirFrames() {
        let decoded = CTCGreedyDecoder.decode(path: Self.path("_HH_I|"), vocabulary: Self.vocabulary)
        #expect(decoded.characters == [
            CharacterSpan(text: "H", startFrame: 1, endFrame: 3),
            CharacterSpan(text: "I", startFrame: 4, endFrame: 5),
            CharacterSpan(text: " ", startFrame: 5, endFrame: 6, isWordDelimiter: true),
        ])
    }

    @Test func blankNeedNotBeIdZero() {
        let vocabulary = Vocabulary(tokens: ["|", "a", "b", "[UNK]", "[PAD]"], blankID: 4, unknownToken: "[UNK]")
        let decoded = CTCGreedyDecoder.decode(path: [4, 1, 1, 4, 1, 0, 2, 4, 9], vocabulary: vocabulary)
        #expect(decoded.text == "aa b[UNK]")
    }

    @Test func lowercaseAndCleanUpFollowTheTokenizerConfig() {
        let vocabulary = Vocabulary(tokens: ["<pad>", "|", "A", "'", "S", "."], blankID: 0, lowercaseOutput: true,
                                    cleanUpTokenizationSpaces: true)
        #expect(CTCGreedyDecoder.decode(path: [2, 1, 3, 4, 1, 5], vocabulary: vocabulary).text == "a's.")
    }

    @Test func argmaxTakesTheFirstOfEqualMaxima() {
        let path = CTCGreedyDecoder.bestPath(logits: [1, 3, 3, 0, 5, 5, 5, 5], frames: 2, vocabularySize: 4)
        #expect(path == [1, 0])
    }
}

@Suite struct VocabularyTests {
    func directory(_ files: [String: String]) throws -> URL {
        let dir = try Fixtures.temporaryDirectory()
        for (name, text) in files { try text.write(to: dir.appendingPathComponent(name), atomically: true, encoding: .utf8) }
        return dir
    }

    @Test func readsSpecialTokensFromTheTokenizerConfig() throws {
        let dir = try directory([
            "vocab.json": #"{"[PAD]": 3, "[UNK]": 2, "a": 0, "|": 1}"#,
            "tokenizer_config.json": #"{"pad_token": "[PAD]", "unk_token": {"content": "[UNK]"}, "word_delimiter_token": "|", "do_lower_case": true}"#,
        ])
        let v = try Vocabulary.load(directory: dir, vocabSize: 4, padTokenID: 3)
        #expect(v.blankID == 3 && v.unknownToken == "[UNK]" && v.lowercaseOutput)
    }

    @Test func refusesIdsBeyondTheModelsOutputs() throws {
        let dir = try directory(["vocab.json": #"{"<pad>": 0, "a": 7}"#])
        #expect(throws: ASRError.invalidVocabulary(file: "vocab.json", reason: "token \"a\" has id 7, outside the model's vocab_size 2")) {
            try Vocabulary.load(directory: dir, vocabSize: 2, padTokenID: 0)
        }
    }

    @Test func skipsAddedTokensTheModelCannotEmit() throws {
        let dir = try directory(["vocab.json": #"{"<pad>": 0, "a": 1}"#, "added_tokens.json": #"{"<s>": 2, "</s>": 3}"#])
        let v = try Vocabulary.load(directory: dir, vocabSize: 2, padTokenID: 0)
        #expect(v.count == 2)
    }

    @Test func padTokenMustBeTheBlank() throws {
        let dir = try directory(["vocab.json": #"{"<pad>": 0, "a": 1}"#, "tokenizer_config.json": #"{"pad_token": "a"}"#])
        #expect(throws: ASRError.self) { try Vocabulary.load(directory: dir, vocabSize: 2, padTokenID: 0) }
    }

    @Test func refusesNestedMultilingualVocabularies() throws {
        let dir = try directory(["vocab.json": #"{"eng": {"<pad>": 0}, "fra": {"<pad>": 0}}"#])
        #expect(throws: ASRError.self) { try Vocabulary.load(directory: dir, vocabSize: 1, padTokenID: 0) }
    }

    @Test func refusesDuplicateTokensAndMalformedJSON() throws {
        let dup = try directory(["vocab.json": #"{"a": 0, "a": 1}"#])
        #expect(throws: ASRError.self) { try Vocabulary.load(directory: dup, vocabSize: 2, padTokenID: 0) }
        let bad = try directory(["vocab.json": #"{"a": 0,"#])
        #expect(throws: ASRError.self) { try Vocabulary.load(directory: bad, vocabSize: 2, padTokenID: 0) }
    }
}
