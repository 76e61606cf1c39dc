import Foundation

/// The CTC output alphabet: `vocab.json` (token → id) plus what the tokenizer configuration says about special
/// tokens. Decoding follows transformers' `Wav2Vec2CTCTokenizer`.
public struct Vocabulary: Sendable, Equatable {
    /// Token text per id; ids the files don't name decode as the unknown token.
    public let tokens: [String?]
    /// The CTC blank: the configuration's `pad_token_id`.
    public let blankID: Int
    /// The token that separates words ("|" by default), mapped to `wordDelimiterReplacement` in text.
    public let wordDelimiter: String
    /// The text `wordDelimiter` becomes in transcripts (a space by default).
    public let wordDelimiterReplacement: String
    /// The tokenizer's unknown token ("<unk>" by default), written as "⁇" by the beam search.
    public let unknownToken: String
    /// Whether decoded text is lower-cased (the tokenizer's `do_lower_case`).
    public let lowercaseOutput: Bool
    /// transformers' `clean_up_tokenization_spaces` (" ." → "." and similar), off unless the tokenizer asks.
    public let cleanUpTokenizationSpaces: Bool

    /// Number of token IDs (the model's vocabulary size).
    public var count: Int { tokens.count }

    /// A vocabulary from `tokens` indexed by ID (nil for an unused ID); the defaults are transformers'.
    public init(
        tokens: [String?], blankID: Int, wordDelimiter: String = "|", wordDelimiterReplacement: String = " ",
        unknownToken: String = "<unk>", lowercaseOutput: Bool = false, cleanUpTokenizationSpaces: Bool = false
    ) {
        self.tokens = tokens
        self.blankID = blankID
        self.wordDelimiter = wordDelimiter
        self.wordDelimiterReplacement = wordDelimiterReplacement
        self.unknownToken = unknownToken
        self.lowercaseOutput = lowercaseOutput
        self.cleanUpTokenizationSpaces = cleanUpTokenizationSpaces
    }

    /// Whether every word of `phrase` can be written in this vocabulary's tokens (a letter the vocabulary has only in
    /// the other case is folded to it, as the beam search folds it): what a hotword needs.
    public func canSpell(_ phrase: String) -> Bool {
        let alphabet = BeamSearchDecoder.Alphabet(vocabulary: self)
        return phrase.split(whereSeparator: \.isWhitespace).allSatisfy { alphabet.respell(String($0)) != nil }
    }

    /// The token text of `id` as transformers' `convert_ids_to_tokens` gives it.
    public func token(_ id: Int) -> String {
        guard id >= 0, id < tokens.count, let token = tokens[id] else { return unknownToken }
        return token
    }

    /// Loads `vocab.json`, `added_tokens.json`, `tokenizer_config.json` and `special_tokens_map.json` from a model
    /// directory. `vocabSize` and `padTokenID` come from `config.json`.
    public static func load(directory: URL, vocabSize: Int, padTokenID: Int) throws -> Vocabulary {
        try load(.directory(directory), vocabSize: vocabSize, padTokenID: padTokenID)
    }

    /// The languages of a multilingual (MMS) `vocab.json` ({lang: {token: id}}), sorted, and the tokenizer's
    /// `target_lang`; nil when the vocabulary is a single one.
    static func languages(_ files: ModelFiles) throws -> (languages: [String], target: String?)? {
        guard let members = try files.json("vocab.json")?.objectMembers,
              members.contains(where: { $0.1.objectMembers != nil }) else { return nil }
        let target = try files.json("tokenizer_config.json")?.objectMembers?.first(where: { $0.0 == "target_lang" })?.1.stringValue
        return (members.map(\.0).sorted(), target)
    }

    /// `language` picks one vocabulary of a multilingual (MMS) `vocab.json`; nil takes the tokenizer's
    /// `target_lang`, as transformers' `Wav2Vec2CTCTokenizer` does.
    static func load(_ files: ModelFiles, vocabSize: Int, padTokenID: Int, language: String? = nil) throws -> Vocabulary {
        guard let vocabJSON = try files.json("vocab.json") else {
            throw ASRError.missingModelFile(directory: files.location, file: "vocab.json")
        }
        guard var entries = vocabJSON.objectMembers else {
            throw ASRError.invalidVocabulary(file: "vocab.json", reason: "expected an object of token → id")
        }
        if let (languages, target) = try languages(files) {
            guard let chosen = language ?? target else {
                throw ASRError.invalidLanguage(
                    language: nil, reason: "vocab.json holds one vocabulary per language and tokenizer_config.json names no "
                        + "target_lang: choose one", available: languages)
            }
            guard let inner = entries.first(where: { $0.0 == chosen })?.1.objectMembers else {
                throw ASRError.invalidLanguage(language: chosen, reason: "not in vocab.json", available: languages)
            }
            entries = inner
        } else if let language {
            throw ASRError.invalidLanguage(language: language, reason: "this model has one vocabulary, not one per language "
                                            + "(languages are chosen only with MMS-style checkpoints)", available: [])
        }
        var tokens = [String?](repeating: nil, count: vocabSize)
        /// Tokens the tokenizer adds on top of vocab.json (typically `<s>`/`</s>`) may lie past the model's
        /// output layer; the model can never emit them, so they are skipped rather than refused.
        func add(_ token: String, _ value: JSONValue, file: String, skipBeyondVocabSize: Bool = false) throws {
            guard let id = value.intValue else {
                throw ASRError.invalidVocabulary(file: file, reason: "id of token \"\(token)\" is not an integer")
            }
            if skipBeyondVocabSize && id >= vocabSize { return }
            guard id >= 0, id < vocabSize else {
                throw ASRError.invalidVocabulary(
                    file: file, reason: "token \"\(token)\" has id \(id), outside the model's vocab_size \(vocabSize)")
            }
            if let existing = tokens[id], existing != token {
                throw ASRError.invalidVocabulary(file: file, reason: "id \(id) is given to both \"\(existing)\" and \"\(token)\"")
            }
            tokens[id] = token
        }
        for (token, value) in entries { try add(token, value, file: "vocab.json") }

        if let addedJSON = try files.json("added_tokens.json") {
            guard let added = addedJSON.objectMembers else {
                throw ASRError.invalidVocabulary(file: "added_tokens.json", reason: "expected an object of token → id")
            }
            for (token, value) in added { try add(token, value, file: "added_tokens.json", skipBeyondVocabSize: true) }
        }

        // Settings: tokenizer_config.json, then special_tokens_map.json (either may be absent).
        var settings: [String: JSONValue] = [:]
        for name in ["tokenizer_config.json", "special_tokens_map.json"] {
            guard let json = try files.json(name) else { continue }
            guard let members = json.objectMembers else {
                throw ASRError.malformedJSON(file: name, reason: "expected an object")
            }
            for (key, value) in members where settings[key] == nil { settings[key] = value }
            if name == "tokenizer_config.json", let decoder = settings["added_tokens_decoder"]?.objectMembers {
                for (idText, value) in decoder {
                    guard let id = Int(idText), let content = value.objectMembers?.first(where: { $0.0 == "content" })?.1.stringValue
                    else { continue }
                    try add(content, .integer(id), file: name, skipBeyondVocabSize: true)
                }
            }
        }
        /// A special token is written either as a string or as {"content": ...}.
        func special(_ key: String) -> String? {
            guard let value = settings[key] else { return nil }
            if let s = value.stringValue { return s }
            return value.objectMembers?.first(where: { $0.0 == "content" })?.1.stringValue
        }
        func flag(_ key: String) -> Bool? {
            if case .bool(let b)? = settings[key] { return b }
            return nil
        }

        if let padToken = special("pad_token"), let blankToken = tokens[padTokenID], padToken != blankToken {
            throw ASRError.invalidVocabulary(
                file: "tokenizer_config.json",
                reason: "pad token \"\(padToken)\" is not the token \"\(blankToken)\" of config.json's pad_token_id \(padTokenID)")
        }
        guard tokens[padTokenID] != nil else {
            throw ASRError.invalidVocabulary(file: "vocab.json", reason: "no token has the blank id \(padTokenID) (config.json's pad_token_id)")
        }
        let delimiter = special("word_delimiter_token") ?? "|"
        return Vocabulary(
            tokens: tokens, blankID: padTokenID, wordDelimiter: delimiter,
            wordDelimiterReplacement: special("replace_word_delimiter_char") ?? " ",
            unknownToken: special("unk_token") ?? "<unk>",
            lowercaseOutput: flag("do_lower_case") ?? false,
            cleanUpTokenizationSpaces: flag("clean_up_tokenization_spaces") ?? false)
    }
}
