import ArgumentParser
import ASRBatch
import ASRKit
import Foundation

extension OutputFormat: ExpressibleByArgument {}

struct Transcribe: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Transcribe audio files and directories.",
        discussion: """
            One file and no --output-dir: the transcript goes to stdout (in the one --format asked for, txt by \
            default). Otherwise each input gets one file per format: next to the input, or under --output-dir \
            (directories are mirrored there). Existing complete outputs are skipped, so an interrupted batch resumes \
            where it stopped (--overwrite redoes them).

            Outputs: a regular file is written to a temporary file and renamed over the old one; a symbolic link is \
            followed and its target replaced; a FIFO or character device is written into as it is; `-` as --jsonl \
            is stdout. Before any audio is read, every output directory is created and checked for writability \
            (exit 1 if one cannot be written), and inputs whose outputs would be the same file (talk.wav and \
            talk.flac in one folder; same-named files of two folders under one --output-dir) are refused with exit \
            2 naming each clashing pair: rename one, or transcribe them to different --output-dirs.

            `-` reads audio from standard input (any format: it is copied to a temporary file first); its outputs \
            are named stdin.FORMAT under --output-dir, which is needed unless it is the only input, with one format, \
            printed to stdout.
            """)

    @OptionGroup var modelOptions: ModelOptions

    @OptionGroup(title: "Decoding") var decoderOptions: DecoderOptions

    @OptionGroup(title: "Many machines (see `asr manifest merge`)") var sharding: ShardOptions

    @Argument(help: "Audio files and directories (- for standard input).")
    var paths: [String]

    @Flag(name: .shortAndLong, help: "Descend into subdirectories.")
    var recursive = false

    @Option(name: .shortAndLong, help: "Output format: txt, json, srt, vtt, tsv (repeatable).")
    var format: [OutputFormat] = []

    @Option(name: .shortAndLong, help: "Write outputs under this directory instead of next to the inputs.")
    var outputDir: String?

    @Option(help: "Write a JSON Lines manifest (- for stdout): one line per input (file, status, duration, transcript, words, timing, error).")
    var jsonl: String?

    @Flag(help: "Transcribe inputs again even when their outputs exist.")
    var overwrite = false

    @Option(parsing: .unconditional, help: "Audio longer than this is processed in overlapping chunks (seconds; 0: one pass, however long, with memory growing as its square).")
    var chunkSeconds: Double = ChunkingOptions.default.chunkSeconds

    @Option(parsing: .unconditional, help: "Context kept on each side of a chunk (seconds).")
    var strideSeconds: Double = ChunkingOptions.default.strideSeconds

    @Flag(name: .shortAndLong, help: "No progress output and no notes.")
    var quiet = false

    @OptionGroup(title: "Live and raw audio") var liveOptions: LiveOptions

    func validate() throws {
        guard !paths.isEmpty else { throw ValidationError("give at least one audio file or directory") }
        _ = try chunkingOptions(chunkSeconds: chunkSeconds, strideSeconds: strideSeconds)
        if Set(format).count != format.count { throw ValidationError("a --format is given twice") }
        if paths.filter({ $0 == "-" }).count > 1 { throw ValidationError("standard input (-) can be read only once") }
        try validateLive()
    }

    func run() async throws {
        if liveOptions.isActive { return try await runLive() }
        let inputs = BatchInputs.collect(paths, recursive: recursive)
        if let spec = sharding.listShard { return try sharding.list(spec, inputs, quiet: quiet) }
        let selection = try sharding.shard.map { try ShardOptions.select(try sharding.resolve($0), inputs) }
        let jsonl = try ShardOptions.manifestPath(self.jsonl, outputDir: outputDir, selection: selection)
        let formats = format.isEmpty ? [OutputFormat.txt] : format
        let toStdout = selection == nil && inputs.items.count == 1 && inputs.directories.isEmpty && inputs.problems.isEmpty
            && outputDir == nil && formats.count == 1
        if toStdout && jsonl == "-" {
            throw usageError("--jsonl - and the transcript would both go to stdout; give --output-dir (or a --jsonl file)")
        }
        if !toStdout && outputDir == nil, inputs.items.contains(where: \.isStandardInput) {
            throw usageError("standard input (-) has no folder to write its outputs next to; give --output-dir")
        }

        // Every input's outputs, no clash, and every output folder and the manifest writable, before any work.
        let outputs = OutputPlan(
            inputs: inputs, formats: formats, fileExtension: \.fileExtension, outputDirectory: outputDir, toStandardOutput: toStdout,
            manifest: jsonl, protected: OutputPlan<OutputFormat>.inputsProtected(inputs))
        try BatchPreparation.check(outputs, inputs: inputs, outputDir: outputDir, jsonl: jsonl, verb: "transcribed",
                                   clashHint: "rename the inputs or write them to different --output-dirs")
        let plan = outputs.destinations

        let work = selection?.pick(zip(inputs.items, plan)) ?? Array(zip(inputs.items, plan))
        let manifest: BatchManifest
        do {
            let redone = Set(work.map(\.0.displayPath) + inputs.problems.map(\.path))
            manifest = try BatchManifest(jsonl, restart: overwrite, redone: redone, partition: selection?.partition)
        } catch {
            throw report(error)
        }
        let termination = toStdout ? nil : TerminationWatch(grace: sharding.termGrace, manifest: manifest, quiet: quiet)

        let standardInput: StandardInput?
        do {
            standardInput = inputs.items.contains(where: \.isStandardInput) ? try StandardInput() : nil
        } catch {
            throw report(error)
        }

        let transcriber: Transcriber
        let decoder: (any CTCDecoder)?
        do {
            // The demo-model note comes before the first file actually transcribed (not for a run that skips all).
            transcriber = try modelOptions.load(quiet: true)
            decoder = try decoderOptions.makeDecoder(for: transcriber, quiet: quiet)
        } catch {
            throw report(error)
        }
        let chunking = try chunkingOptions(chunkSeconds: chunkSeconds, strideSeconds: strideSeconds)
        let progress = Progress(total: work.count + inputs.problems.count, enabled: !quiet && !toStdout, live: !quiet)
        var failed = 0, skipped = 0
        var noteShown = quiet || modelOptions.model != nil

        // Not silenced by --quiet: a folder that gave nothing is probably a mistake.
        for directory in inputs.directories where directory.audioFiles == 0 {
            var message = "warning: \(directory.path): no audio files found"
            if directory.skippedSubdirectories > 0 {
                message += " (\(directory.skippedSubdirectories) subfolder\(directory.skippedSubdirectories == 1 ? "" : "s") not searched; add -r to descend)"
            }
            FileHandle.standardError.write(Data((message + "\n").utf8))
        }
        for problem in inputs.problems {
            failed += 1
            progress.failed(problem.path, message: "\(problem.error)")
            manifest.append(ManifestLine.failure(problem.path, message: "\(problem.error)"))
        }

        for (input, destinations) in work {
            if termination?.requested == true { break }
            let url = input.isStandardInput ? URL(fileURLWithPath: standardInput!.path) : input.url
            for destination in destinations { AtomicFile.removeStalePartials(for: URL(fileURLWithPath: destination.path)) }
            if !toStdout && !overwrite && destinations.allSatisfy({ FileManager.default.fileExists(atPath: $0.path) }) {
                skipped += 1
                progress.skipped(input.displayPath)
                manifest.appendSkipped(input.displayPath, ManifestLine.skipped(input.displayPath, outputs: destinations.map(\.path)))
                continue
            }
            if !noteShown {
                noteShown = true
                FileHandle.standardError.write(Data((ModelOptions.builtinModelNote + "\n").utf8))
            }
            let started = DispatchTime.now().uptimeNanoseconds
            do {
                let display = input.displayPath
                let name = input.isStandardInput ? StandardInput.displayName : nil
                let result = try await transcriber.transcribe(file: url, name: name, chunking: chunking, decoder: decoder) { report in
                    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
                    progress.update(display, processed: report.processedSeconds, totalSeconds: report.totalSeconds, elapsed: elapsed)
                }
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
                if toStdout {
                    progress.clearLine()
                    try Files.write(Data(formats[0].render(result, source: input.displayPath).utf8), to: "-")
                } else {
                    for destination in destinations {
                        try Files.write(Data(destination.format.render(result, source: input.displayPath).utf8), to: destination.path)
                    }
                }
                progress.done(input.displayPath, audio: result.duration, elapsed: elapsed)
                manifest.append(ManifestLine.success(input.displayPath, result, elapsed: elapsed))
            } catch {
                failed += 1
                var message = "\(error)"
                if let error = error as? ASRError, case .writeFailed = error { message = "\(input.displayPath): \(message)" }
                progress.failed(input.displayPath, message: message)
                manifest.append(ManifestLine.failure(input.displayPath, message: message))
            }
        }
        progress.finish(failed: failed, skipped: skipped)
        if let error = manifest.writeError {
            printError(error)
            failed += 1
        }
        if termination?.requested == true {
            FileHandle.standardError.write(Data("asr: stopped by SIGTERM; the rest is done when the same command runs again\n".utf8))
            throw ExitCode(ShardOptions.terminatedStatus)
        }
        if failed > 0 { throw ExitStatus.failure }
    }
}

/// Chunking settings checked by the library (ASRKit's `ChunkingOptions`), as a usage error. `--chunk-seconds 0`
/// means one pass however long the audio (every command that chunks takes it): the longest chunk the library allows.
func chunkingOptions(chunkSeconds: Double, strideSeconds: Double) throws -> ChunkingOptions {
    do {
        if chunkSeconds == 0 {
            return try ChunkingOptions(chunkSeconds: ChunkingOptions.maxChunkSeconds, strideSeconds: strideSeconds)
        }
        return try ChunkingOptions(chunkSeconds: chunkSeconds, strideSeconds: strideSeconds)
    } catch {
        throw ValidationError("--chunk-seconds \(chunkSeconds) --stride-seconds \(strideSeconds): \(error)")
    }
}

/// Prints a usage error and returns the exit status for it (2).
func usageError(_ message: String) -> ExitCode {
    printError(message)
    return ExitStatus.usage
}

/// Progress on stderr: a redrawn bar on a terminal (moving within each file as its chunks finish: seconds of audio
/// done of the total, speed, ETA), one line per file otherwise. Called from the worker thread within a file, so
/// its state is behind a lock.
final class Progress: @unchecked Sendable {
    let total: Int
    /// Whether the per-file lines and the closing summary are written (not with --quiet, nor for one file to stdout).
    let enabled: Bool
    /// Whether the line moves within a file: on a terminal only, and not with --quiet.
    let live: Bool
    let isTerminal: Bool
    private let start = DispatchTime.now().uptimeNanoseconds
    private let mutex = NSLock()
    private var finished = 0
    private var audioSeconds = 0.0
    private var computeSeconds = 0.0
    private var lastDraw: UInt64 = 0
    private var lineShown = false

    /// `enabled`: per-file lines and summary; `live`: the within-file line on a terminal (`terminal` overrides the
    /// check of stderr, for tests).
    init(total: Int, enabled: Bool, live: Bool, terminal: Bool = isatty(STDERR_FILENO) != 0) {
        self.total = total
        self.enabled = enabled
        self.isTerminal = terminal
        self.live = live && terminal
    }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    private var wall: Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }

    /// Within a file: `processed` of `totalSeconds` seconds of audio done after `elapsed` seconds on it. Redrawn at
    /// most ten times a second.
    func update(_ path: String, processed: Double, totalSeconds: Double?, elapsed: Double) {
        guard live else { return }
        mutex.withLock {
            let now = DispatchTime.now().uptimeNanoseconds
            guard now - lastDraw > 100_000_000 else { return }
            lastDraw = now
            let speed = elapsed > 0 ? processed / elapsed : 0
            var line = "\r\u{1B}[K"
            if total > 1 { line += "[\(finished + 1)/\(total)] " }
            line += (path as NSString).lastPathComponent + ": " + Self.clock(processed)
            if let totalSeconds, totalSeconds > 0 {
                let remaining = speed > 0 ? max(0, totalSeconds - processed) / speed : 0
                line += String(format: " / %@ of audio (%.0f%%), %.1f× real time, ETA %@", Self.clock(totalSeconds),
                               100 * min(1, processed / totalSeconds), speed, Self.clock(remaining))
            } else {
                line += String(format: " of audio, %.1f× real time", speed)
            }
            write(line)
            lineShown = true
        }
    }

    /// Clears a within-file line (before a transcript goes to a terminal's stdout, or an error is printed).
    func clearLine() {
        mutex.withLock {
            if lineShown { write("\r\u{1B}[K") }
            lineShown = false
        }
    }

    func done(_ path: String, audio: Double, elapsed: Double) {
        mutex.withLock {
            finished += 1
            audioSeconds += audio
            computeSeconds += elapsed
            guard enabled else { return }
            if isTerminal {
                let speed = computeSeconds > 0 ? audioSeconds / computeSeconds : 0
                let remaining = finished < total ? wall / Double(finished) * Double(total - finished) : 0
                let width = 30
                let filled = total > 0 ? width * finished / total : width
                let bar = String(repeating: "█", count: filled) + String(repeating: "·", count: width - filled)
                write(String(format: "\r\u{1B}[K%@ %d/%d files, %.2f h audio, %.1f× real time, ETA %@",
                             bar, finished, total, audioSeconds / 3600, speed, Self.clock(remaining)))
                lineShown = true
            } else {
                write(String(format: "[%d/%d] %@: %.1f s of audio in %.2f s\n", finished, total, path, audio, elapsed))
            }
        }
    }

    func skipped(_ path: String) {
        mutex.withLock {
            finished += 1
            guard enabled else { return }
            if !isTerminal { write("[\(finished)/\(total)] \(path): outputs exist, skipped\n") }
        }
    }

    func failed(_ path: String, message: String) {
        mutex.withLock {
            finished += 1
            if lineShown { write("\r\u{1B}[K") }
            lineShown = false
        }
        printError(message)
    }

    /// The closing summary; `verb` says what was done to each file ("transcribed", "aligned").
    func finish(failed: Int, skipped: Int, verb: String = "transcribed") {
        mutex.withLock {
            guard enabled else {
                if lineShown { write("\r\u{1B}[K") }
                return
            }
            if isTerminal && lineShown { write("\n") }
            let transcribed = finished - failed - skipped
            var summary = "\(transcribed) \(verb), \(failed) failed, \(skipped) skipped (outputs existed)"
            if computeSeconds > 0 {
                summary += String(format: ": %.2f h of audio in %@ (%.1f× real time)",
                                  audioSeconds / 3600, Self.clock(wall), audioSeconds / computeSeconds)
            }
            write(summary + "\n")
        }
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
