import ASRBatch
import ASRKit
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Issue 27: the defects a new user found in an hour, one test each.
@Suite struct NewUserDefectTests {
    static let model = CLI.fixtures.appendingPathComponent("models/base-layout")
    static let long = CLI.fixtures.appendingPathComponent("audio/long_speech_60s.ogg").path

    /// Every file under `directory` with its bytes, relative paths as keys.
    static func snapshot(_ directory: URL) throws -> [String: Data] {
        var result: [String: Data] = [:]
        let root = directory.resolvingSymlinksInPath().path
        for case let url as URL in FileManager.default.enumerator(at: directory, includingPropertiesForKeys: nil)! {
            let path = url.resolvingSymlinksInPath().path
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), !isDirectory.boolValue else { continue }
            result[String(path.dropFirst(root.count))] = try Data(contentsOf: url)
        }
        return result
    }

    // MARK: 1. quantize --overwrite never deletes what it did not write

    @Test func quantizeRefusesAnOutputThatContainsTheInputAndLeavesItIntact() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let parent = dir.appendingPathComponent("parent")
        let input = parent.appendingPathComponent("bf16model")
        try FileManager.default.createDirectory(at: parent, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Self.model, to: input)
        try Data("mine".utf8).write(to: parent.appendingPathComponent("notes.txt"))
        let before = try Self.snapshot(parent)

        // OUT an ancestor of IN, with and without --overwrite; OUT inside IN; OUT == IN.
        for (output, words) in [(parent.path, "contains the input"), (dir.path, "contains the input"),
                                (input.appendingPathComponent("sub").path, "inside the input"), (input.path, "is the input")] {
            for extra in [[], ["--overwrite"]] {
                let result = try Runner.run(["quantize", input.path, output, "--precision", "int8"] + extra, limit: 60)
                #expect(result.status == 1, "\(output) \(extra): \(result.stderr)")
                #expect(result.stderr.contains(words), "\(result.stderr)")
            }
        }
        #expect(try Self.snapshot(parent) == before, "the input model and the unrelated file are untouched")
        #expect(!FileManager.default.fileExists(atPath: input.appendingPathComponent("sub").path))
    }

    @Test func quantizeIntoTheWorkingDirectoryKeepsItsFiles() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let work = dir.appendingPathComponent("work")
        try FileManager.default.createDirectory(at: work.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try Data("draft".utf8).write(to: work.appendingPathComponent("essay.txt"))
        try Data("x".utf8).write(to: work.appendingPathComponent("sub/data.bin"))

        let refused = try Runner.run(["quantize", Self.model.path, ".", "--precision", "int8"], in: work, limit: 60)
        #expect(refused.status == 1 && refused.stderr.contains("not empty"), "\(refused.stderr)")

        let result = try Runner.run(["quantize", Self.model.path, ".", "--precision", "int8", "--overwrite"], in: work, limit: 60)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.output.contains("weights before: 166752 bytes"), "\(result.output)")
        #expect(try String(contentsOf: work.appendingPathComponent("essay.txt"), encoding: .utf8) == "draft")
        #expect(try String(contentsOf: work.appendingPathComponent("sub/data.bin"), encoding: .utf8) == "x")
        let names = Set(try FileManager.default.contentsOfDirectory(atPath: work.path))
        #expect(names == ["essay.txt", "sub", "model.safetensors", "config.json", "vocab.json", "preprocessor_config.json",
                          "tokenizer_config.json"], "no temporary folder left: \(names)")
        // What it wrote is the int8 model, and it runs.
        let run = try Runner.run(["transcribe", CLI.fixtures.appendingPathComponent("speech_16k.wav").path, "--model", work.path,
                                  "--precision", "int8"], limit: 60)
        #expect(run.status == 0 && !run.output.isEmpty, "\(run.stderr)")
    }

    @Test func quantizeOverwriteReplacesOnlyItsOwnFilesAndRefusesToMixModels() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let out = dir.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try Data("keep me".utf8).write(to: out.appendingPathComponent("README.md"))
        #expect(try Runner.run(["quantize", Self.model.path, out.path, "--precision", "int8", "--overwrite"], limit: 60).status == 0)
        let int8Config = try String(contentsOf: out.appendingPathComponent("config.json"), encoding: .utf8)
        #expect(int8Config.contains("quantization_config"))
        // Again at bf16: the model files are replaced, the README stays.
        let again = try Runner.run(["quantize", Self.model.path, out.path, "--precision", "bf16", "--overwrite"], limit: 60)
        #expect(again.status == 0, "\(again.stderr)")
        let bf16Config = try String(contentsOf: out.appendingPathComponent("config.json"), encoding: .utf8)
        #expect(!bf16Config.contains("quantization_config") && bf16Config.contains("bfloat16"))
        #expect(try String(contentsOf: out.appendingPathComponent("README.md"), encoding: .utf8) == "keep me")

        // Another model's weights there would be mixed with the new one: refused, naming them, nothing changed.
        try Data("not really".utf8).write(to: out.appendingPathComponent("pytorch_model.bin"))
        let before = try Self.snapshot(out)
        let mixed = try Runner.run(["quantize", Self.model.path, out.path, "--precision", "int8", "--overwrite"], limit: 60)
        #expect(mixed.status == 1 && mixed.stderr.contains("pytorch_model.bin"), "\(mixed.stderr)")
        #expect(try Self.snapshot(out) == before)
    }

    // MARK: 2. a file whose name begins with '-'

    @Test func aDashNamedFileInAGlobIsAnInputNeverHelp() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        for name in ["-dash.wav", "-h.wav", "plain.wav"] {
            try FileManager.default.copyItem(atPath: Runner.sample, toPath: dir.appendingPathComponent(name).path)
        }
        // What `asr transcribe *.wav -o out` expands to (the shell sorts '-' first).
        let result = try Runner.run(["transcribe", "-dash.wav", "-h.wav", "plain.wav", "-o", "out", "-q"], in: dir, limit: 120)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(!result.output.contains("USAGE"), "help was printed")
        let outputs = Set(try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("out").path))
        #expect(outputs == ["-dash.txt", "-h.txt", "plain.txt"], "\(outputs)")

        // A dash name that is no file: a usage error saying how to write a file name, never exit 0.
        for missing in ["-foo.wav", "-dash.flac", "-sh"] {
            let unknown = try Runner.run(["transcribe", missing, "plain.wav"], in: dir, limit: 60)
            #expect(unknown.status == 2, "\(missing): \(unknown.stderr)")
            #expect(unknown.stderr.contains("./\(missing)") && unknown.stderr.contains("--"), "\(unknown.stderr)")
        }
        // After `--` every argument is a file, as POSIX has it.
        let separated = try Runner.run(["transcribe", "-o", "out2", "-q", "--", "-dash.wav"], in: dir, limit: 60)
        #expect(separated.status == 0, "\(separated.stderr)")
        #expect(FileManager.default.fileExists(atPath: dir.appendingPathComponent("out2/-dash.txt").path))
        // Negative numbers are still option values (and refused as such).
        #expect(try Runner.run(["transcribe", "plain.wav", "--threads", "-12"], in: dir, limit: 60).stderr.contains("--threads must be"))
    }

    // MARK: 3. progress within a long file, on a terminal only

    /// Runs `asr` with stderr on a pseudo-terminal (util-linux's `script` makes it; stdout goes to /dev/null) and
    /// returns what the terminal showed.
    static func runOnTerminal(_ arguments: [String], in directory: URL) throws -> (status: Int32, screen: String) {
        func quoted(_ s: String) -> String { "'" + s.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        let command = ([CLI.executable.path] + arguments).map(quoted).joined(separator: " ") + " >/dev/null"
        let result = try Runner.run(["/usr/bin/script", "-q", "-e", "-c", command, "/dev/null"], in: directory, limit: 300)
        return (result.status, result.output)
    }

    /// The within-file updates a terminal showed: (seconds done, percent), in order.
    static func updates(_ screen: String, file: String) -> [(done: String, percent: Int)] {
        screen.components(separatedBy: "\r").compactMap { line -> (String, Int)? in
            guard let range = line.range(of: "\(file): ") else { return nil }
            let rest = line[range.upperBound...]
            guard rest.contains("of audio ("), let open = rest.firstIndex(of: "("), let percent = rest[rest.index(after: open)...].split(separator: "%").first,
                  let value = Int(percent) else { return nil }
            return (String(rest.prefix { $0 != " " }), value)
        }
    }

    @Test func progressMovesWithinALongFileOnATerminal() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let chunked = ["--chunk-seconds", "4", "--stride-seconds", "1"]
        for arguments in [["transcribe", Self.long, "-o", dir.appendingPathComponent("out").path] + chunked,  // a batch
                          ["transcribe", Self.long] + chunked,                                             // one file to stdout
                          ["logits", Self.long, "-o", dir.appendingPathComponent("l.npy").path] + chunked] {
            let (status, screen) = try Self.runOnTerminal(arguments, in: dir)
            #expect(status == 0, "\(arguments): \(screen)")
            let updates = Self.updates(screen, file: "long_speech_60s.ogg")
            #expect(updates.contains { $0.percent > 0 && $0.percent < 100 }, "\(arguments[0]): no update within the file: \(screen.debugDescription)")
            #expect(updates.map(\.percent) == updates.map(\.percent).sorted(), "progress only moves forward: \(updates.map(\.percent))")
            // Every update names the same total, the file's length (1:09), and one at 100 % has done all of it.
            let totals = Set(screen.components(separatedBy: "\r").compactMap { line -> String? in
                guard let slash = line.range(of: " / "), let end = line.range(of: " of audio (") else { return nil }
                return String(line[slash.upperBound..<end.lowerBound])
            })
            #expect(totals == ["1:09"], "the total is the file's length: \(screen.debugDescription)")
            #expect(updates.allSatisfy { $0.percent < 100 || $0.done == "1:09" }, "\(screen.debugDescription)")
        }
        // With --quiet, nothing moves; not on a terminal, no redraws at all.
        let (_, quiet) = try Self.runOnTerminal(["transcribe", Self.long, "-q", "--chunk-seconds", "4", "--stride-seconds", "1"], in: dir)
        #expect(!quiet.contains("of audio"), "\(quiet.debugDescription)")
        let piped = try Runner.run(["transcribe", Self.long, "-o", dir.appendingPathComponent("o2").path, "--chunk-seconds", "4",
                                    "--stride-seconds", "1"], limit: 300)
        #expect(piped.status == 0 && !piped.stderr.contains("\r") && !piped.stderr.contains("of audio ("), "\(piped.stderr.debugDescription)")
    }

    // MARK: 4. --overwrite with --jsonl keeps the records of the inputs it does not redo

    @Test func overwriteKeepsTheManifestLinesOfUntouchedInputs() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let names = (0..<5).map { "f\($0).wav" }
        for name in names { try FileManager.default.copyItem(atPath: Runner.sample, toPath: dir.appendingPathComponent(name).path) }
        #expect(try Runner.run(["transcribe"] + names + ["-o", "out", "--jsonl", "m.jsonl", "-q"], in: dir, limit: 120).status == 0)
        func lines() throws -> [ManifestEntry] {
            ManifestEntry.parse(try Data(contentsOf: dir.appendingPathComponent("m.jsonl"))).entries
        }
        let first = try lines()
        #expect(first.count == 5)
        let redo = try Runner.run(["transcribe", "f1.wav", "f3.wav", "-o", "out", "--jsonl", "m.jsonl", "-q", "--overwrite"], in: dir, limit: 120)
        #expect(redo.status == 0, "\(redo.stderr)")
        let after = try lines()
        #expect(after.count == 5, "\(after.map(\.text))")
        #expect(Set(after.map(\.file)) == Set(names))
        #expect(after.allSatisfy { $0.status == "ok" })
        // The untouched inputs' lines are the very lines written before, byte for byte.
        for name in ["f0.wav", "f2.wav", "f4.wav"] {
            #expect(after.first { $0.file == name }?.text == first.first { $0.file == name }?.text)
        }
        #expect(after.suffix(2).map(\.file) == ["f1.wav", "f3.wav"], "the redone files' new lines are appended")
    }

    // MARK: 5-8. help, messages, exit codes

    /// `asr bench` puts each stage against this CPU's measured peak for the formats its products run in (issue 26).
    @Test func benchShowsEachStageAgainstTheMeasuredPeak() throws {
        let bench = try Runner.run(["bench", "--seconds", "2", "--runs", "1", "--precision", "int8"], limit: 120)
        #expect(bench.status == 0, "\(bench.stderr)")
        #expect(bench.output.contains("measured peaks per core: fp32 "), "\(bench.output)")
        let feedForward = try #require(bench.output.split(separator: "\n").first { $0.contains("feed-forward") })
        // time, share, GFLOP/s, share of the peak, formats
        #expect(feedForward.contains(" s ") && feedForward.contains("int8 100 %"), "\(feedForward)")
        #expect(feedForward.split(separator: " ").filter { $0 == "%" }.count == 3, "\(feedForward)")
        // And the whole pass's limit: every stage's products at those peaks, against the median run.
        let limit = try #require(bench.output.split(separator: "\n").first { $0.hasPrefix("whole pass at the measured peaks: ") })
        let numbers = limit.split(whereSeparator: { !"0123456789.".contains($0) }).compactMap { Double($0) }
        #expect(numbers.count == 3 && numbers[0] > 0 && numbers[2] > 0, "\(limit)")
    }

    @Test func helpAndUsageAgree() throws {
        let quantize = try Runner.run(["quantize", "--help"], limit: 30)
        #expect(quantize.output.contains("bf16, int8") && !quantize.output.contains("fp32,"), "\(quantize.output)")
        let decode = try Runner.run(["decode", "--help"], limit: 30)
        #expect(!decode.output.contains("--threads") && !decode.output.contains("--precision"), "\(decode.output)")
        #expect(try Runner.run(["decode", "x.npy", "--threads", "99"], limit: 30).status == 2)
        let bench = try Runner.run(["bench", "--help"], limit: 30)
        #expect(!bench.output.contains("factor   "), "\(bench.output)")
        // --chunk-seconds 0 is one pass in transcribe as in logits.
        let onePass = try Runner.run(["transcribe", Runner.sample, "--chunk-seconds", "0"], limit: 60)
        let chunked = try Runner.run(["transcribe", Runner.sample], limit: 60)
        #expect(onePass.status == 0 && onePass.output == chunked.output, "\(onePass.stderr)")
        // The README names every command and the live/raw options.
        let readme = try String(contentsOf: CLI.root.appendingPathComponent("README.md"), encoding: .utf8)
        for word in ["asr serve", "asr kernels", "asr quantize", "--raw", "--rate", "--channels", "--live", "manifest merge"] {
            #expect(readme.contains(word), "README lacks \(word)")
        }
    }

    @Test func aPortInUseNamesThePortAndTheOption() throws {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) == 0 && listen(fd, 1) == 0 && getsockname(fd, $0, &length) == 0 }
        }
        #expect(bound)
        let port = Int(UInt16(bigEndian: address.sin_port))
        let result = try Runner.run(["serve", "--port", String(port)], limit: 60)
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains("127.0.0.1:\(port)") && result.stderr.contains("--port")
                && result.stderr.contains("in use"), "\(result.stderr)")
        #expect(!result.stderr.contains("shutting down") && !result.stderr.contains("bind(descriptor"), "\(result.stderr)")
    }

    @Test func aHotwordTheModelCannotWriteIsAUsageErrorNamingTheCharacters() throws {
        let result = try Runner.run(["transcribe", Runner.sample, "--hotword", "Zürich9"], limit: 60)
        #expect(result.status == 2, "\(result.stderr)")
        #expect(result.stderr.contains("'ü'") && result.stderr.contains("'9'"), "\(result.stderr)")
        #expect(result.stderr.contains("A B C"), "letters come first in the alphabet shown: \(result.stderr)")
        // The library's error is the hotword's own, with no command-line flag in it.
        do {
            var options = BeamSearchOptions()
            options.hotwords = [Hotword("ABC")]
            _ = try BeamSearchDecoder(vocabulary: Vocabulary(tokens: ["<pad>", "|", "A", "B"], blankID: 0), languageModel: nil,
                                      options: options)
            Issue.record("an unwritable hotword was accepted")
        } catch ASRError.invalidHotword(let hotword, let reason) {
            #expect(hotword == "ABC" && reason.contains("'C'") && !reason.contains("--"))
        }
    }

    @Test func cosmeticsAreRight() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.copyItem(atPath: Runner.sample, toPath: dir.appendingPathComponent("a.wav").path)
        #expect(try Runner.run(["transcribe", "a.wav", "-o", "out"], in: dir, limit: 60).status == 0)
        // All skipped: no demo-model note, no "0.0× real time".
        let skipped = try Runner.run(["transcribe", "a.wav", "-o", "out"], in: dir, limit: 60)
        #expect(skipped.status == 0 && !skipped.stderr.contains("demo model") && !skipped.stderr.contains("real time"), "\(skipped.stderr)")
        // A manifest file with no manifest line in it: exit 1.
        try Data("hello\nworld\n".utf8).write(to: dir.appendingPathComponent("notes.jsonl"))
        let merge = try Runner.run(["manifest", "merge", "notes.jsonl"], in: dir, limit: 30)
        #expect(merge.status == 1 && merge.stderr.contains("no manifest lines"), "\(merge.stderr)")
        // asr info counts the checkpoint's parameters as its training log does.
        let info = try Runner.run(["info"], limit: 30)
        #expect(info.output.contains("parameters: 5627680") && info.output.contains("\"parameters\": 5627680"), "\(info.output)")
    }
}
