import Foundation

/// How decoding options become a decoder, shared by `asr transcribe` and `asr serve` so that both give the same
/// transcript for the same file and options. Greedy (nil) unless a language model, hotwords or a beam width are
/// given; otherwise a CTC prefix beam search starting from the language model's own options (its directory's
/// attrs.json) or the defaults, with the explicit values laid over them.
package struct DecoderRecipe: Sendable, Equatable {
    package var beam: Int?
    package var alpha: Double?
    package var beta: Double?
    package var unknownWordPenalty: Double?
    package var beamPruneThreshold: Double?
    package var tokenMinLogProbability: Double?
    package var hotwords: [Hotword] = []
    package var trace: BeamTrace?

    package init() {}

    /// A loaded language model with the options its directory asks for.
    package typealias LoadedLanguageModel = (model: DecodingLanguageModel, options: BeamSearchOptions)

    /// The decoder for `vocabulary`, or nil for greedy decoding.
    package func makeDecoder(vocabulary: Vocabulary, languageModel: LoadedLanguageModel?) throws -> (any CTCDecoder)? {
        guard languageModel != nil || !hotwords.isEmpty || beam != nil else { return nil }
        var options = languageModel?.options ?? BeamSearchOptions()
        if let beam { options.beamWidth = beam }
        if let alpha { options.alpha = alpha }
        if let beta { options.beta = beta }
        if let unknownWordPenalty { options.unknownWordPenalty = unknownWordPenalty }
        if let beamPruneThreshold { options.beamPruneThreshold = beamPruneThreshold }
        if let tokenMinLogProbability { options.tokenMinLogProbability = tokenMinLogProbability }
        options.hotwords = hotwords
        options.trace = trace
        return try BeamSearchDecoder(vocabulary: vocabulary, languageModel: languageModel?.model, options: options)
    }

    /// The model directory's `language_model/`, used when no language model is named and it is not turned off.
    package static func bundledLanguageModelPath(for transcriber: Transcriber) -> String? {
        let bundled = URL(fileURLWithPath: transcriber.location).appendingPathComponent("language_model")
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: bundled.path, isDirectory: &isDirectory), isDirectory.boolValue else { return nil }
        return bundled.path
    }
}
