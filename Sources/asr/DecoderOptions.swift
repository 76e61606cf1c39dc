import ArgumentParser
import ASRKit
import Foundation

/// How emissions become text: greedy by default; CTC prefix beam search when a language model (given, or found
/// in the model directory's `language_model/`), hotwords or a beam width are asked for.
struct DecoderOptions: ParsableArguments {
    @Option(name: .long, help: ArgumentHelp(
        "An ARPA n-gram language model (.arpa or .arpa.gz) or a directory holding one (pyctcdecode's language_model/ layout).",
        discussion: "A model directory's language_model/ is used automatically unless --no-lm is given."))
    var lm: String?

    @Flag(name: .long, help: "Ignore the language model found in the model directory.")
    var noLm = false

    @Option(name: .long, parsing: .unconditional, help: "Beam width (beam search is used when given, or with --lm / --hotword; default 32).")
    var beam: Int?

    @Option(name: .long, parsing: .unconditional, help: "Language model weight α (default 0.5, or the LM directory's attrs.json).")
    var alpha: Double?

    @Option(name: .long, parsing: .unconditional, help: "Word insertion bonus β (default 1.5, or the LM directory's attrs.json).")
    var beta: Double?

    @Option(name: .long, parsing: .unconditional, help: "Penalty (log10) for words the language model does not know (default -10).")
    var unkPenalty: Double?

    @Option(name: .long, parsing: .unconditional, help: "Drop hypotheses more than this far (natural log) below the best (default -10).")
    var beamPrune: Double?

    @Option(name: .long, parsing: .unconditional, help: "Only try tokens whose log probability at a frame is at least this (default -5).")
    var tokenMinLogp: Double?

    @Option(name: .long, help: ArgumentHelp(
        "A word or phrase to favour, optionally with a weight: \"Kubernetes\" or \"Kubernetes:8\" (repeatable; default weight 10).",
        valueName: "word[:weight]"))
    var hotword: [String] = []

    func validate() throws {
        if lm != nil && noLm { throw ValidationError("--lm and --no-lm contradict each other") }
        if let beam, beam < 1 || beam > 100_000 { throw ValidationError("--beam must be in 1...100000") }
        for (name, value) in [("--alpha", alpha), ("--beta", beta), ("--unk-penalty", unkPenalty),
                              ("--beam-prune", beamPrune), ("--token-min-logp", tokenMinLogp)] {
            if let value, !value.isFinite { throw ValidationError("\(name) must be a finite number") }
        }
        if let beamPrune, beamPrune > 0 { throw ValidationError("--beam-prune must be ≤ 0") }
        if let tokenMinLogp, tokenMinLogp > 0 { throw ValidationError("--token-min-logp must be ≤ 0") }
        for spec in hotword {
            do { _ = try Hotword(parsing: spec) } catch ASRError.invalidHotword(let word, let reason) {
                throw ValidationError("--hotword '\(word)': \(reason)")
            }
        }
    }

    /// The settings laid over the language model's (shared with `asr serve`).
    var recipe: DecoderRecipe {
        get throws {
            var recipe = DecoderRecipe()
            recipe.beam = beam
            recipe.alpha = alpha
            recipe.beta = beta
            recipe.unknownWordPenalty = unkPenalty
            recipe.beamPruneThreshold = beamPrune
            recipe.tokenMinLogProbability = tokenMinLogp
            recipe.hotwords = try hotword.map { try Hotword(parsing: $0) }
            // ASR_BEAM_TRACE=1: every frame's kept hypotheses on stderr (debugging; the library reads no environment).
            if ProcessInfo.processInfo.environment["ASR_BEAM_TRACE"] != nil {
                recipe.trace = BeamTrace { FileHandle.standardError.write(Data(($0 + "\n").utf8)) }
            }
            return recipe
        }
    }

    /// The language model to decode with: --lm, else the model directory's language_model/ unless --no-lm (nil when
    /// there is none, or when the bundled one cannot be used: a warning says why). Progress and warnings go to stderr.
    func loadLanguageModel(for transcriber: Transcriber, quiet: Bool = false) throws -> DecoderRecipe.LoadedLanguageModel? {
        guard let lmPath = lm ?? (noLm ? nil : DecoderRecipe.bundledLanguageModelPath(for: transcriber)) else { return nil }
        let started = DispatchTime.now().uptimeNanoseconds
        do {
            let (loaded, fromDirectory) = try DecodingLanguageModel.load(path: lmPath, options: BeamSearchOptions())
            let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
            let counts = loaded.model.counts.enumerated().map { "\($0.offset + 1)-grams \($0.element)" }
            if !quiet { FileHandle.standardError.write(Data(
                "language model: \(lmPath) (\(counts.joined(separator: ", ")); loaded in \(String(format: "%.2f", seconds)) s)\n".utf8)) }
            let spellable = loaded.spellableFraction(by: transcriber.vocabulary)
            if spellable < 0.5 {
                FileHandle.standardError.write(Data(
                    "warning: only \(Int(spellable * 100))% of the language model's words can be written with the model's alphabet (letter case? build it with `asr lm build --uppercase`)\n".utf8))
            }
            return (loaded, fromDirectory)
        } catch where lm == nil {
            // Found, not asked for (e.g. a hub "-with-lm" repository holding only a KenLM binary): say why it is
            // not used and go on without it rather than fail.
            FileHandle.standardError.write(Data("warning: not using the model's language model: \(error)\n".utf8))
            return nil
        }
    }

    /// The decoder to use with `transcriber`, or nil for greedy decoding.
    func makeDecoder(for transcriber: Transcriber, quiet: Bool = false) throws -> (any CTCDecoder)? {
        let recipe = try recipe
        // Loading the language model is skipped when nothing else asks for beam search and there is none to find.
        do {
            return try recipe.makeDecoder(vocabulary: transcriber.vocabulary, languageModel: try loadLanguageModel(for: transcriber, quiet: quiet))
        } catch ASRError.invalidHotword(let word, let reason) {
            // A hotword the model cannot write is a usage error (exit 2), like any other bad option value.
            throw usageError("--hotword '\(word)': \(reason)")
        }
    }
}
