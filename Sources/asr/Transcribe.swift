import ArgumentParser
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
        let inputs = InputList.collect(paths, recursive: recursive)
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

        // Every input's outputs, and no two inputs sharing one (before any work).
        let plan: [[(format: OutputFormat, path: String)]] = inputs.items.map { input in
            toStdout ? [] : formats.map { (format: $0, path: input.output(for: $0, under: outputDir)) }
        }
        var owners: [String: Int] = [:]
        var clashes: [String] = []
        for (index, destinations) in plan.enumerated() {
            for destination in destinations {
                let key = URL(fileURLWithPath: destination.path).standardizedFileURL.path
                if let other = owners[key] {
                    clashes.append("\(inputs.items[other].displayPath) and \(inputs.items[index].displayPath) would both be written to \(destination.path)")
                } else {
                    owners[key] = index
                }
            }
        }
        if let jsonl, jsonl != "-" {
            let key = URL(fileURLWithPath: jsonl).standardizedFileURL.path
            if let owner = owners[key] {
                clashes.append("--jsonl \(jsonl) is also the output of \(inputs.items[owner].displayPath)")
            }
            if let input = inputs.items.first(where: { !$0.isStandardInput && $0.url.standardizedFileURL.path == key }) {
                clashes.append("--jsonl \(jsonl) is the input \(input.displayPath)")
            }
        }
        if !clashes.isEmpty {
            for clash in clashes { printError("output clash: \(clash)") }
            throw usageError("\(clashes.count) output clash\(clashes.count == 1 ? "" : "es"), nothing done: rename the inputs or write them to different --output-dirs")
        }

        // Every output directory and the manifest must be writable before any audio is read.
        var unwritable = 0
        var checked = Set<String>()
        for (index, destinations) in plan.enumerated() {
            for destination in destinations {
                let directory = (destination.path as NSString).deletingLastPathComponent
                guard checked.insert(directory).inserted else { continue }
                // Next to the inputs: an input whose folder does not exist fails as "no such file" by itself.
                if outputDir == nil && !FileManager.default.fileExists(atPath: directory.isEmpty ? "." : directory) { continue }
                do {
                    if outputDir != nil { try Files.makeDirectories(directory.isEmpty ? "." : directory) }
                    try Files.checkWritable(directory: directory.isEmpty ? "." : directory)
                } catch {
                    unwritable += 1
                    printError("\(inputs.items[index].displayPath): its outputs (\(destination.path)) cannot be written: \(error)")
                }
            }
        }
        if let jsonl {
            do { try Files.prepareOutput(jsonl) } catch {
                unwritable += 1
                printError("--jsonl: \(error)")
            }
        }
        if unwritable > 0 {
            printError("nothing transcribed: outputs cannot be written")
            throw ExitStatus.failure
        }

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

/// The audio files a command line names, with where each one's outputs go.
struct InputList {
    struct Item {
        let url: URL
        /// Path relative to the directory it was found in (the file name for a file named directly).
        let relativePath: String
        /// The path as the user wrote it (joined with the relative path for files found in a directory).
        let displayPath: String
        /// `-`: the audio comes from standard input.
        var isStandardInput = false

        /// `talk.wav` → `talk.json` next to it, or `DIR/relative/talk.json` under the output directory.
        func output(for format: OutputFormat, under directory: String?) -> String {
            let base: URL
            if let directory {
                base = URL(fileURLWithPath: directory).appendingPathComponent(relativePath)
            } else {
                base = url
            }
            return base.deletingPathExtension().appendingPathExtension(format.fileExtension).path
        }
    }

    /// A directory named on the command line: how many audio files it gave and how many subfolders were passed over.
    struct Directory {
        let path: String
        var audioFiles = 0
        var skippedSubdirectories = 0
    }

    var items: [Item] = []
    var directories: [Directory] = []
    /// Folders that could not be listed: reported as failures, the rest of the batch goes on.
    var problems: [(path: String, error: ASRError)] = []

    /// Extensions libsndfile reads; other files in a directory are not audio and are passed over.
    static let audioExtensions: Set<String> = [
        "wav", "wave", "flac", "ogg", "oga", "opus", "mp3", "aif", "aiff", "aifc", "caf", "w64", "rf64", "au", "snd",
        "voc", "sph", "nist", "sd2", "paf", "iff", "svx", "htk", "mat", "mat4", "mat5", "pvf", "xi", "wve", "avr",
    ]

    static func collect(_ paths: [String], recursive: Bool) -> InputList {
        var list = InputList()
        var seen = Set<String>()
        for path in paths {
            if path == "-" {
                list.items.append(Item(url: URL(fileURLWithPath: "/dev/stdin"), relativePath: "stdin", displayPath: "-", isStandardInput: true))
                continue
            }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
                // A file, or nothing there: reported per file later, like any unreadable input.
                list.append(Item(url: URL(fileURLWithPath: path), relativePath: (path as NSString).lastPathComponent, displayPath: path), &seen)
                continue
            }
            let root = URL(fileURLWithPath: path).standardizedFileURL
            var directory = Directory(path: path)
            let before = list.items.count
            list.addFiles(in: root, root: root, userPath: path, recursive: recursive, &directory, &seen)
            directory.audioFiles = list.items.count - before
            list.directories.append(directory)
        }
        return list
    }

    private mutating func append(_ item: Item, _ seen: inout Set<String>) {
        if seen.insert(item.url.standardizedFileURL.path).inserted { items.append(item) }
    }

    private mutating func addFiles(
        in directory: URL, root: URL, userPath: String, recursive: Bool, _ summary: inout Directory, _ seen: inout Set<String>
    ) {
        let keys: [URLResourceKey] = [.isRegularFileKey, .isDirectoryKey]
        let display = { (url: URL) in
            (userPath as NSString).appendingPathComponent(String(url.path.dropFirst(root.path.count).drop { $0 == "/" }))
        }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        } catch {
            var reason = "cannot list folder"
            if let handle = opendir(directory.path) { closedir(handle) } else { reason += ": " + Files.errorText(errno) }
            problems.append((display(directory), ASRError.unreadableAudio(file: display(directory), reason: reason)))
            return
        }
        for name in names.sorted() {
            let url = directory.appendingPathComponent(name)
            let values = try? url.resourceValues(forKeys: Set(keys))
            if values?.isDirectory == true {
                if recursive {
                    addFiles(in: url, root: root, userPath: userPath, recursive: true, &summary, &seen)
                } else {
                    summary.skippedSubdirectories += 1
                }
            } else if Self.audioExtensions.contains(url.pathExtension.lowercased()), !name.hasPrefix(".") {
                let relative = String(url.path.dropFirst(root.path.count).drop { $0 == "/" })
                append(Item(url: url, relativePath: relative, displayPath: display(url)), &seen)
            }
        }
    }
}

/// One JSON line of the --jsonl manifest: the transcript schema's fields and numbers (``TimedTranscript``), with the
/// status, timing and error of the input.
enum ManifestLine {

    struct Line: Encodable {
        var file: String
        var status: String
        var duration: Double?
        var transcript: String?
        var words: [TimedTranscript.Item]?
        var elapsed: Double?
        var realTimeFactor: Double?
        var error: String?
        var outputs: [String]?

        enum CodingKeys: String, CodingKey {
            case file, status, duration, transcript, words, elapsed, error, outputs
            case realTimeFactor = "real_time_factor"
        }
    }

    static func encode(_ line: Line) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(line)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    static func round(_ value: Double, _ digits: Int) -> Double {
        let scale = pow(10, Double(digits))
        return (value * scale).rounded() / scale
    }

    static func success(_ path: String, _ t: Transcription, elapsed: Double) -> String {
        success(path, TimedTranscript(t), elapsed: elapsed, audio: t.duration)
    }

    /// `asr align`: the transcript as given and every word with its times and flags.
    static func success(_ path: String, _ a: ForcedAlignment, elapsed: Double) -> String {
        success(path, TimedTranscript(a), elapsed: elapsed, audio: a.duration)
    }

    private static func success(_ path: String, _ t: TimedTranscript, elapsed: Double, audio: Double) -> String {
        encode(Line(file: path, status: "ok", duration: t.duration, transcript: t.text, words: t.words,
                    elapsed: round(elapsed, 3), realTimeFactor: audio > 0 ? round(elapsed / audio, 4) : nil))
    }

    static func failure(_ path: String, message: String) -> String {
        encode(Line(file: path, status: "error", error: message))
    }

    static func skipped(_ path: String, outputs: [String]) -> String {
        encode(Line(file: path, status: "skipped", outputs: outputs))
    }
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
