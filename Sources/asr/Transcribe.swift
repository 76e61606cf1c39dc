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
            where it stopped (--overwrite redoes them); outputs are written to a temporary file and renamed.
            """)

    @OptionGroup var modelOptions: ModelOptions

    @OptionGroup(title: "Decoding") var decoderOptions: DecoderOptions

    @Argument(help: "Audio files and directories.")
    var paths: [String]

    @Flag(name: .shortAndLong, help: "Descend into subdirectories.")
    var recursive = false

    @Option(name: .shortAndLong, help: "Output format: txt, json, srt, vtt, tsv (repeatable).")
    var format: [OutputFormat] = []

    @Option(name: .shortAndLong, help: "Write outputs under this directory instead of next to the inputs.")
    var outputDir: String?

    @Option(help: "Write a JSON Lines manifest: one line per input (path, duration, transcript, words, timing, error).")
    var jsonl: String?

    @Flag(help: "Transcribe inputs again even when their outputs exist.")
    var overwrite = false

    @Option(help: "Audio longer than this is processed in overlapping chunks (seconds).")
    var chunkSeconds: Double = ChunkingOptions.default.chunkSeconds

    @Option(help: "Context kept on each side of a chunk (seconds).")
    var strideSeconds: Double = ChunkingOptions.default.strideSeconds

    @Flag(name: .shortAndLong, help: "No progress output.")
    var quiet = false

    func validate() throws {
        guard !paths.isEmpty else { throw ValidationError("give at least one audio file or directory") }
        guard chunkSeconds >= 1 else { throw ValidationError("--chunk-seconds must be at least 1") }
        guard strideSeconds > 0, strideSeconds * 2 < chunkSeconds else {
            throw ValidationError("--stride-seconds must be positive and less than half of --chunk-seconds")
        }
        if Set(format).count != format.count { throw ValidationError("a --format is given twice") }
    }

    func run() async throws {
        let inputs: InputList
        do {
            inputs = try InputList.collect(paths, recursive: recursive)
        } catch {
            throw report(error)
        }
        let formats = format.isEmpty ? [OutputFormat.txt] : format
        let toStdout = inputs.items.count == 1 && !inputs.anyDirectory && outputDir == nil && formats.count == 1

        let transcriber: Transcriber
        let decoder: (any CTCDecoder)?
        do {
            transcriber = try modelOptions.load()
            decoder = try decoderOptions.makeDecoder(for: transcriber)
        } catch {
            throw report(error)
        }
        let chunking = ChunkingOptions(chunkSeconds: chunkSeconds, strideSeconds: strideSeconds)
        var progress = Progress(total: inputs.items.count, enabled: !quiet && !toStdout)
        var manifest: [String] = []
        var failed = 0, skipped = 0

        for input in inputs.items {
            let destinations = toStdout ? [] : formats.map { (format: $0, url: input.output(for: $0, under: outputDir)) }
            for destination in destinations { AtomicFile.removeStalePartials(for: destination.url) }
            if !toStdout && !overwrite && destinations.allSatisfy({ FileManager.default.fileExists(atPath: $0.url.path) }) {
                skipped += 1
                progress.skipped(input.displayPath)
                manifest.append(ManifestLine.skipped(input.displayPath, outputs: destinations.map(\.url.path)))
                continue
            }
            let started = DispatchTime.now().uptimeNanoseconds
            do {
                let result = try await transcriber.transcribe(file: input.url, chunking: chunking, decoder: decoder)
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
                if toStdout {
                    FileHandle.standardOutput.write(Data(formats[0].render(result, source: input.displayPath).utf8))
                } else {
                    for destination in destinations {
                        try FileManager.default.createDirectory(
                            at: destination.url.deletingLastPathComponent(), withIntermediateDirectories: true)
                        try AtomicFile.write(Data(destination.format.render(result, source: input.displayPath).utf8), to: destination.url)
                    }
                }
                progress.done(input.displayPath, audio: result.duration, elapsed: elapsed)
                manifest.append(ManifestLine.success(input.displayPath, result, elapsed: elapsed))
            } catch {
                failed += 1
                progress.failed(input.displayPath, error: error)
                manifest.append(ManifestLine.failure(input.displayPath, error: error))
            }
        }
        progress.finish(failed: failed, skipped: skipped)
        if let jsonl {
            do {
                try AtomicFile.write(Data(manifest.map { $0 + "\n" }.joined().utf8), to: URL(fileURLWithPath: jsonl))
            } catch {
                printError("\(error)")
                failed += 1
            }
        }
        if failed > 0 { throw ExitStatus.failure }
    }
}

/// The audio files a command line names, with where each one's outputs go.
struct InputList {
    struct Item {
        let url: URL
        /// Path relative to the directory it was found in (the file name for a file named directly).
        let relativePath: String
        /// The path as the user wrote it (joined with the relative path for files found in a directory).
        let displayPath: String

        /// `talk.wav` → `talk.json` next to it, or `DIR/relative/talk.json` under the output directory.
        func output(for format: OutputFormat, under directory: String?) -> URL {
            let base: URL
            if let directory {
                base = URL(fileURLWithPath: directory).appendingPathComponent(relativePath)
            } else {
                base = url
            }
            return base.deletingPathExtension().appendingPathExtension(format.fileExtension)
        }
    }

    var items: [Item] = []
    var anyDirectory = false

    /// Extensions libsndfile reads; other files in a directory are not audio and are passed over.
    static let audioExtensions: Set<String> = [
        "wav", "wave", "flac", "ogg", "oga", "opus", "mp3", "aif", "aiff", "aifc", "caf", "w64", "rf64", "au", "snd",
        "voc", "sph", "nist", "sd2", "paf", "iff", "svx", "htk", "mat", "mat4", "mat5", "pvf", "xi", "wve", "avr",
    ]

    static func collect(_ paths: [String], recursive: Bool) throws -> InputList {
        var list = InputList()
        var seen = Set<String>()
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                // Reported per file later, like any unreadable input.
                list.append(Item(url: URL(fileURLWithPath: path), relativePath: (path as NSString).lastPathComponent, displayPath: path), &seen)
                continue
            }
            guard isDirectory.boolValue else {
                list.append(Item(url: URL(fileURLWithPath: path), relativePath: (path as NSString).lastPathComponent, displayPath: path), &seen)
                continue
            }
            list.anyDirectory = true
            let root = URL(fileURLWithPath: path).standardizedFileURL
            for file in try audioFiles(in: root, recursive: recursive) {
                let relative = String(file.path.dropFirst(root.path.count).drop { $0 == "/" })
                list.append(Item(url: file, relativePath: relative, displayPath: (path as NSString).appendingPathComponent(relative)), &seen)
            }
        }
        return list
    }

    private mutating func append(_ item: Item, _ seen: inout Set<String>) {
        if seen.insert(item.url.standardizedFileURL.path).inserted { items.append(item) }
    }

    static func audioFiles(in directory: URL, recursive: Bool) throws -> [URL] {
        let keys: [URLResourceKey] = [.isRegularFileKey, .isDirectoryKey]
        var files: [URL] = []
        let contents: [URL]
        do {
            contents = try FileManager.default.contentsOfDirectory(at: directory, includingPropertiesForKeys: keys)
        } catch {
            throw ASRError.unreadableAudio(file: directory.path, reason: "cannot list directory: \(error.localizedDescription)")
        }
        for url in contents.sorted(by: { $0.path < $1.path }) {
            let values = try? url.resourceValues(forKeys: Set(keys))
            if values?.isDirectory == true {
                if recursive { files += try audioFiles(in: url, recursive: true) }
            } else if audioExtensions.contains(url.pathExtension.lowercased()), !url.lastPathComponent.hasPrefix(".") {
                files.append(url)
            }
        }
        return files
    }
}

/// One JSON line of the --jsonl manifest.
enum ManifestLine {
    struct Line: Encodable {
        var path: String
        var status: String
        var duration: Double?
        var transcript: String?
        var words: [Word]?
        var elapsed: Double?
        var realTimeFactor: Double?
        var error: String?
        var outputs: [String]?

        enum CodingKeys: String, CodingKey {
            case path, status, duration, transcript, words, elapsed, error, outputs
            case realTimeFactor = "real_time_factor"
        }
    }

    static func encode(_ line: Line) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(line)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }

    static func success(_ path: String, _ t: Transcription, elapsed: Double) -> String {
        encode(Line(path: path, status: "ok", duration: t.duration, transcript: t.text, words: t.words, elapsed: elapsed,
                    realTimeFactor: t.duration > 0 ? elapsed / t.duration : nil))
    }

    static func failure(_ path: String, error: Error) -> String {
        encode(Line(path: path, status: "error", error: "\(error)"))
    }

    static func skipped(_ path: String, outputs: [String]) -> String {
        encode(Line(path: path, status: "skipped", outputs: outputs))
    }
}

/// Progress on stderr: a redrawn bar on a terminal, one line per file otherwise.
struct Progress {
    let total: Int
    let enabled: Bool
    let isTerminal = isatty(STDERR_FILENO) != 0
    let start = DispatchTime.now().uptimeNanoseconds
    var finished = 0
    var audioSeconds = 0.0
    var computeSeconds = 0.0

    init(total: Int, enabled: Bool) {
        self.total = total
        self.enabled = enabled
    }

    private func write(_ text: String) {
        FileHandle.standardError.write(Data(text.utf8))
    }

    private var wall: Double { Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9 }

    mutating func done(_ path: String, audio: Double, elapsed: Double) {
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
        } else {
            write(String(format: "[%d/%d] %@: %.1f s of audio in %.2f s\n", finished, total, path, audio, elapsed))
        }
    }

    mutating func skipped(_ path: String) {
        finished += 1
        guard enabled else { return }
        if !isTerminal { write("[\(finished)/\(total)] \(path): outputs exist, skipped\n") }
    }

    mutating func failed(_ path: String, error: Error) {
        finished += 1
        if enabled && isTerminal { write("\r\u{1B}[K") }
        printError("\(error)")
    }

    func finish(failed: Int, skipped: Int) {
        guard enabled else { return }
        if isTerminal { write("\n") }
        let transcribed = finished - failed - skipped
        let speed = computeSeconds > 0 ? audioSeconds / computeSeconds : 0
        write(String(format: "%d transcribed, %d failed, %d skipped (outputs existed): %.2f h of audio in %@ (%.1f× real time)\n",
                     transcribed, failed, skipped, audioSeconds / 3600, Self.clock(wall), speed))
    }

    static func clock(_ seconds: Double) -> String {
        let s = Int(seconds.rounded())
        return s >= 3600 ? String(format: "%d:%02d:%02d", s / 3600, s / 60 % 60, s % 60) : String(format: "%d:%02d", s / 60, s % 60)
    }
}
