import ASRBatch
import ASRKit
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 18: `asr transcribe --shard K/N|auto`, `--list-shard`, durable per-shard manifests, `asr manifest merge`,
/// SIGTERM, and the Kubernetes example.
@Suite struct ShardCommandTests {
    /// The environment of the test process without any scheduler's variables (the suite may itself run in a job),
    /// taken once: runs compared byte for byte must get the same OpenBLAS kernel even if a test changes the variables.
    static let cleanEnvironment: [String: String] =
        ProcessInfo.processInfo.environment.filter { !$0.key.hasPrefix("SLURM_") && $0.key != "JOB_COMPLETION_INDEX" }

    static func start(_ arguments: [String], environment: [String: String] = cleanEnvironment, in directory: URL) throws -> Process {
        let process = Process()
        process.executableURL = CLI.executable
        process.arguments = arguments
        process.environment = environment
        process.currentDirectoryURL = directory
        process.standardOutput = try FileHandle(forWritingTo: touch(directory.appendingPathComponent("stdout-\(UUID().uuidString)")))
        process.standardError = try FileHandle(forWritingTo: touch(directory.appendingPathComponent("stderr-\(UUID().uuidString)")))
        process.standardInput = FileHandle.nullDevice
        try process.run()
        return process
    }

    static func touch(_ url: URL) -> URL {
        FileManager.default.createFile(atPath: url.path, contents: nil)
        return url
    }

    static func run(_ arguments: [String], environment: [String: String] = cleanEnvironment, in directory: URL) throws -> (status: Int32, stdout: String, stderr: String) {
        let out = directory.appendingPathComponent("run-\(UUID().uuidString).out"), err = directory.appendingPathComponent("run-\(UUID().uuidString).err")
        let process = Process()
        process.executableURL = CLI.executable
        process.arguments = arguments
        process.environment = environment
        process.currentDirectoryURL = directory
        process.standardOutput = try FileHandle(forWritingTo: touch(out))
        process.standardError = try FileHandle(forWritingTo: touch(err))
        process.standardInput = FileHandle.nullDevice
        try process.run()
        let deadline = Date().addingTimeInterval(300)
        while process.isRunning && Date() < deadline { usleep(10000) }
        if process.isRunning { kill(process.processIdentifier, SIGKILL) }
        process.waitUntilExit()
        defer { unlink(out.path); unlink(err.path) }
        return (process.terminationStatus, (try? String(contentsOf: out, encoding: .utf8)) ?? "", (try? String(contentsOf: err, encoding: .utf8)) ?? "")
    }

    /// A corpus of `count` bundled samples (varied lengths) in two folders, plus `broken` files that are not audio.
    static func corpus(_ count: Int, broken: Int = 0, in directory: URL) throws -> URL {
        let root = directory.appendingPathComponent("corpus")
        let samples = try FileManager.default.contentsOfDirectory(atPath: Runner.builtin.path).filter { $0.hasSuffix(".wav") }.sorted()
        for i in 0..<count {
            let sub = root.appendingPathComponent(i % 3 == 0 ? "b" : "a")
            try FileManager.default.createDirectory(at: sub, withIntermediateDirectories: true)
            try FileManager.default.copyItem(at: Runner.builtin.appendingPathComponent(samples[i % samples.count]),
                                             to: sub.appendingPathComponent(String(format: "clip%03d.wav", i)))
        }
        for i in 0..<broken {
            try "not audio \(i)\n".write(to: root.appendingPathComponent("a/broken\(i).wav"), atomically: false, encoding: .utf8)
        }
        return root
    }

    static func files(under directory: URL) -> [String] {
        ((FileManager.default.enumerator(atPath: directory.path)?.allObjects as? [String]) ?? []).filter {
            var isDirectory: ObjCBool = false
            FileManager.default.fileExists(atPath: directory.appendingPathComponent($0).path, isDirectory: &isDirectory)
            return !isDirectory.boolValue
        }.sorted()
    }

    static func lines(_ url: URL) throws -> [[String: Any]] {
        try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    @Test func listShardCoversEveryFileOnceAndAutoFollowsTheScheduler() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let root = try Self.corpus(23, broken: 2, in: dir)
        var all: [String] = []
        var shards: [[String]] = []
        for k in 0..<4 {
            let listed = try Self.run(["transcribe", "corpus", "-r", "--list-shard", "\(k)/4"], in: dir)
            #expect(listed.status == 0, "\(listed.stderr)")
            #expect(listed.stderr.contains("shard \(k)/4"))
            let files = listed.stdout.split(separator: "\n").map(String.init)
            shards.append(files)
            all += files
        }
        #expect(all.sorted() == Self.files(under: root).map { "corpus/" + $0 }, "every input in exactly one shard")
        #expect(shards.allSatisfy { !$0.isEmpty })
        // Kubernetes Indexed Job: JOB_COMPLETION_INDEX with --shard-count; Slurm: the array task's variables.
        var environment = Self.cleanEnvironment
        environment["JOB_COMPLETION_INDEX"] = "2"
        let kubernetes = try Self.run(["transcribe", "corpus", "-r", "--list-shard", "auto", "--shard-count", "4"], environment: environment, in: dir)
        #expect(kubernetes.status == 0 && kubernetes.stdout.split(separator: "\n").map(String.init) == shards[2], "\(kubernetes.stderr)")
        let noCount = try Self.run(["transcribe", "corpus", "-r", "--list-shard", "auto"], environment: environment, in: dir)
        #expect(noCount.status == 2 && noCount.stderr.contains("--shard-count"))
        var slurm = Self.cleanEnvironment
        slurm.merge(["SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "4", "SLURM_ARRAY_TASK_COUNT": "4"]) { $1 }
        let array = try Self.run(["transcribe", "corpus", "-r", "--list-shard", "auto"], environment: slurm, in: dir)
        #expect(array.status == 0 && array.stdout.split(separator: "\n").map(String.init) == shards[3], "\(array.stderr)")
        // No scheduler: exit 2, naming the variables looked for.
        let none = try Self.run(["transcribe", "corpus", "-r", "--shard", "auto", "-o", "out"], in: dir)
        #expect(none.status == 2)
        for name in ["SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT", "JOB_COMPLETION_INDEX"] {
            #expect(none.stderr.contains(name), "\(none.stderr)")
        }
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("out").path))
        #expect(try Self.run(["transcribe", "corpus", "--shard", "4/4"], in: dir).status == 2)
        #expect(try Self.run(["transcribe", "-", "--shard", "0/2", "-o", "out"], in: dir).status == 2)
    }

    @Test func shardsAndMergeGiveWhatOneRunGives() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let root = try Self.corpus(10, broken: 1, in: dir)
        let common = ["transcribe", "corpus", "-r", "-f", "txt", "-f", "json", "-q", "--threads", "1"]
        let single = try Self.run(common + ["-o", "single"], in: dir)
        #expect(single.status == 1, "\(single.stderr)")
        for k in 0..<3 {
            let shard = try Self.run(common + ["-o", "sharded", "--shard", "\(k)/3"], in: dir)
            #expect(shard.status == 0 || shard.status == 1, "\(shard.stderr)")
            #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("sharded/manifest-\(k).jsonl").path), "the default manifest")
        }
        let sharded = dir.appendingPathComponent("sharded")
        let outputs = Self.files(under: sharded).filter { !$0.hasPrefix("manifest-") }
        #expect(outputs == Self.files(under: dir.appendingPathComponent("single")))
        #expect(outputs.count == 2 * 10)
        for name in outputs {
            #expect(try Data(contentsOf: sharded.appendingPathComponent(name)) == Data(contentsOf: dir.appendingPathComponent("single/" + name)), "\(name)")
        }
        let merged = try Self.run(["manifest", "merge", "sharded/manifest-0.jsonl", "sharded/manifest-1.jsonl", "sharded/manifest-2.jsonl", "-o", "all.jsonl"], in: dir)
        #expect(merged.status == 1, "a file failed: \(merged.stderr)")
        #expect(merged.stderr.contains("11 files of 11") && merged.stderr.contains("10 ok, 1 failed"), "\(merged.stderr)")
        #expect(merged.stderr.contains("broken0.wav"))
        let lines = try Self.lines(dir.appendingPathComponent("all.jsonl"))
        #expect(lines.map { $0["file"] as? String ?? "" } == Self.files(under: root).map { "corpus/" + $0 })
        #expect(lines.filter { $0["status"] as? String == "ok" }.allSatisfy { ($0["transcript"] as? String) != nil })
        // Missing shard: incomplete (exit 1, named).
        let partial = try Self.run(["manifest", "merge", "sharded/manifest-0.jsonl", "-o", "-"], in: dir)
        #expect(partial.status == 1 && partial.stderr.contains("incomplete"), "\(partial.stderr)")
        // Another partition (N = 2) is refused, and so is rerunning with another N into the same manifest.
        #expect(try Self.run(common + ["-o", "other", "--shard", "0/2"], in: dir).status <= 1)
        let mixed = try Self.run(["manifest", "merge", "sharded/manifest-0.jsonl", "other/manifest-0.jsonl"], in: dir)
        #expect(mixed.status == 2 && mixed.stderr.contains("different partitions"), "\(mixed.stderr)")
        let again = try Self.run(common + ["-o", "sharded", "--shard", "0/2"], in: dir)
        #expect(again.status == 1 && again.stderr.contains("another run"), "\(again.stderr)")
    }

    @Test func sigtermStopsCleanlyAndTheRetryFinishesTheShard() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let root = try Self.corpus(40, in: dir)
        let arguments = ["transcribe", "corpus", "-r", "-f", "txt", "-q", "--threads", "1", "-o", "out", "--shard", "0/1", "--jsonl", "out/m-%K-of-%N.jsonl"]
        let manifest = dir.appendingPathComponent("out/m-0-of-1.jsonl")
        let process = try Self.start(arguments, in: dir)
        let deadline = Date().addingTimeInterval(120)
        while process.isRunning && Date() < deadline && ((try? String(contentsOf: manifest, encoding: .utf8))?.split(separator: "\n").count ?? 0) < 3 {
            usleep(20000)
        }
        #expect(process.isRunning, "still working when SIGTERM comes")
        kill(process.processIdentifier, SIGTERM)
        process.waitUntilExit()
        #expect(process.terminationReason == .exit && process.terminationStatus == 143)
        let before = try String(contentsOf: manifest, encoding: .utf8)
        let stopped = try Self.lines(manifest)
        #expect(stopped.count >= 3 && stopped.count < 40, "\(stopped.count) lines")
        #expect(stopped.allSatisfy { $0["status"] as? String == "ok" })
        #expect(!Self.files(under: dir.appendingPathComponent("out")).contains { $0.contains(AtomicFile.temporarySuffix) })
        // The retry (a requeued task runs the same command) does the rest and keeps the earlier lines.
        let retry = try Self.run(arguments, in: dir)
        #expect(retry.status == 0, "\(retry.stderr)")
        let after = try String(contentsOf: manifest, encoding: .utf8)
        #expect(after.hasPrefix(before))
        let lines = try Self.lines(manifest)
        #expect(lines.count == 40, "every file once: \(lines.count) lines")
        #expect(Set(lines.map { $0["file"] as? String ?? "" }) == Set(Self.files(under: root).map { "corpus/" + $0 }))
        #expect(lines.allSatisfy { $0["status"] as? String == "ok" && $0["shards"] as? Int == 1 })
    }

    /// The Kubernetes example, as far as this machine allows: its YAML parses, is an Indexed Job, and the
    /// completions it names are the --shard-count of the command it runs.
    @Test func theKubernetesExampleIsAnIndexedJobOfTheDocumentedCommand() throws {
        let url = CLI.root.appendingPathComponent("examples/kubernetes/transcribe-job.yaml")
        let text = try String(contentsOf: url, encoding: .utf8)
        #expect(text.contains("completionMode: Indexed"))
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        python.arguments = ["python3", "-c", """
            import sys, yaml
            job = yaml.safe_load(open(sys.argv[1]))
            assert job["kind"] == "Job", job["kind"]
            spec = job["spec"]
            assert spec["completionMode"] == "Indexed"
            n = spec["completions"]
            container = spec["template"]["spec"]["containers"][0]
            command = " ".join(container.get("command", []) + container.get("args", []))
            assert "--shard auto" in command and f"--shard-count {n}" in command, command
            assert spec["template"]["spec"]["restartPolicy"] == "Never"
            rules = spec["podFailurePolicy"]["rules"]
            assert any(143 in r.get("onExitCodes", {}).get("values", []) for r in rules)
            print("ok", n)
            """, url.path]
        let out = Pipe(), err = Pipe()
        python.standardOutput = out
        python.standardError = err
        try python.run()
        let output = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        let errors = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        python.waitUntilExit()
        let noParser = python.terminationStatus == 127 || errors.contains("No module named 'yaml'")
        if !noParser {
            #expect(python.terminationStatus == 0 && output.hasPrefix("ok"), "the YAML checks: \(output)\(errors)")
        }
        // Without PyYAML (a bare machine) the same facts, by text.
        let completions = text.split(separator: "\n").first { $0.trimmingCharacters(in: .whitespaces).hasPrefix("completions:") }
        let n = completions.map { String($0.split(separator: ":")[1].split(separator: " ")[0]) } ?? "?"
        #expect(text.contains("--shard-count") && text.contains("\"\(n)\"") || text.contains("--shard-count \(n)"), "completions \(n)")
    }
}
