import ASRKit
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What a sharded run adds to each manifest line, so that `asr manifest merge` can tell shards of one partition
/// from shards of another: the shard (K of N), a fingerprint of the whole sorted input set, and how many inputs the
/// whole set has (to find shards that are missing).
public struct ManifestPartition: Equatable, Sendable {
    /// The shard this run is.
    public let shard: Shard
    /// ``Partition/fingerprint(_:)`` of the whole input set.
    public let inputSet: String
    /// Inputs in the whole set.
    public let inputs: Int

    /// The partition record of `shard` of an input set.
    public init(shard: Shard, inputSet: String, inputs: Int) {
        self.shard = shard
        self.inputSet = inputSet
        self.inputs = inputs
    }

    /// The identity that must agree between manifests to be merged (N and the input set; K differs, of course).
    public var key: String { Self.key(shards: shard.count, inputs: inputs, inputSet: inputSet) }

    /// The one spelling of a partition's identity, for this run's manifest and for lines read back.
    static func key(shards: Int, inputs: Int, inputSet: String) -> String {
        "\(shards) shards of \(inputs) inputs, input set \(inputSet)"
    }
}

/// A `--jsonl` manifest written as the batch goes: one line appended per finished input, flushed to disk (fsync)
/// before the next input starts, so a killed or preempted batch keeps every line it wrote. Opening an existing
/// manifest keeps its lines (a resumed run appends) after cutting a torn last line (a kill in the middle of a
/// write); its latest status per file is in `previous`. A restarted manifest (`--overwrite`) drops only the lines of
/// the files this run redoes (`redone`), and of another run's partition; every other line is kept. A regular file is locked
/// (flock) while it is written, so two processes cannot append to one manifest (two tasks given the same shard).
/// `-` (stdout), FIFOs and character devices are written into as they are, with nothing to resume.
public final class ManifestWriter: @unchecked Sendable {
    /// The manifest's path (`-` for standard output).
    public let path: String
    private let fd: Int32
    private let isRegularFile: Bool
    private let partition: ManifestPartition?
    private let mutex = NSLock()
    /// Latest status ("ok", "error", "skipped") per file among the lines that were there when the manifest was opened.
    public private(set) var previous: [String: String] = [:]
    /// The first write error, in words; lines after it are not written.
    public private(set) var writeError: String?
    /// Lines a restart dropped although their file is not redone: they belong to another run's partition (or to a
    /// sharded run when this one is not, or the other way round), which this run's lines cannot sit beside.
    public private(set) var droppedLines = 0

    /// Opens (or creates) the manifest at `path`. With `restart`, the lines of the files in `redone` are removed
    /// first (the file is rewritten beside itself and renamed, so a kill keeps either the old or the new lines).
    public init(path: String, restart: Bool, redone: Set<String> = [], partition: ManifestPartition?) throws {
        func fail(_ reason: String) -> ASRError { .writeFailed(file: path, reason: reason) }
        self.path = path
        self.partition = partition
        if path == "-" {
            fd = STDOUT_FILENO
            isRegularFile = false
            return
        }
        switch try AtomicFile.destination(of: path) {
        case .stream(let target):
            let fd = open(target, O_WRONLY | O_NOCTTY | O_CLOEXEC)
            guard fd >= 0 else { throw fail(AtomicFile.errorText(errno)) }
            self.fd = fd
            isRegularFile = false
        case .regularFile(let target):
            let fd = open(target, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
            guard fd >= 0 else { throw fail(AtomicFile.errorText(errno)) }
            if flock(fd, LOCK_EX | LOCK_NB) != 0 {
                let reason = errno == EWOULDBLOCK ? "another asr process is writing this manifest (two tasks given the same shard?)" : AtomicFile.errorText(errno)
                close(fd)
                throw fail(reason)
            }
            isRegularFile = true
            if restart {
                // Read under the old file's lock, then replace it whole with the lines that stay, and lock the new.
                let kept: [ManifestEntry]
                do {
                    let lines = ManifestEntry.parse(try Self.readAll(fd)).entries
                    kept = lines.filter { !redone.contains($0.file) && $0.partitionKey == partition?.key }
                    droppedLines = lines.filter { !redone.contains($0.file) }.count - kept.count
                } catch let failure as ReadFailure {
                    close(fd)
                    throw fail("cannot read it: \(failure.reason)")
                }
                let text = kept.map { $0.text + "\n" }.joined()
                do {
                    try AtomicFile.write(Data(text.utf8), to: URL(fileURLWithPath: target))
                } catch {
                    close(fd)
                    throw error
                }
                close(fd)
                let fresh = open(target, O_RDWR | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
                guard fresh >= 0 else { throw fail(AtomicFile.errorText(errno)) }
                if flock(fresh, LOCK_EX | LOCK_NB) != 0 {
                    close(fresh)
                    throw fail("another asr process is writing this manifest (two tasks given the same shard?)")
                }
                self.fd = fresh
                for line in kept { previous[line.file] = line.status }
            } else {
                self.fd = fd
                try resume(fail)
            }
        }
    }

    private struct ReadFailure: Error { let reason: String }

    /// The whole file behind `fd`, read from its start.
    private static func readAll(_ fd: Int32) throws -> Data {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        var offset: off_t = 0
        while true {
            let n = buffer.withUnsafeMutableBytes { pread(fd, $0.baseAddress, $0.count, offset) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ReadFailure(reason: AtomicFile.errorText(errno))
            }
            if n == 0 { return data }
            data.append(contentsOf: buffer[0..<n])
            offset += off_t(n)
        }
    }

    deinit { if fd != STDOUT_FILENO { close(fd) } }

    private func resume(_ fail: (String) -> ASRError) throws {
        let data: Data
        do { data = try Self.readAll(fd) } catch let failure as ReadFailure { throw fail("cannot read it to resume: \(failure.reason)") } catch { throw error }
        // A torn last line (killed in the middle of a write) is cut; every complete line stays as it was.
        let complete = data.lastIndex(of: UInt8(ascii: "\n")).map { data.distance(from: data.startIndex, to: $0) + 1 } ?? 0
        if complete < data.count {
            guard ftruncate(fd, off_t(complete)) == 0 else { throw fail("cannot cut its torn last line: \(AtomicFile.errorText(errno))") }
        }
        for line in ManifestEntry.parse(data.prefix(complete)).entries {
            if let partition, line.partitionKey != partition.key {
                throw fail("it holds lines of another run (\(line.partitionKey ?? "not sharded")), not of this one (\(partition.key)); give another --jsonl, or --overwrite to start it again")
            }
            if partition == nil, let key = line.partitionKey {
                throw fail("it holds lines of a sharded run (\(key)) and this run is not sharded; give another --jsonl, or --overwrite to start it again")
            }
            previous[line.file] = line.status
        }
    }

    /// Appends one manifest line (a JSON object without newline), adding the partition fields of a sharded run,
    /// and flushes it to disk.
    public func append(_ line: String) {
        var text = line
        if let partition, text.hasSuffix("}") {
            text.removeLast()
            let finished = String(format: "%.3f", Date().timeIntervalSince1970)
            text += ",\"finished\":\(finished),\"input_set\":\"\(partition.inputSet)\",\"inputs\":\(partition.inputs),\"shard\":\(partition.shard.index),\"shards\":\(partition.shard.count)}"
        }
        withLock {
            guard writeError == nil else { return }
            if let reason = AtomicFile.writeAll(Data((text + "\n").utf8), to: fd) {
                writeError = reason
            } else if isRegularFile && fsync(fd) != 0 {
                writeError = "cannot flush it to disk: \(AtomicFile.errorText(errno))"
            }
        }
    }

    /// Runs `body` while no line is being written (a process that exits inside it leaves no torn line).
    public func withLock<T>(_ body: () throws -> T) rethrows -> T {
        mutex.lock()
        defer { mutex.unlock() }
        return try body()
    }
}

/// One line of a manifest as read back: the fields merge needs, and the line as it was written.
public struct ManifestEntry: Sendable {
    /// The input, as the batch named it.
    public let file: String
    /// `ok`, `error` or `skipped`.
    public let status: String
    /// Seconds of audio.
    public let duration: Double?
    /// Seconds the input took.
    public let elapsed: Double?
    /// The error in words, for `error`.
    public let error: String?
    /// When it finished (seconds since 1970), in sharded runs.
    public let finished: Double?
    /// K, in sharded runs.
    public let shard: Int?
    /// N, in sharded runs.
    public let shards: Int?
    /// The input set's fingerprint, in sharded runs.
    public let inputSet: String?
    /// Inputs in the whole set, in sharded runs.
    public let inputs: Int?
    /// The line as it was written.
    public let text: String

    /// N, the input count and the input set of a sharded run's line (nil for an unsharded run's).
    public var partitionKey: String? {
        guard let shards, let inputSet, let inputs else { return nil }
        return ManifestPartition.key(shards: shards, inputs: inputs, inputSet: inputSet)
    }

    /// The entry of one manifest line; nil when it is not one (no `file` or `status`).
    public init?(_ text: String) {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any],
              let file = object["file"] as? String, let status = object["status"] as? String else { return nil }
        func number(_ key: String) -> Double? { (object[key] as? NSNumber)?.doubleValue }
        self.file = file
        self.status = status
        duration = number("duration")
        elapsed = number("elapsed")
        error = object["error"] as? String
        finished = number("finished")
        shard = number("shard").map { Int($0) }
        shards = number("shards").map { Int($0) }
        inputSet = object["input_set"] as? String
        inputs = number("inputs").map { Int($0) }
        self.text = text
    }

    /// The complete lines of a manifest; `invalid` counts lines that are not manifest lines (a torn last line).
    public static func parse(_ data: Data) -> (entries: [ManifestEntry], invalid: [Int]) {
        var entries: [ManifestEntry] = []
        var invalid: [Int] = []
        for (number, line) in String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: false).enumerated() {
            let text = String(line)
            if text.trimmingCharacters(in: .whitespaces).isEmpty { continue }
            if let entry = ManifestEntry(text) { entries.append(entry) } else { invalid.append(number + 1) }
        }
        return (entries, invalid)
    }
}

/// `asr manifest merge`: per-shard manifests into one line per input (the latest final status of each file: `ok`
/// or `error` over `skipped`, later lines over earlier ones), with a summary.
public struct ManifestMerge {
    /// One manifest to merge.
    public struct Source {
        /// How messages name it (its path).
        public let name: String
        /// Its lines.
        public let entries: [ManifestEntry]
        /// A manifest named `name` with its lines.
        public init(name: String, entries: [ManifestEntry]) {
            self.name = name
            self.entries = entries
        }
    }

    /// One line per input: its latest final status.
    public let lines: [ManifestEntry]
    /// The partition all sources share (nil: unsharded manifests).
    public let partition: String?
    /// Inputs in the partition's whole set (nil: unsharded).
    public let expectedInputs: Int?
    /// N (nil: unsharded).
    public let shards: Int?
    /// The shards that wrote at least one line.
    public let shardsSeen: Set<Int>

    /// Merges `sources`.
    ///
    /// - Throws: ``ShardError`` (``ShardError/Code/differentPartitions``) when they are of different partitions.
    public init(_ sources: [Source]) throws {
        var keys: [String: [String]] = [:]
        for source in sources {
            for key in Set(source.entries.map { $0.partitionKey ?? "not sharded" }) { keys[key, default: []].append(source.name) }
        }
        if keys.count > 1 {
            let detail = keys.sorted { $0.key < $1.key }.map { "\($0.key): \($0.value.joined(separator: ", "))" }.joined(separator: "; ")
            throw ShardError(.differentPartitions, "the manifests are of different partitions (different shard counts or input sets), refusing to merge them: \(detail)")
        }
        var latest: [String: ManifestEntry] = [:]
        var seen = Set<Int>()
        for entry in sources.flatMap(\.entries) {
            if let shard = entry.shard { seen.insert(shard) }
            if let before = latest[entry.file], entry.status == "skipped", before.status != "skipped" { continue }
            latest[entry.file] = entry
        }
        lines = latest.values.sorted { $0.file < $1.file }
        let any = sources.lazy.flatMap(\.entries).first
        partition = any?.partitionKey
        expectedInputs = any?.inputs
        shards = any?.shards
        shardsSeen = seen
    }

    /// The inputs transcribed.
    public var ok: [ManifestEntry] { lines.filter { $0.status == "ok" } }
    /// The inputs that failed.
    public var failed: [ManifestEntry] { lines.filter { $0.status == "error" } }
    /// The inputs only ever skipped (outputs existed).
    public var skipped: [ManifestEntry] { lines.filter { $0.status == "skipped" } }
    /// Shards of the partition with no line at all.
    public var missingShards: [Int] { shards.map { (0..<$0).filter { !shardsSeen.contains($0) } } ?? [] }
    /// Whether every input of the partition has a line (true for unsharded manifests).
    public var complete: Bool { expectedInputs.map { lines.count >= $0 } ?? true }

    /// Seconds of audio transcribed.
    public var audioSeconds: Double { ok.compactMap(\.duration).reduce(0, +) }
    /// Seconds of compute the transcribed inputs took, summed over processes.
    public var computeSeconds: Double { ok.compactMap(\.elapsed).reduce(0, +) }
    /// First start to last finish over the lines kept (sharded runs record when each file finished).
    public var wallSeconds: Double? {
        let timed = lines.compactMap { line in line.finished.map { ($0 - (line.elapsed ?? 0), $0) } }
        guard let first = timed.map(\.0).min(), let last = timed.map(\.1).max(), last > first else { return nil }
        return last - first
    }

    /// What the merge found, in a few lines of words.
    public var summary: String {
        var text = "\(lines.count) files"
        if let expectedInputs, let shards { text += " of \(expectedInputs) in the partition over \(shards) shard\(shards == 1 ? "" : "s")" }
        text += ": \(ok.count) ok, \(failed.count) failed, \(skipped.count) skipped (outputs existed, no transcript in these manifests)\n"
        text += String(format: "audio: %.3f h transcribed", audioSeconds / 3600)
        if computeSeconds > 0 { text += String(format: " in %.3f h of compute (%.1f× real time per process)", computeSeconds / 3600, audioSeconds / computeSeconds) }
        if let wall = wallSeconds {
            text += String(format: "; wall clock %.1f s from the first start to the last finish: %.1f audio hours per hour", wall, audioSeconds / wall)
        }
        text += "\n"
        if !complete, let expectedInputs {
            text += "incomplete: \(expectedInputs - lines.count) input\(expectedInputs - lines.count == 1 ? "" : "s") of the partition have no line"
            if !missingShards.isEmpty { text += " (no lines at all from shard\(missingShards.count == 1 ? "" : "s") \(missingShards.map(String.init).joined(separator: ", ")))" }
            text += "\n"
        }
        if !failed.isEmpty {
            text += "failed:\n" + failed.map { line in
                let reason = line.error ?? "no reason recorded"
                return "  " + (reason.hasPrefix(line.file) ? reason : "\(line.file): \(reason)") + "\n"
            }.joined()
        }
        return text
    }
}
