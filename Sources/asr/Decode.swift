import ArgumentParser
import ASRKit
import Foundation

/// Decodes saved emissions (`asr logits` output), so decoder settings can be tried without running the model again.
struct Decode: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Decode saved CTC emissions (.npy from `asr logits`) with the greedy or beam-search decoder.",
        discussion: "Prints one line per file: the transcript, preceded by the path and a tab when several files are given. --timing adds the decoding time to stderr.")

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup(title: "Decoding") var decoderOptions: DecoderOptions

    @Argument(help: "Emission files (.npy, frames × vocabulary float32).")
    var files: [String]

    @Flag(help: "Report the decoding time per file on stderr.")
    var timing = false

    func validate() throws {
        guard !files.isEmpty else { throw ValidationError("give at least one .npy file") }
    }

    func run() async throws {
        let transcriber: Transcriber
        let decoder: any CTCDecoder
        do {
            transcriber = try modelOptions.load()
            decoder = try decoderOptions.makeDecoder(for: transcriber) ?? GreedyDecoder(vocabulary: transcriber.vocabulary)
        } catch {
            throw report(error)
        }
        var failed = 0
        for file in files {
            do {
                let (values, shape) = try NPY.decode(Data(contentsOf: URL(fileURLWithPath: file)))
                guard shape.count == 2, shape[1] == transcriber.vocabulary.count else {
                    throw ASRError.invalidArrayFile(
                        file: file, reason: "shape \(shape) is not frames × \(transcriber.vocabulary.count) (the model's vocabulary)")
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
                printError("\(file): \(error)")
            }
        }
        if failed > 0 { throw ExitStatus.failure }
    }
}
