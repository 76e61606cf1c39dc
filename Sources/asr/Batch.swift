import ArgumentParser
import ASRBatch
import ASRKit
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// `asr transcribe` options for splitting one corpus over many processes (Slurm job arrays, Kubernetes Indexed
/// Jobs) and for being stopped by the scheduler.
struct ShardOptions: ParsableArguments {
    @Option(help: ArgumentHelp(
        "Transcribe only shard K of N (K/N, K from 0), or auto: K and N from a Slurm array task or a Kubernetes Indexed Job.",
        valueName: "K/N|auto"))
    var shard: String?

    @Option(help: "N for --shard auto: required with Kubernetes (the Job's completions); with Slurm it overrides SLURM_ARRAY_TASK_COUNT.")
    var shardCount: Int?

    @Option(help: ArgumentHelp("Print the files shard K/N (or auto) would take, one per line, and exit.", valueName: "K/N|auto"))
    var listShard: String?

    @Option(parsing: .unconditional, help: "On SIGTERM, seconds the file in progress gets to finish before it is abandoned.")
    var termGrace: Double = 20

    func validate() throws {
        if let shardCount, shardCount < 1 { throw ValidationError("--shard-count must be at least 1") }
        if !(termGrace >= 0) { throw ValidationError("--term-grace must be 0 or more seconds") }
    }

    /// The exit status after SIGTERM: 143 (128 + 15), what a shell reports for a process that SIGTERM killed, so a
    /// scheduler sees the same code whether we stopped in time or not (Slurm: `RequeueExit=143`; Kubernetes: a
    /// podFailurePolicy rule on exit code 143).
    static let terminatedStatus: Int32 = 143

    func resolve(_ spec: String) throws -> Shard {
        do {
            return try Shard.parse(spec, shardCount: shardCount, environment: ProcessInfo.processInfo.environment)
        } catch let error as ShardError {
            // The library says "the shard count"; the command line calls it --shard-count.
            let hint = error.code == .countMissing ? " (give --shard-count N)" : error.code == .countDisagrees ? " (--shard-count)" : ""
            throw usageError("--shard \(spec): \(error.message)\(hint)")
        }
    }

    /// The selection of one shard: which inputs it takes and what its manifest lines record.
    struct Selection {
        let shard: Shard
        let selected: Set<Int>
        let partition: ManifestPartition
        let bytes: Int64
        let totalBytes: Int64

        func pick<S: Sequence>(_ all: S) -> [S.Element] {
            all.enumerated().filter { selected.contains($0.offset) }.map(\.element)
        }
    }

    static func partitionInputs(_ items: [BatchInputs.Item]) -> [Partition.Input] {
        items.map { item in
            var info = stat()
            let bytes = stat(item.url.path, &info) == 0 ? Int64(info.st_size) : 0
            return Partition.Input(path: item.displayPath, bytes: bytes)
        }
    }

    static func select(_ shard: Shard, _ inputs: BatchInputs) throws -> Selection {
        if inputs.items.contains(where: \.isStandardInput) {
            throw usageError("standard input (-) cannot be sharded: give files and directories")
        }
        let all = partitionInputs(inputs.items)
        let selected = Partition.select(all, shard: shard)
        return Selection(
            shard: shard, selected: Set(selected),
            partition: ManifestPartition(shard: shard, inputSet: Partition.fingerprint(all), inputs: all.count),
            bytes: selected.reduce(0) { $0 + all[$1].bytes }, totalBytes: all.reduce(0) { $0 + $1.bytes })
    }

    /// `--list-shard`: the files on stdout, a one-line summary on stderr.
    func list(_ spec: String, _ inputs: BatchInputs, quiet: Bool) throws {
        let selection = try Self.select(try resolve(spec), inputs)
        var text = ""
        for item in selection.pick(inputs.items) { text += item.displayPath + "\n" }
        try Files.write(Data(text.utf8), to: "-")
        if !quiet {
            FileHandle.standardError.write(Data(String(
                format: "shard %@: %d of %d files, %.1f of %.1f MB (input set %@)\n",
                selection.shard.description, selection.selected.count, inputs.items.count,
                Double(selection.bytes) / 1e6, Double(selection.totalBytes) / 1e6, selection.partition.inputSet).utf8))
        }
    }

    /// The manifest path: `%K` and `%N` in --jsonl are the shard's K and N; a sharded run with --output-dir and no
    /// --jsonl writes `OUTPUT-DIR/manifest-K.jsonl`.
    static func manifestPath(_ jsonl: String?, outputDir: String?, selection: Selection?) throws -> String? {
        guard let selection else {
            if let jsonl, jsonl.contains("%K") || jsonl.contains("%N") { throw usageError("--jsonl \(jsonl): %K and %N need --shard") }
            return jsonl
        }
        let pattern = jsonl ?? outputDir.map { ($0 as NSString).appendingPathComponent("manifest-%K.jsonl") }
        return pattern?.replacingOccurrences(of: "%K", with: String(selection.shard.index))
            .replacingOccurrences(of: "%N", with: String(selection.shard.count))
    }
}

/// What `transcribe` and `align` check before any audio is read: the plan's clashes (usage error, nothing done), then
/// every output folder (created under --output-dir) and the manifest writable (failure, nothing done).
enum BatchPreparation {
    static func check<F>(_ plan: OutputPlan<F>, inputs: BatchInputs, outputDir: String?, jsonl: String?, verb: String, clashHint: String) throws {
        let clashes = plan.clashes + plan.manifestClashes.map { "--jsonl \(jsonl ?? "") \($0)" }
        if !clashes.isEmpty {
            for clash in clashes { printError("output clash: \(clash)") }
            throw usageError("\(clashes.count) output clash\(clashes.count == 1 ? "" : "es"), nothing done: \(clashHint)")
        }
        var unwritable = 0
        var checked = Set<String>()
        for (index, destinations) in plan.destinations.enumerated() {
            for destination in destinations {
                let directory = (destination.path as NSString).deletingLastPathComponent
                let folder = directory.isEmpty ? "." : directory
                guard checked.insert(directory).inserted else { continue }
                // Next to the inputs: an input whose folder does not exist fails as "no such file" by itself.
                if outputDir == nil && !FileManager.default.fileExists(atPath: folder) { continue }
                do {
                    if outputDir != nil { try Files.makeDirectories(folder) }
                    try Files.checkWritable(directory: folder)
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
            printError("nothing \(verb): outputs cannot be written")
            throw ExitStatus.failure
        }
    }
}

/// The manifest of one `asr transcribe` run: nothing without --jsonl, else lines appended as files finish.
final class BatchManifest: Sendable {
    let writer: ManifestWriter?

    /// With `restart` (--overwrite), the lines of the inputs in `redone` are replaced; the others are kept.
    init(_ path: String?, restart: Bool, redone: Set<String>, partition: ManifestPartition?) throws {
        writer = try path.map { try ManifestWriter(path: $0, restart: restart, redone: redone, partition: partition) }
        if let writer, writer.droppedLines > 0 {
            FileHandle.standardError.write(Data(
                "warning: \(writer.path): --overwrite dropped \(writer.droppedLines) line\(writer.droppedLines == 1 ? "" : "s") of another run (another shard partition, or sharded and unsharded runs mixed)\n".utf8))
        }
    }

    func append(_ line: String) { writer?.append(line) }

    /// An input whose outputs exist: recorded as skipped unless this manifest already has its transcript (a resumed
    /// run keeps the earlier `ok` line and adds nothing).
    func appendSkipped(_ file: String, _ line: String) {
        if writer?.previous[file] == "ok" { return }
        writer?.append(line)
    }

    var writeError: String? { writer?.writeError.map { "\(writer!.path): \($0)" } }
}

/// SIGTERM (Slurm at the time limit and on preemption, Kubernetes on eviction): no new file is started; the file in
/// progress gets `grace` seconds to finish, then the process exits at once (no partial output: outputs are
/// renamed into place whole, and a leftover temporary file is removed by the next run). A second SIGTERM exits at
/// once. Exits never cut a manifest line.
final class TerminationWatch: @unchecked Sendable {
    private let queue = DispatchQueue(label: "asr.sigterm")
    private let source: DispatchSourceSignal
    private let mutex = NSLock()
    private var received = 0

    init(grace: Double, manifest: BatchManifest, quiet: Bool) {
        signal(SIGTERM, SIG_IGN)
        source = DispatchSource.makeSignalSource(signal: SIGTERM, queue: queue)
        source.setEventHandler { [self] in
            let count = mutex.withLock { received += 1; return received }
            let exitNow: @Sendable () -> Void = {
                manifest.writer?.withLock { _exit(ShardOptions.terminatedStatus) }
                _exit(ShardOptions.terminatedStatus)
            }
            if count == 1 {
                if !quiet { FileHandle.standardError.write(Data("asr: SIGTERM: stopping after the file in progress (at most \(grace) s)\n".utf8)) }
                queue.asyncAfter(deadline: .now() + grace) {
                    FileHandle.standardError.write(Data("asr: SIGTERM: the file in progress did not finish in \(grace) s; abandoned (it is done again on resume)\n".utf8))
                    exitNow()
                }
            } else {
                exitNow()
            }
        }
        source.resume()
    }

    var requested: Bool { mutex.withLock { received > 0 } }
}

struct ManifestCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "manifest",
        abstract: "Work with --jsonl manifests.",
        subcommands: [Merge.self])

    struct Merge: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Merge the manifests of a sharded run into one line per input, with a summary.",
            discussion: """
                Each input's line is its latest final one (ok or error over skipped, a later line over an earlier \
                one: a requeued shard's retry wins). Lines are sorted by file. The summary on stderr: files ok, \
                failed and skipped, hours of audio, throughput, and every failed file with its error. Manifests of \
                different partitions (another shard count or input set) are refused (exit 2). Exit 1 when a file \
                failed or the partition is incomplete (inputs with no line, e.g. a shard not run yet).
                """)

        @Argument(help: "Manifests to merge (e.g. out/manifest-*.jsonl).")
        var manifests: [String]

        @Option(name: .shortAndLong, help: "Where the merged manifest goes (- for stdout).")
        var output = "-"

        @Flag(name: .shortAndLong, help: "No summary.")
        var quiet = false

        func validate() throws {
            if manifests.isEmpty { throw ValidationError("give at least one manifest") }
        }

        func run() throws {
            var sources: [ManifestMerge.Source] = []
            for path in manifests {
                let data: Data
                do {
                    data = try Files.read(path) { ASRError.unreadableAudio(file: path, reason: $0) }
                } catch let ASRError.unreadableAudio(_, reason) {
                    printError("\(path): \(reason)")
                    throw ExitStatus.failure
                }
                let parsed = ManifestEntry.parse(data)
                if !parsed.invalid.isEmpty {
                    FileHandle.standardError.write(Data("warning: \(path): line\(parsed.invalid.count == 1 ? "" : "s") \(parsed.invalid.map(String.init).joined(separator: ", ")) not manifest lines, left out\n".utf8))
                }
                // A file with no manifest line at all is not a manifest (a wrong path or glob): nothing to merge.
                if parsed.entries.isEmpty && !parsed.invalid.isEmpty {
                    printError("\(path): no manifest lines in it (is it a manifest written by `asr transcribe --jsonl`?)")
                    throw ExitStatus.failure
                }
                sources.append(.init(name: path, entries: parsed.entries))
            }
            let merge: ManifestMerge
            do { merge = try ManifestMerge(sources) } catch let error as ShardError { throw usageError(error.message) }
            do {
                try Files.write(Data(merge.lines.map { $0.text + "\n" }.joined().utf8), to: output)
            } catch {
                throw report(error)
            }
            if !quiet { FileHandle.standardError.write(Data(merge.summary.utf8)) }
            if !merge.failed.isEmpty || !merge.complete { throw ExitStatus.failure }
        }
    }
}
