import Foundation
import Testing
@testable import ASRBatch
@testable import ASRKit

/// Issue 18: the partition of a corpus over N shards (`--shard K/N`), `--shard auto`, and durable manifests.
@Suite struct PartitionTests {
    /// A realistic mix: mostly short clips, some talks, a few long recordings (16 kHz 16-bit WAV and compressed
    /// formats at a tenth of that), like a lab's recordings or a speech data set.
    static func realistic(files: Int, seed: UInt64) -> [Partition.Input] {
        var random = SeededGenerator(seed: seed)
        return (0..<files).map { index in
            let kind = random.uniform()
            let seconds = kind < 0.7 ? 2 + 20 * random.uniform() : kind < 0.99 ? 60 + 600 * random.uniform() : 600 + 3000 * random.uniform()
            let bytesPerSecond = random.uniform() < 0.5 ? 32000.0 : 3200.0
            return Partition.Input(path: String(format: "corpus/%03d/%05d.wav", index % 37, index), bytes: Int64(seconds * bytesPerSecond))
        }
    }

    static let shapes: [(String, [Partition.Input])] = [
        ("empty", []),
        ("one file", [Partition.Input(path: "a.wav", bytes: 100)]),
        ("fewer files than shards", (0..<3).map { Partition.Input(path: "f\($0).wav", bytes: Int64(1000 * ($0 + 1))) }),
        ("all the same size", (0..<50).map { Partition.Input(path: "same/\($0).wav", bytes: 4096) }),
        ("all empty", (0..<20).map { Partition.Input(path: "empty/\($0).wav", bytes: 0) }),
        ("one huge file", [Partition.Input(path: "huge.wav", bytes: 1 << 34)] + (0..<40).map { Partition.Input(path: "s/\($0).wav", bytes: 5000) }),
        ("realistic", realistic(files: 500, seed: 1)),
        ("realistic, small", realistic(files: 45, seed: 7)),
    ]

    @Test func everyInputIsInExactlyOneShard() {
        for (name, inputs) in Self.shapes {
            for count in [1, 2, 3, 4, 5, 7, 8, 16, 33, 100] {
                let assigned = Partition.assign(inputs, count: count)
                #expect(assigned.count == inputs.count)
                #expect(assigned.allSatisfy { (0..<count).contains($0) }, "\(name), N=\(count)")
                var seen = [Int](repeating: 0, count: inputs.count)
                for k in 0..<count {
                    for index in Partition.select(inputs, shard: try! Shard(index: k, count: count)) { seen[index] += 1 }
                }
                #expect(seen.allSatisfy { $0 == 1 }, "\(name), N=\(count): every input in exactly one shard")
            }
        }
    }

    @Test func thePartitionIsStableAndIndependentOfTheOrderGiven() {
        for (name, inputs) in Self.shapes {
            for count in [2, 4, 16] {
                let once = Partition.assign(inputs, count: count), again = Partition.assign(inputs, count: count)
                #expect(once == again, "\(name), N=\(count)")
                var random = SeededGenerator(seed: 42)
                let shuffled = inputs.shuffled(using: &random)
                let reordered = Partition.assign(shuffled, count: count)
                let byPath = Dictionary(uniqueKeysWithValues: zip(inputs.map(\.path), once))
                for (input, shard) in zip(shuffled, reordered) {
                    #expect(byPath[input.path] == shard, "\(name), N=\(count): \(input.path) moved when the inputs were listed in another order")
                }
                #expect(Partition.fingerprint(inputs) == Partition.fingerprint(shuffled))
            }
        }
    }

    @Test func shardsAreBalancedByBytes() {
        // Any corpus: the largest shard is at most the mean plus the largest file (the greedy's guarantee).
        for (name, inputs) in Self.shapes where !inputs.isEmpty {
            for count in [2, 3, 4, 8, 16, 33] {
                var load = [Int64](repeating: 0, count: count)
                for (input, shard) in zip(inputs, Partition.assign(inputs, count: count)) { load[shard] += max(input.bytes, 1) }
                let mean = Double(load.reduce(0, +)) / Double(count)
                #expect(Double(load.max()!) <= mean + Double(inputs.map { max($0.bytes, 1) }.max()!), "\(name), N=\(count)")
            }
        }
        // A realistic mix (2000 files: clips, talks, 1% long recordings up to an hour, WAV and compressed): within
        // 1.3 × the mean for up to 32 shards (about 60 files a shard).
        for seed: UInt64 in [1, 2, 3, 4, 5] {
            let inputs = Self.realistic(files: 2000, seed: seed)
            for count in [2, 3, 4, 8, 16, 32] {
                let assigned = Partition.assign(inputs, count: count)
                var load = [Int64](repeating: 0, count: count)
                for (input, shard) in zip(inputs, assigned) { load[shard] += input.bytes }
                let mean = Double(load.reduce(0, +)) / Double(count)
                #expect(Double(load.max()!) <= 1.3 * mean, "seed \(seed), N=\(count): largest shard \(load.max()!) bytes, mean \(mean)")
            }
        }
        // Equal files: shard sizes differ by at most one file.
        let same = Partition.assign((0..<50).map { Partition.Input(path: "\($0)", bytes: 10) }, count: 8)
        let counts = (0..<8).map { k in same.filter { $0 == k }.count }
        #expect(counts.max()! - counts.min()! <= 1)
    }

    @Test func theFingerprintChangesWithTheInputSet() {
        let inputs = Self.realistic(files: 30, seed: 3)
        var changed = inputs
        changed[4] = Partition.Input(path: changed[4].path, bytes: changed[4].bytes + 1)
        #expect(Partition.fingerprint(inputs) != Partition.fingerprint(changed))
        #expect(Partition.fingerprint(inputs) != Partition.fingerprint(Array(inputs.dropLast())))
        #expect(Partition.fingerprint(inputs).count == 16)
    }
}

@Suite struct ShardSpecTests {
    @Test func explicitShards() throws {
        #expect(try Shard.parse("3/4", shardCount: nil, environment: [:]) == Shard(index: 3, count: 4))
        #expect(try Shard.parse("0/1", shardCount: nil, environment: [:]) == Shard(index: 0, count: 1))
        for bad in ["4/4", "-1/4", "0/0", "1", "a/b", "1/2/3", ""] {
            #expect(throws: ShardError.self, "\(bad)") { try Shard.parse(bad, shardCount: nil, environment: [:]) }
        }
        #expect(throws: ShardError.self) { try Shard.parse("1/4", shardCount: 5, environment: [:]) }
    }

    @Test func slurmArrays() throws {
        let zeroBased = ["SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_MAX": "3", "SLURM_ARRAY_TASK_COUNT": "4"]
        #expect(try Shard.parse("auto", shardCount: nil, environment: zeroBased) == Shard(index: 2, count: 4))
        let oneBased = ["SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "4"]
        #expect(try Shard.parse("auto", shardCount: nil, environment: oneBased) == Shard(index: 3, count: 4))
        let stepped = ["SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_MIN": "0", "SLURM_ARRAY_TASK_STEP": "2", "SLURM_ARRAY_TASK_COUNT": "5"]
        #expect(try Shard.parse("auto", shardCount: nil, environment: stepped) == Shard(index: 3, count: 5))
        #expect(try Shard.parse("auto", shardCount: 8, environment: zeroBased) == Shard(index: 2, count: 8))
        // A list (--array=1,5,7) is not a range: task 7 would be shard 6 of 3.
        let list = ["SLURM_ARRAY_TASK_ID": "7", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_COUNT": "3"]
        #expect(throws: ShardError.self) { try Shard.parse("auto", shardCount: nil, environment: list) }
        let noCount = ["SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "0"]
        #expect { try Shard.parse("auto", shardCount: nil, environment: noCount) } throws: { "\($0)".contains("SLURM_ARRAY_TASK_COUNT") }
    }

    @Test func kubernetesIndexedJobs() throws {
        #expect(try Shard.parse("auto", shardCount: 4, environment: ["JOB_COMPLETION_INDEX": "3"]) == Shard(index: 3, count: 4))
        // The library's error has a code to switch on and says "shard count" (the CLI adds its flag, --shard-count).
        #expect { try Shard.parse("auto", shardCount: nil, environment: ["JOB_COMPLETION_INDEX": "3"]) } throws: {
            ($0 as? ShardError)?.code == .countMissing && !"\($0)".contains("--")
        }
        #expect(throws: ShardError.self) { try Shard.parse("auto", shardCount: 3, environment: ["JOB_COMPLETION_INDEX": "3"]) }
    }

    @Test func noSchedulerNamesTheVariables() {
        #expect {
            try Shard.parse("auto", shardCount: nil, environment: ["HOME": "/root"])
        } throws: { error in
            let text = "\(error)"
            return ["SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT", "JOB_COMPLETION_INDEX"].allSatisfy(text.contains)
        }
    }
}

@Suite struct ManifestTests {
    func temporaryFile() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("asr-manifest-\(UUID().uuidString).jsonl").path
    }

    let partition = ManifestPartition(shard: try! Shard(index: 1, count: 4), inputSet: "0123456789abcdef", inputs: 10)

    @Test func linesAreAppendedAndAResumeKeepsThem() throws {
        let path = temporaryFile()
        defer { unlink(path) }
        do {
            let writer = try ManifestWriter(path: path, restart: false, partition: partition)
            writer.append(#"{"file":"a.wav","status":"ok","duration":1.5,"elapsed":0.1}"#)
            // Written and on disk before the next input starts (no close needed).
            #expect(try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").count == 1)
            writer.append(#"{"file":"b.wav","status":"error","error":"broken"}"#)
        }
        let before = try String(contentsOfFile: path, encoding: .utf8)
        // A kill in the middle of a line leaves a torn tail: it is cut, the complete lines stay byte for byte.
        try (before + #"{"file":"c.wa"#).write(toFile: path, atomically: false, encoding: .utf8)
        do {
            let writer = try ManifestWriter(path: path, restart: false, partition: partition)
            #expect(writer.previous == ["a.wav": "ok", "b.wav": "error"])
            writer.append(#"{"file":"b.wav","status":"ok","duration":2,"elapsed":0.2}"#)
        }
        let after = try String(contentsOfFile: path, encoding: .utf8)
        #expect(after.hasPrefix(before))
        let entries = ManifestEntry.parse(Data(after.utf8))
        #expect(entries.invalid.isEmpty && entries.entries.count == 3)
        #expect(entries.entries.allSatisfy { $0.shard == 1 && $0.shards == 4 && $0.inputSet == "0123456789abcdef" && $0.finished != nil })
        // --overwrite replaces the lines of the files it redoes and keeps the others.
        do {
            let restarted = try ManifestWriter(path: path, restart: true, redone: ["b.wav"], partition: partition)
            #expect(restarted.previous == ["a.wav": "ok"] && restarted.droppedLines == 0)
        }
        let kept = ManifestEntry.parse(try Data(contentsOf: URL(fileURLWithPath: path))).entries
        #expect(kept.map(\.file) == ["a.wav"])
        // Lines of another partition cannot stay beside this run's: dropped, and counted.
        let other = ManifestPartition(shard: try Shard(index: 2, count: 3), inputSet: "fedcba9876543210", inputs: 10)
        let restarted = try ManifestWriter(path: path, restart: true, redone: [], partition: other)
        #expect(restarted.droppedLines == 1 && restarted.previous.isEmpty)
        #expect(try String(contentsOfFile: path, encoding: .utf8).isEmpty)
    }

    @Test func anotherPartitionOrASecondWriterIsRefused() throws {
        let path = temporaryFile()
        defer { unlink(path) }
        let writer = try ManifestWriter(path: path, restart: false, partition: partition)
        writer.append(#"{"file":"a.wav","status":"ok"}"#)
        withExtendedLifetime(writer) {
            #expect(throws: ASRError.self, "two processes (tasks) writing one manifest") {
                try ManifestWriter(path: path, restart: false, partition: partition)
            }
        }
        let other = ManifestPartition(shard: try Shard(index: 1, count: 5), inputSet: "0123456789abcdef", inputs: 10)
        try FileManager.default.copyItem(atPath: path, toPath: path + ".copy")
        defer { unlink(path + ".copy") }
        #expect(throws: ASRError.self) { try ManifestWriter(path: path + ".copy", restart: false, partition: other) }
        #expect(throws: ASRError.self) { try ManifestWriter(path: path + ".copy", restart: false, partition: nil) }
    }

    func entry(_ file: String, _ status: String, shard: Int = 0, shards: Int = 2, set: String = "s", inputs: Int = 3, finished: Double = 100) -> ManifestEntry {
        ManifestEntry(#"{"file":"\#(file)","status":"\#(status)","duration":10,"elapsed":1,"error":"\#(status == "error" ? "bad" : "")","finished":\#(finished),"input_set":"\#(set)","inputs":\#(inputs),"shard":\#(shard),"shards":\#(shards)}"#)!
    }

    @Test func mergeKeepsTheLatestFinalStatusOfEachFile() throws {
        let merge = try ManifestMerge([
            .init(name: "m0", entries: [entry("a", "error", finished: 10), entry("a", "ok", finished: 20), entry("b", "ok"), entry("b", "skipped")]),
            .init(name: "m1", entries: [entry("c", "skipped", shard: 1), entry("d", "error", shard: 1)]),
        ])
        #expect(merge.lines.map(\.file) == ["a", "b", "c", "d"])
        #expect(merge.lines.map(\.status) == ["ok", "ok", "skipped", "error"])
        #expect(merge.ok.count == 2 && merge.failed.count == 1 && merge.skipped.count == 1)
        #expect(merge.audioSeconds == 20 && merge.complete && merge.missingShards.isEmpty)
        #expect(merge.summary.contains("d: bad"))
        let partial = try ManifestMerge([.init(name: "m0", entries: [entry("a", "ok")])])
        #expect(!partial.complete && partial.missingShards == [1])
    }

    @Test func mergeRefusesManifestsOfDifferentPartitions() {
        #expect(throws: ShardError.self) {
            try ManifestMerge([.init(name: "m0", entries: [entry("a", "ok")]), .init(name: "m1", entries: [entry("b", "ok", shard: 1, shards: 3)])])
        }
        #expect(throws: ShardError.self) {
            try ManifestMerge([.init(name: "m0", entries: [entry("a", "ok")]), .init(name: "m1", entries: [entry("b", "ok", shard: 1, set: "other")])])
        }
        #expect(throws: ShardError.self) {
            try ManifestMerge([.init(name: "m0", entries: [entry("a", "ok")]), .init(name: "m1", entries: [ManifestEntry(#"{"file":"b","status":"ok"}"#)!])])
        }
    }
}
