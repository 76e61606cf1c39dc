import ArgumentParser
import ASRKit
import Foundation

struct Quantize: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a bf16 or int8 copy of a checkpoint: smaller files that load faster at that precision.",
        discussion: """
            bf16 writes a normal BF16 safetensors checkpoint (transformers loads it too); int8 writes the asr_int8 \
            format (int8 Linear weights with per-output-channel F32 scales, recorded in config.json; see the README), \
            which `--precision int8` uses as stored. config.json, vocab.json and the tokenizer and preprocessor \
            configurations are copied. An already-quantized model is refused.
            """)

    @Argument(help: "The source checkpoint directory, or a Hugging Face model id found in the local cache.")
    var input: String

    @Argument(help: "The directory to write (created; it must be absent or empty unless --overwrite).")
    var output: String

    /// The precisions a checkpoint can be quantized to (fp32 is not one: the help lists only these).
    enum Target: String, ExpressibleByArgument, CaseIterable {
        case bf16, int8
        var precision: Precision { self == .bf16 ? .bf16 : .int8 }
    }

    @Option(name: .customLong("precision"), help: ArgumentHelp("bf16 or int8.", valueName: "precision"))
    var target: Target

    @Flag(help: "Replace OUTPUT if it exists and holds files.")
    var overwrite = false

    private var precision: Precision { target.precision }

    func run() async throws {
        do {
            let source = try ModelLocator.resolve(input)
            let report = try ModelQuantizer.quantize(
                modelDirectory: source, to: URL(fileURLWithPath: output), precision: precision, overwrite: overwrite)
            let ratio = Double(report.inputWeightBytes) / Double(max(1, report.outputWeightBytes))
            print("\(precision.rawValue): \(source.path) -> \(report.output.path)")
            print("weights before: \(Self.size(report.inputWeightBytes)) (\(report.inputWeightTypes.joined(separator: ", ")))")
            print("weights after:  \(Self.size(report.outputWeightBytes)) (\(report.outputWeightTypes.joined(separator: ", "))), "
                  + String(format: "%.2f× smaller", ratio))
            let what = precision == .int8 ? "Linear weights quantized to int8" : "tensors converted to BF16"
            print("\(report.convertedCount) \(what); copied: config.json (rewritten)"
                  + report.copiedFiles.map { ", " + $0 }.joined())
        } catch {
            throw report(error)
        }
    }

    /// "166752 bytes (0.17 MB)".
    static func size(_ bytes: Int) -> String { String(format: "%d bytes (%.2f MB)", bytes, Double(bytes) / 1e6) }
}
