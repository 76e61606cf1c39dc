import ArgumentParser
import ASRKit
import Foundation

/// Decodes saved emissions (`asr logits` output), so decoder settings can be tried without running the model again.
struct Decode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode saved CTC emissions (.npy from `asr logits`) with the greedy or beam-search decoder.",
        discussion: "Prints one line per file: the transcript, preceded by the path and a tab when several files are given. --timing adds the decoding time to stderr.")

    // Only the model's vocabulary and frame duration are used: no --threads or --precision (nothing runs the model).
    @Option(name: .long, help: "The checkpoint the emissions came from: a directory or a cached Hugging Face model id (default: the built-in model).")
    var model: String?

    @Flag(name: .long, help: "Diagnostics on stderr.")
    var verbose = false

    @OptionGroup(title: "Decoding") var decoderOptions: DecoderOptions

    @Argument(help: "Emission files (.npy, frames × vocabulary float32).")
    var files: [String]

    @Flag(help: "Report the decoding time per file on stderr.")
    var timing = false

    @Flag(name: .shortAndLong, help: "No notes on stderr.")
    var quiet = false

    func validate() throws {
        guard !files.isEmpty else { throw ValidationError("give at least one .npy file") }
    }

    func run() async throws {
        let transcriber: Transcriber
        let decoder: any CTCDecoder
        do {
            // No demo-model note: decoding saved emissions says nothing about the model's accuracy.
            transcriber = try ModelOptions.load(
                model: model, precision: .fp32, threads: 1, logger: ModelOptions.logger(verbose: verbose), quiet: true)
            decoder = try decoderOptions.makeDecoder(for: transcriber, quiet: quiet) ?? GreedyDecoder(vocabulary: transcriber.vocabulary)
        } catch {
            throw report(error)
        }
        var failed = 0
        for file in files {
            do {
                let data = try Files.read(file) { ASRError.invalidArrayFile(file: file, reason: "cannot read: \($0)") }
                let decoded: (values: [Float], shape: [Int])
                do {
                    decoded = try NPY.decode(data)
                } catch ASRError.invalidArrayFile(_, let reason) {
                    throw ASRError.invalidArrayFile(file: file, reason: reason)
                }
                let (values, shape) = decoded
                guard shape.count == 2, shape[1] == transcriber.vocabulary.count else {
                    throw ASRError.invalidArrayFile(
                        file: file, reason: "shape \(shape) is not frames × \(transcriber.vocabulary.count) (the model's vocabulary)")
                }
                // Like NaN audio: non-finite logits mean a broken file or model, and decoding them would print garbage.
                if let bad = values.firstIndex(where: { !$0.isFinite }) {
                    throw ASRError.invalidArrayFile(
                        file: file, reason: "logit \(values[bad]) at frame \(bad / shape[1]), token \(bad % shape[1]): the file holds NaN or infinite values")
                }
                let emissions = Emissions(frames: shape[0], vocabularySize: shape[1], logits: values, frameDuration: transcriber.frameDuration)
                let started = DispatchTime.now().uptimeNanoseconds
                let text = decoder.decode(emissions).text
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
                print(files.count > 1 ? "\(file)\t\(text)" : text)
                if timing {
                    FileHandle.standardError.write(Data(String(format: "%@: %d frames decoded in %.4f s\n", file, shape[0], elapsed).utf8))
                }
            } catch {
                failed += 1
                printError("\(error)")
            }
        }
        if failed > 0 { throw ExitStatus.failure }
    }
}
