import ArgumentParser
import ASRBuiltinModel
import ASRKit
import CKernels
import Foundation
import Logging

@main
struct ASR: AsyncParsableCommand {
    static let version = "0.2.0"

    static let configuration = CommandConfiguration(
        commandName: "asr",
        abstract: "Speech recognition with Wav2Vec2 CTC models, natively.",
        discussion: """
            Exit codes: 0 success; 1 some input or the model could not be processed (each failure is reported on \
            stderr with the file and the problem), or an output cannot be written (checked before any work); 2 usage \
            error (including inputs whose outputs would clash); 143 `transcribe` stopped by SIGTERM (after the file in \
            progress; the same command resumes).
            """,
        version: "asr \(version) (OpenBLAS kernel: \(BLAS.kernel))",
        subcommands: [
            Transcribe.self, Align.self, ManifestCommand.self, Logits.self, Decode.self, LM.self, Info.self, Bench.self, Download.self,
            Serve.self, Kernels.self, Quantize.self,
        ],
        defaultSubcommand: nil)

    /// ArgumentParser reports usage errors with EX_USAGE (64); our documented code for them is 2.
    static func main() async {
        // Past a file-size limit a write should fail with EFBIG and be reported like a full disk, not kill us.
        signal(SIGXFSZ, SIG_IGN)
        var command: ParsableCommand
        do {
            let arguments: [String]
            do {
                arguments = try DashNames.prepare(Array(CommandLine.arguments.dropFirst()))
            } catch let error as DashNames.Unknown {
                printError(error.description)
                Foundation.exit(ExitStatus.usage.rawValue)
            }
            command = try parseAsRoot(arguments)
            // A long-running server gives freed memory back (its RSS must not creep between requests); the batch and
            // one-shot commands keep it for reuse.
            if !(command is Serve) { keepFreedMemoryForReuse() }
        } catch {
            if exitCode(for: error) == .validationFailure {
                var message = fullMessage(for: error)
                if message.contains("Unknown option") || message.contains("Missing value for") {
                    message += "\n" + DashNames.hint
                }
                FileHandle.standardError.write(Data((message + "\n").utf8))
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
extension Precision: ExpressibleByArgument {}

struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "A checkpoint directory, or a Hugging Face model id found in the local cache (default: the built-in model).")
    var model: String?

    @Option(name: .long, parsing: .unconditional, help: "BLAS threads (default: all cores).")
    var threads: Int?

    @Option(name: .long, help: ArgumentHelp(
        "For a multilingual (MMS) checkpoint: the language to run, as the checkpoint names it (e.g. fra); `asr info --model DIR` lists them.",
        discussion: "Default: the adapters stored in the model's weights, with the tokenizer's target_lang."))
    var language: String?

    @Option(name: .long, help: "Precision of the large matrix products: fp32 (default, exact), bf16 or int8 (faster; see the README).")
    var precision: Precision = .fp32

    @Flag(name: .long, help: "Diagnostics on stderr: how the model was loaded, resampling and chunking decisions.")
    var verbose = false

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    /// ASRKit's diagnostics on stderr: warnings always, debug messages with --verbose.
    var logger: Logger { Self.logger(verbose: verbose) }

    static func logger(verbose: Bool) -> Logger {
        var logger = Logger(label: "asr") { _ in StderrLogHandler() }
        logger.logLevel = verbose ? .debug : .warning
        return logger
    }

    /// Loads the model; warnings go to stderr, and (unless `quiet`) a note when it is the built-in demo model.
    func load(quiet: Bool = false) throws -> Transcriber {
        try Self.load(model: model, language: language, precision: precision, threads: threads, logger: logger, quiet: quiet)
    }

    /// Loads `model` (nil: the built-in one) with these settings, as ``load(quiet:)`` does.
    static func load(model: String?, language: String? = nil, precision: Precision, threads: Int?, logger: Logger,
                     quiet: Bool) throws -> Transcriber {
        // ASR_ATTENTION=fused|blas picks the attention implementation (for benchmarks); the library reads no
        // environment variables, the command line passes it in.
        let attention = ProcessInfo.processInfo.environment["ASR_ATTENTION"].flatMap(ExecutionOptions.Attention.init) ?? .automatic
        let execution = ExecutionOptions(threads: threads, attention: attention)
        let transcriber: Transcriber
        do {
            try refuseLanguageForBuiltin(language, model: model)
            transcriber = try model.map {
                try Transcriber(modelDirectory: ModelLocator.resolve($0), language: language, precision: precision,
                                execution: execution, logger: logger)
            } ?? BuiltinModel.load(precision: precision, execution: execution, logger: logger)
        } catch ASRError.modelNotCached(let id, let cache) {
            // The library names no commands; the command line says which one fetches the model.
            throw CommandLineError("\(ASRError.modelNotCached(id: id, cache: cache)); download it with `asr download \(id)`")
        }
        if model == nil && !quiet {
            FileHandle.standardError.write(Data((Self.builtinModelNote + "\n").utf8))
        }
        return transcriber
    }

    /// `--language` without `--model` names the built-in model, which has one vocabulary.
    static func refuseLanguageForBuiltin(_ language: String?, model: String?) throws {
        guard let language, model == nil else { return }
        throw ASRError.invalidLanguage(language: language, reason: "the built-in model has one vocabulary, not one per language",
                                       available: [])
    }

    /// Said on stderr whenever the built-in model is used (not with --quiet).
    static let builtinModelNote = """
        note: using the built-in demo model, trained on synthetic voices only: it gets most words of real recordings \
        wrong. For real speech: `asr download facebook/wav2vec2-base-960h`, then --model facebook/wav2vec2-base-960h.
        """
}

/// Exit codes: 0 success, 1 a file or model could not be processed, 2 usage error.
enum ExitStatus {
    static let failure = ExitCode(1)
    static let usage = ExitCode(2)
}

func printError(_ message: String) {
    FileHandle.standardError.write(Data("error: \(message)\n".utf8))
}

/// Prints `error` and returns exit status 1; an exit status already decided (a usage error printed where it was
/// found) passes through as it is.
func report(_ error: Error) -> ExitCode {
    if let code = error as? ExitCode { return code }
    printError("\(error)")
    return ExitStatus.failure
}

struct Logits: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the CTC emissions (frames × vocab, float32 logits) of an audio file as a NumPy .npy file.",
        discussion: """
            Long audio is cut into chunks exactly as `asr transcribe` cuts it (same defaults, same limits), so \
            `asr decode` of the file gives what `asr transcribe` prints; --chunk-seconds 0 runs one pass instead. \
            The audio may be - (standard input, any format), the output - (stdout); missing folders of the output \
            are created, and a FIFO, character device or symbolic link is written through (never replaced).
            """)

    @OptionGroup var modelOptions: ModelOptions

    @Argument(help: "Audio file (- for standard input).")
    var file: String

    @Option(name: .shortAndLong, help: "Output .npy path (- for stdout).")
    var output: String

    @Option(parsing: .unconditional, help: "Chunk length in seconds for long audio, as `transcribe` (0: one pass, however long).")
    var chunkSeconds: Double = ChunkingOptions.default.chunkSeconds

    @Option(parsing: .unconditional, help: "Context kept on each side of a chunk, in seconds.")
    var strideSeconds: Double = ChunkingOptions.default.strideSeconds

    @Flag(name: .shortAndLong, help: "No notes on stderr.")
    var quiet = false

    func validate() throws {
        if chunkSeconds != 0 { _ = try chunkingOptions(chunkSeconds: chunkSeconds, strideSeconds: strideSeconds) }
    }

    func run() async throws {
        var standardInput: StandardInput?
        do {
            // Before the model runs: the output must be writable.
            try Files.prepareOutput(output)
            if file == "-" { standardInput = try StandardInput() }
            let path = standardInput?.path ?? file
            let name = standardInput == nil ? nil : StandardInput.displayName
            let transcriber = try modelOptions.load(quiet: quiet)
            let emissions: Emissions
            if chunkSeconds > 0 {
                let progress = Progress(total: 1, enabled: false, live: !quiet)
                let started = DispatchTime.now().uptimeNanoseconds
                emissions = try transcriber.emissions(
                    file: URL(fileURLWithPath: path), name: name, chunking: try chunkingOptions(chunkSeconds: chunkSeconds, strideSeconds: strideSeconds),
                    progress: { report in
                        let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
                        progress.update(file, processed: report.processedSeconds, totalSeconds: report.totalSeconds, elapsed: elapsed)
                    }).emissions
                progress.clearLine()
            } else {
                emissions = transcriber.emissions(samples: try transcriber.loadAudio(file: URL(fileURLWithPath: path), name: name))
            }
            let data = NPY.encode(emissions.logits, shape: [emissions.frames, emissions.vocabularySize])
            try Files.write(data, to: output)
        } catch {
            printError("\(error)")
            throw ExitStatus.failure
        }
    }
}

struct Download: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Download a model from the Hugging Face hub into the local cache (then use --model ORG/NAME).",
        discussion: "Endpoint: $HF_ENDPOINT (default https://huggingface.co); token: $HF_TOKEN; cache: $HF_HUB_CACHE, $HF_HOME/hub or ~/.cache/huggingface/hub. An interrupted download resumes when run again.")

    @Argument(help: "Model id, ORG/NAME.")
    var id: String

    @Option(help: "Branch, tag or commit.")
    var revision: String = "main"

    @Option(name: .long, help: ArgumentHelp(
        "For a multilingual (MMS) model: the languages whose adapter files to fetch, e.g. --language fra --language deu.",
        discussion: "Default: every adapter the repository holds (facebook/mms-1b-all: 1,162 files, ~11 GB)."))
    var language: [String] = []

    func validate() throws {
        guard ModelLocator.isModelID(id) else { throw ValidationError("'\(id)' is not a model id of the form ORG/NAME") }
    }

    func run() async throws {
        var downloader = HubDownloader()
        let terminal = isatty(STDERR_FILENO) != 0
        var lastReport = 0.0
        downloader.progress = { file, done, total in
            let now = Date().timeIntervalSince1970
            guard terminal, now - lastReport > 0.2 || done == total else { return }
            lastReport = now
            let size = total > 0 ? String(format: " / %.1f MB (%.0f%%)", Double(total) / 1e6, 100 * Double(done) / Double(total)) : ""
            FileHandle.standardError.write(Data(String(format: "\r\u{1B}[K%@: %.1f MB%@", file, Double(done) / 1e6, size).utf8))
        }
        do {
            let snapshot = try downloader.download(id, revision: revision, languages: language.isEmpty ? nil : language)
            if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
            print(snapshot.path)
        } catch {
            if terminal { FileHandle.standardError.write(Data("\n".utf8)) }
            throw report(error)
        }
    }
}

struct Info: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Describe a model (default: the built-in one) and the compute backend.")

    @Option(name: .long, help: "A checkpoint directory or a cached Hugging Face model id (default: the built-in model).")
    var model: String?

    @Option(name: .long, help: "For a multilingual (MMS) checkpoint: describe it running this language.")
    var language: String?

    func run() async throws {
        let kernel = BLAS.initialize()
        print("asr \(ASR.version)")
        print("OpenBLAS: \(BLAS.configuration)")
        print("OpenBLAS kernel: \(kernel.active)\(kernel.override.map { " (\($0))" } ?? "")")
        print("BLAS threads: \(BLAS.threads)")
        print("reduced-precision kernels: \(ReducedPrecisionKernels.summary)")
        do {
            try ModelOptions.refuseLanguageForBuiltin(language, model: model)
            let t = try model.map { try Transcriber(modelDirectory: ModelLocator.resolve($0), language: language) } ?? BuiltinModel.load()
            let c = t.configuration
            print("model: \(t.location)")
            if model == nil {
                print(BuiltinModel.summary)
                print("training: \(BuiltinModel.trainingRecord.replacingOccurrences(of: "\n", with: " "))")
            }
            let positions = c.positionEmbeddingsType.map { "\($0) positions" } ?? "no positions"
            let shape = switch c.family {
            case .conformer: "Conformer encoder (\(positions)), \(c.featureEncoderNorm.rawValue)-norm conv front end"
            case .wav2vec2Bert:
                "Conformer encoder (\(positions), causal conv), \(c.featureProjectionInputDim / 2)-bin log-mel filterbank front end"
                    + (c.addAdapter ? ", adapter of \(c.numAdapterLayers) layer(s) (stride \(c.adapterStride), width \(c.adapterWidth))" : "")
            default: "\(c.doStableLayerNorm ? "stable pre-LN" : "post-LN") encoder, \(c.featureEncoderNorm.rawValue)-norm conv front end"
            }
            print("architecture: \(c.architectures?.first ?? c.family.architecture) (\(c.modelType)), \(shape)"
                  + (c.adapterAttnDim.map { ", MMS language adapters (width \($0))" } ?? ""))
            if let running = t.language {
                print("languages: \(t.languages.count) with adapters (\(t.languages.joined(separator: " "))); running \(running)"
                      + (language == nil ? " (the stored adapters, tokenizer target_lang)" : ""))
            }
            var parameters = "parameters: \(t.storedParameterCount) (\(t.weightTypes.joined(separator: ", ")))"
            if t.parameterCount != t.storedParameterCount {
                parameters += "; \(t.parameterCount) used for inference (the rest, e.g. masked_spec_embed, only in training)"
            }
            print(parameters)
            print("layers: \(c.numHiddenLayers) × hidden \(c.hiddenSize), \(c.numAttentionHeads) heads, FFN \(c.intermediateSize)")
            print("vocabulary: \(t.vocabulary.count) tokens, blank id \(t.vocabulary.blankID), word delimiter \"\(t.vocabulary.wordDelimiter)\"")
            print("sample rate: \(t.sampleRate) Hz, normalize: \(t.preprocessor.doNormalize)")
            print("frame stride: \(c.samplesPerFrame) samples (\(t.frameDuration * 1000) ms), receptive field \(c.receptiveField) samples")
        } catch {
            throw report(error)
        }
    }
}

/// The forward pass allocates and frees activations of a few MB each, dozens of times per chunk. glibc returns such
/// blocks to the kernel (mmap'd blocks, or trimming the heap top), so each new one is page-faulted and zeroed again:
/// 10-15 % of a bf16/int8 run went to page faults (perf, base-size model). Keeping freed memory in the heap for reuse
/// removes that; peak RSS is unchanged (measured: 623 → 626 MB, int8, base, 10 s). This is the application's choice,
/// not the library's, and `asr serve` does not make it: with it, the server's RSS grew 17 % between its 20th and
/// 300th request under benchmarks/serve_load.py (memory kept, not leaked, but a long-lived service should give it back).
func keepFreedMemoryForReuse() {
    asr_keep_freed_memory()
}

/// swift-log handler of the command line: `warning: message` (`debug: message key=value …` with --verbose) on stderr.
struct StderrLogHandler: LogHandler {
    var logLevel: Logger.Level = .warning
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var line = "\(event.level == .warning ? "warning" : event.level.rawValue): \(event.message)"
        // Warnings say everything in their message; the rest show their fields.
        if event.level != .warning {
            let fields = metadata.merging(event.metadata ?? [:]) { $1 }
            if !fields.isEmpty { line += " " + fields.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ") }
        }
        FileHandle.standardError.write(Data((line + "\n").utf8))
    }
}

/// An error whose message the command line words itself (e.g. a library error with a hint naming an `asr` command).
struct CommandLineError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Arguments that begin with `-` but are file names (`-dash.wav` from a shell glob). ArgumentParser reads them as
/// options, and a cluster of short flags holding `h` (`-dash.wav`) even printed the help and exited 0 with nothing
/// done. Before parsing: such an argument that names an existing file or folder is passed on as `./-dash.wav` (the
/// same path); one that is no file and cannot be a cluster of this tool's short flags is a usage error saying how to
/// write a file name. Everything after `--` is left as it is (ArgumentParser takes it as positional).
enum DashNames {
    /// The short flags and options any `asr` command has; a cluster of these is left to the parser.
    static let shortNames: Set<Character> = ["h", "o", "q", "r", "f"]

    static let hint = "hint: a file whose name begins with '-' is written ./-name.wav (or after --: asr transcribe -- -name.wav)"

    struct Unknown: Error, CustomStringConvertible {
        let argument: String
        var description: String {
            "unknown option '\(argument)'; if it is a file name, write ./\(argument) (or put the files after --)"
        }
    }

    static func prepare(_ arguments: [String]) throws -> [String] {
        var result: [String] = []
        var positionalOnly = false
        for argument in arguments {
            if positionalOnly || argument == "--" {
                positionalOnly = true
                result.append(argument)
                continue
            }
            guard argument.hasPrefix("-"), !argument.hasPrefix("--"), argument.count > 2,
                  Double(argument) == nil,                          // a negative number is an option's value
                  !argument.contains(where: \.isWhitespace)          // so is text (`--text "- hello"`)
            else {
                result.append(argument)
                continue
            }
            if FileManager.default.fileExists(atPath: argument) {
                result.append("./" + argument)
            } else if argument.dropFirst().allSatisfy(shortNames.contains) {
                result.append(argument)
            } else {
                throw Unknown(argument: argument)
            }
        }
        return result
    }
}
