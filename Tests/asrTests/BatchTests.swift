import Foundation
import Testing
import ASRKit

/// `asr transcribe` on files and directories: golden outputs, failures in a batch, resume, and SIGKILL.
@Suite struct BatchTests {
    let model = "fixtures/models/base-layout"
    let speech = CLI.fixtures.appendingPathComponent("speech_16k.wav")

    func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("asr-batch-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    func files(under directory: URL) -> [String] {
        let enumerator = FileManager.default.enumerator(atPath: directory.path)
        return (enumerator?.allObjects as? [String] ?? []).filter {
            var isDirectory: ObjCBool = false
            FileManager.default.fileExists(atPath: directory.appendingPathComponent($0).path, isDirectory: &isDirectory)
            return !isDirectory.boolValue
        }.sorted()
    }

    /// Numbers in JSON and TSV may differ in the last printed digit across CPUs (BLAS kernels round differently);
    /// everything else must match exactly.
    func expectMatches(_ actual: String, golden: String, file: String) {
        let split: (String) -> [String] = { $0.split(omittingEmptySubsequences: false, whereSeparator: { " \t\n,:[]{}".contains($0) }).map(String.init) }
        let a = split(actual), g = split(golden)
        #expect(a.count == g.count, "\(file): token count differs")
        for (x, y) in zip(a, g) where x != y {
            if let u = Double(x), let v = Double(y), abs(u - v) <= 2e-3 { continue }
            Issue.record("\(file): '\(x)' differs from golden '\(y)'")
            return
        }
    }

    @Test func outputsMatchTheGoldenFiles() throws {
        let out = try temporaryDirectory()
        let result = try CLI.run(["transcribe", "fixtures/speech_16k.wav", "--model", model,
                                  "-f", "txt", "-f", "json", "-f", "srt", "-f", "vtt", "-f", "tsv", "-o", out.path, "--quiet"])
        #expect(result.status == 0, "\(result.stderr)")
        for format in ["txt", "json", "srt", "vtt", "tsv"] {
            let actual = try String(contentsOf: out.appendingPathComponent("speech_16k.\(format)"), encoding: .utf8)
            let golden = try String(contentsOf: CLI.fixtures.appendingPathComponent("golden/speech_16k.\(format)"), encoding: .utf8)
            if format == "json" || format == "tsv" {
                expectMatches(actual, golden: golden, file: format)
            } else {
                #expect(actual == golden, "\(format) differs from fixtures/golden")
            }
        }
    }

    @Test func oneFileInOneFormatGoesToStdout() throws {
        let result = try CLI.run(["transcribe", "fixtures/speech_16k.wav", "--model", model, "-f", "srt"])
        #expect(result.status == 0)
        #expect(result.stdout == (try String(contentsOf: CLI.fixtures.appendingPathComponent("golden/speech_16k.srt"), encoding: .utf8)))
    }

    @Test func aBadFileIsReportedAndTheRestTranscribed() throws {
        let input = try temporaryDirectory(), out = try temporaryDirectory()
        try FileManager.default.createDirectory(at: input.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: speech, to: input.appendingPathComponent("good.wav"))
        try FileManager.default.copyItem(at: CLI.fixtures.appendingPathComponent("audio/stereo_44100_24bit.flac"),
                                         to: input.appendingPathComponent("sub/good2.flac"))
        try "not audio".write(to: input.appendingPathComponent("corrupt.wav"), atomically: true, encoding: .utf8)
        try "notes".write(to: input.appendingPathComponent("notes.txt"), atomically: true, encoding: .utf8)
        let manifest = out.appendingPathComponent("manifest.jsonl")

        let first = try CLI.run(["transcribe", input.path, "--recursive", "--model", model, "-o", out.path,
                                 "-f", "txt", "-f", "json", "--jsonl", manifest.path])
        #expect(first.status == 1)
        #expect(first.stderr.contains("corrupt.wav") && first.stderr.contains("not a supported audio file"))
        #expect(first.stderr.contains("2 transcribed, 1 failed, 0 skipped"))
        #expect(files(under: out) == ["good.json", "good.txt", "manifest.jsonl", "sub/good2.json", "sub/good2.txt"])
        let lines = try String(contentsOf: manifest, encoding: .utf8).split(separator: "\n")
        #expect(lines.count == 3)
        #expect(lines.filter { $0.contains("\"status\":\"ok\"") }.count == 2)
        #expect(lines.contains { $0.contains("corrupt.wav") && $0.contains("\"status\":\"error\"") })

        let good = try String(contentsOf: out.appendingPathComponent("good.txt"), encoding: .utf8)
        #expect(good == (try String(contentsOf: CLI.fixtures.appendingPathComponent("golden/speech_16k.txt"), encoding: .utf8)))

        // A rerun skips what is done and still reports the bad file.
        let second = try CLI.run(["transcribe", input.path, "--recursive", "--model", model, "-o", out.path, "-f", "txt", "-f", "json"])
        #expect(second.status == 1)
        #expect(second.stderr.contains("0 transcribed, 1 failed, 2 skipped"))
        // Without the bad file, everything is good: exit 0; --overwrite redoes the work.
        try FileManager.default.removeItem(at: input.appendingPathComponent("corrupt.wav"))
        let third = try CLI.run(["transcribe", input.path, "--recursive", "--model", model, "-o", out.path, "-f", "txt", "-f", "json", "--overwrite"])
        #expect(third.status == 0)
        #expect(third.stderr.contains("2 transcribed, 0 failed, 0 skipped"))
        // Without --recursive the subdirectory is left alone; next to the input is the default destination.
        let fourth = try CLI.run(["transcribe", input.path, "--model", model])
        #expect(fourth.status == 0)
        #expect(FileManager.default.fileExists(atPath: input.appendingPathComponent("good.txt").path))
        #expect(!FileManager.default.fileExists(atPath: input.appendingPathComponent("sub/good2.txt").path))
    }

    struct SplitMix {
        var state: UInt64
        init(seed: UInt64) { state = seed }
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    @Test func anUnwritableOutputDirectoryIsAClearErrorAndInputsAreUntouched() throws {
        let input = try temporaryDirectory()
        let file = input.appendingPathComponent("talk.wav")
        try FileManager.default.copyItem(at: speech, to: file)
        let before = try Data(contentsOf: file)
        let result = try CLI.run(["transcribe", file.path, "--model", model, "-f", "txt", "-o", "/dev/null/out"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("/dev/null/out"))
        #expect(try Data(contentsOf: file) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: input.path) == ["talk.wav"])
    }

    @Test func aKilledBatchResumesToCompleteIdenticalOutputs() throws {
        let input = try temporaryDirectory(), reference = try temporaryDirectory(), out = try temporaryDirectory()
        for i in 0..<200 {
            try FileManager.default.createSymbolicLink(
                at: input.appendingPathComponent(String(format: "clip%03d.wav", i)), withDestinationURL: speech)
        }
        let arguments = ["transcribe", input.path, "--model", model, "-f", "txt", "-f", "json", "--quiet", "--threads", "1"]
        #expect(try CLI.run(arguments + ["-o", reference.path]).status == 0)

        // Five SIGKILLs at varied moments (seeded, so a failure can be replayed).
        var generator = SplitMix(seed: 2026)
        for _ in 0..<5 {
            let delay = 0.1 + Double(generator.next() % 400) / 1000
            let process = Process()
            process.executableURL = CLI.executable
            process.arguments = arguments + ["-o", out.path]
            process.currentDirectoryURL = CLI.root
            try process.run()
            Thread.sleep(forTimeInterval: delay)
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
        }
        let resumed = try CLI.run(arguments + ["-o", out.path])
        #expect(resumed.status == 0, "\(resumed.stderr)")
        let produced = files(under: out)
        #expect(produced == files(under: reference))
        #expect(!produced.contains { $0.contains(AtomicFile.temporarySuffix) })
        for name in produced {
            let a = try Data(contentsOf: out.appendingPathComponent(name))
            let b = try Data(contentsOf: reference.appendingPathComponent(name))
            #expect(a == b, "\(name) differs from the uninterrupted run")
        }
    }
}
