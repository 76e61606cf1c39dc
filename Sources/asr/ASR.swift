import ArgumentParser
import ASRKit
import Foundation

@main
struct ASR: AsyncParsableCommand {
    static let version = "0.1.0"

    static let configuration = CommandConfiguration(
        commandName: "asr",
        abstract: "Speech recognition with Wav2Vec2 CTC models, natively.",
        version: "asr \(version) (OpenBLAS kernel: \(BLAS.kernel))",
        subcommands: [Transcribe.self, Logits.self, Info.self, Bench.self])

    /// ArgumentParser reports usage errors with EX_USAGE (64); our documented code for them is 2.
    static func main() async {
        var command: ParsableCommand
        do {
            command = try parseAsRoot()
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(ExitStatus.usage.rawValue)
            }
            exit(withError: error)
        }
        do {
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            exit(withError: error)
        }
    }
}

/// Options every command that runs a model shares.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "A Hugging Face Wav2Vec2ForCTC checkpoint directory.")
    var model: String

    @Option(name: .long, help: "BLAS threads (default: all cores).")
    var threads: Int?

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    func load() throws -> Transcriber {
        BLAS.setThreads(threads ?? 0)
        return try Transcriber(modelDirectory: URL(fileURLWithPath: model))
    }
}

/// Exit codes: 0 success, 1 a file or model could not be processed, 2 usage error.
enum ExitStatus {
    static let failure = ExitCode(1)
    static let usage = ExitCode(2)
}

func report(_ error: Error) -> ExitCode {
    FileHandle.standardError.write(Data("error: \(error)\n".utf8))
    return ExitStatus.failure
}

struct Transcribe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the transcript of an audio file.")

    @OptionGroup var modelOptions: ModelOptions

    @Argument(help: "Audio file to transcribe.")
    var file: String

    func run() async throws {
        do {
            let transcriber = try modelOptions.load()
            let result = try transcriber.transcribe(file: URL(fileURLWithPath: file))
            print(result.text)
        } catch {
            throw report(error)
        }
    }
}

struct Logits: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the CTC emissions (frames × vocab, float32 logits) of an audio file as a NumPy .npy file.")

    @OptionGroup var modelOptions: ModelOptions

    @Argument(help: "Audio file.")
    var file: String

    @Option(name: .shortAndLong, help: "Output .npy path.")
    var output: String

    func run() async throws {
        do {
            let transcriber = try modelOptions.load()
            let samples = try transcriber.loadAudio(file: URL(fileURLWithPath: file))
            let emissions = transcriber.emissions(samples: samples)
            let data = NPY.encode(emissions.logits, shape: [emissions.frames, emissions.vocabularySize])
            try AtomicFile.write(data, to: URL(fileURLWithPath: output))
        } catch {
            throw report(error)
        }
    }
}

struct Info: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Describe a model and the compute backend.")

    @Option(name: .long, help: "A Hugging Face Wav2Vec2ForCTC checkpoint directory.")
    var model: String?

    func run() async throws {
        let kernel = BLAS.initialize()
        print("asr \(ASR.version)")
        print("OpenBLAS: \(BLAS.configuration)")
        print("OpenBLAS kernel: \(kernel.active)\(kernel.override.map { " (\($0))" } ?? "")")
        print("BLAS threads: \(BLAS.threads)")
        guard let model else { return }
        do {
            let t = try Transcriber(modelDirectory: URL(fileURLWithPath: model))
            let c = t.configuration
            print("model: \(t.location)")
            print("architecture: \(c.architectures?.first ?? "Wav2Vec2ForCTC") (\(c.modelType)), "
                  + "\(c.doStableLayerNorm ? "stable pre-LN" : "post-LN") encoder, \(c.featExtractNorm.rawValue)-norm conv front end")
            print("parameters: \(t.parameterCount) (\(t.weightTypes.joined(separator: ", ")))")
            print("layers: \(c.numHiddenLayers) × hidden \(c.hiddenSize), \(c.numAttentionHeads) heads, FFN \(c.intermediateSize)")
            print("vocabulary: \(t.vocabulary.count) tokens, blank id \(t.vocabulary.blankID), word delimiter \"\(t.vocabulary.wordDelimiter)\"")
            print("sample rate: \(t.sampleRate) Hz, normalize: \(t.preprocessor.doNormalize)")
            print("frame stride: \(c.samplesPerFrame) samples (\(t.frameDuration * 1000) ms), receptive field \(c.receptiveField) samples")
        } catch {
            throw report(error)
        }
    }
}
