import ArgumentParser
import ASRKit
import Foundation

/// `asr lm …`: n-gram language models for decoding.
struct LM: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lm",
        abstract: "Build n-gram language models (ARPA) for decoding.",
        subcommands: [Build.self])

    struct Build: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Estimate a modified Kneser-Ney n-gram model from a text file and write it as ARPA.",
            discussion: """
                The corpus is UTF-8 text, one sentence per line, words separated by spaces or tabs; <s> and </s> \
                are added around each line. The estimate follows KenLM's lmplz (same counts, discounts, \
                interpolation and unigram treatment), and KenLM's tools read the output.

                Counting is in memory: about 100 bytes per distinct n-gram at the peak (measured: 3.3 M words at \
                order 4, 4 M n-grams, 0.4 GB and 5 s).
                """)

        @Argument(help: "Training text, one sentence per line.")
        var corpus: String

        @Option(name: .shortAndLong, help: "Output ARPA file (written atomically).")
        var output: String

        @Option(help: "N-gram order, \(KneserNeyBuilder.supportedOrders.lowerBound) to \(KneserNeyBuilder.supportedOrders.upperBound).")
        var order: Int = 3

        @Flag(help: "Upper-case every word (our acoustic models spell in capitals).")
        var uppercase = false

        @Flag(help: "Keep only letters and apostrophes: other characters split words, words without a letter are dropped.")
        var lettersOnly = false

        @Flag(help: "Drop <s>, </s> and <unk> found in the text (default: refuse them, as lmplz does).")
        var skipSymbols = false

        @Flag(help: "Fail when an order's discounts cannot be estimated (tiny or repetitive text) instead of using lmplz's fallback discounts 0.5, 1, 1.5 with a warning.")
        var strictDiscounts = false

        func validate() throws {
            guard KneserNeyBuilder.supportedOrders.contains(order) else {
                throw ValidationError("--order must be \(KneserNeyBuilder.supportedOrders.lowerBound) to \(KneserNeyBuilder.supportedOrders.upperBound)")
            }
            guard !output.isEmpty else { throw ValidationError("--output must not be empty") }
            let input = URL(fileURLWithPath: corpus).standardizedFileURL.path
            guard input != URL(fileURLWithPath: output).standardizedFileURL.path else {
                throw ValidationError("the output would overwrite the corpus")
            }
        }

        func run() async throws {
            let start = Date()
            do {
                var normalization: KneserNeyBuilder.Normalization = []
                if uppercase { normalization.insert(.uppercase) }
                if lettersOnly { normalization.insert(.lettersOnly) }
                var builder = try KneserNeyBuilder(order: order, normalization: normalization, skipSpecialTokens: skipSymbols)
                if strictDiscounts { builder.discountFallback = nil }
                try builder.add(contentsOf: URL(fileURLWithPath: corpus))
                let model = try builder.build()
                for warning in model.warnings {
                    FileHandle.standardError.write(Data("warning: \(warning)\n".utf8))
                }
                try model.writeARPA(to: URL(fileURLWithPath: output))
                let counts = model.ngramCounts.enumerated().map { "\($0.offset + 1)-grams \($0.element)" }.joined(separator: ", ")
                let seconds = String(format: "%.2f", Date().timeIntervalSince(start))
                print("\(output): order \(order), \(model.sentenceCount) sentences, \(model.wordCount) words, "
                      + "vocabulary \(builder.vocabularySize); \(counts); \(seconds) s")
            } catch {
                throw report(error)
            }
        }
    }
}
