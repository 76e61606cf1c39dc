import ASRBuiltinModel
import ASRKit
import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Runs the built binary with a working directory, optional standard input (through a pipe) and a time limit:
/// a command that does not end within it is killed and reported as timed out (the limit is a harness guard, not an
/// asserted duration).
enum Runner {
    struct Result {
        let status: Int32
        let stdout: Data
        let stderr: String
        let timedOut: Bool
        var output: String { String(decoding: stdout, as: UTF8.self) }
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("asr-cli-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// `whileRunning` is called every few milliseconds until the process ends (e.g. to drain a FIFO).
    static func run(_ arguments: [String], in directory: URL? = nil, stdin: Data? = nil, limit: Double = 300,
                    whileRunning: (() -> Void)? = nil) throws -> Result {
        let scratch = try temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: scratch) }
        let outURL = scratch.appendingPathComponent("out"), errURL = scratch.appendingPathComponent("err")
        FileManager.default.createFile(atPath: outURL.path, contents: nil)
        FileManager.default.createFile(atPath: errURL.path, contents: nil)
        let process = Process()
        // A system tool first (setpriv, script) runs that tool, which runs asr itself.
        let wrapped = arguments.first?.hasPrefix("/usr/bin/") == true
        process.executableURL = wrapped ? URL(fileURLWithPath: arguments[0]) : CLI.executable
        process.arguments = wrapped ? Array(arguments.dropFirst()) : arguments
        process.currentDirectoryURL = directory ?? CLI.root
        let outHandle = try FileHandle(forWritingTo: outURL), errHandle = try FileHandle(forWritingTo: errURL)
        process.standardOutput = outHandle
        process.standardError = errHandle
        let pipe = Pipe()
        process.standardInput = stdin == nil ? FileHandle.nullDevice as Any : pipe as Any
        try process.run()
        try? outHandle.close()
        try? errHandle.close()
        if let stdin {
            // A command that exits without reading all its input must not kill the test process with SIGPIPE.
            signal(SIGPIPE, SIG_IGN)
            let writer = pipe.fileHandleForWriting
            Thread.detachNewThread {
                _ = stdin.withUnsafeBytes { raw -> Bool in
                    var offset = 0
                    while offset < raw.count {
                        let n = Glibc.write(writer.fileDescriptor, raw.baseAddress! + offset, raw.count - offset)
                        if n <= 0 { if errno == EINTR { continue }; return false }
                        offset += n
                    }
                    return true
                }
                try? writer.close()
            }
        }
        let deadline = Date().addingTimeInterval(limit)
        var timedOut = false
        while process.isRunning {
            whileRunning?()
            if Date() > deadline {
                timedOut = true
                kill(process.processIdentifier, SIGKILL)
                break
            }
            usleep(5000)
        }
        process.waitUntilExit()
        whileRunning?()
        return Result(status: process.terminationStatus, stdout: (try? Data(contentsOf: outURL)) ?? Data(),
                      stderr: (try? String(contentsOf: errURL, encoding: .utf8)) ?? "", timedOut: timedOut)
    }

    static func fileType(_ path: String) -> mode_t {
        var info = stat()
        return lstat(path, &info) == 0 ? info.st_mode & S_IFMT : 0
    }

    /// Opens a FIFO's read end without waiting for a writer; `drain` reads what has arrived so far.
    final class FIFOReader {
        let fd: Int32
        var data = Data()
        init(path: String) throws {
            guard mkfifo(path, 0o644) == 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EINVAL) }
            fd = open(path, O_RDONLY | O_NONBLOCK)
            guard fd >= 0 else { throw POSIXError(POSIXErrorCode(rawValue: errno) ?? .EINVAL) }
        }
        func drain() {
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            while true {
                let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
                if n <= 0 { return }
                data.append(contentsOf: buffer[0..<n])
            }
        }
        deinit { close(fd) }
    }

    static let builtin = CLI.fixtures.appendingPathComponent("audio/builtin")
    static let sample = builtin.appendingPathComponent("00.wav").path
}

/// Issue 19, item 1: outputs are written through FIFOs, character devices, symbolic links and `-`, never replaced.
@Suite struct OutputTargetTests {
    @Test func manifestIntoAFIFOReachesItsReaderAndTheFIFOStays() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fifo = dir.appendingPathComponent("manifest.fifo").path
        let reader = try Runner.FIFOReader(path: fifo)
        let result = try Runner.run(["transcribe", Runner.sample, "-o", dir.appendingPathComponent("out").path,
                                     "--jsonl", fifo, "-q"], limit: 120, whileRunning: reader.drain)
        #expect(!result.timedOut && result.status == 0, "\(result.stderr)")
        #expect(String(decoding: reader.data, as: UTF8.self).contains("\"status\":\"ok\""), "the reader got the manifest")
        #expect(Runner.fileType(fifo) == S_IFIFO, "the FIFO is still a FIFO")
    }

    @Test func logitsIntoAFIFOReachTheReader() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fifo = dir.appendingPathComponent("logits.fifo").path
        let reader = try Runner.FIFOReader(path: fifo)
        let result = try Runner.run(["logits", Runner.sample, "-o", fifo], limit: 120, whileRunning: reader.drain)
        #expect(!result.timedOut && result.status == 0, "\(result.stderr)")
        let decoded = try NPY.decode(reader.data)
        #expect(decoded.shape.count == 2 && decoded.shape[0] > 0)
        #expect(Runner.fileType(fifo) == S_IFIFO)
    }

    @Test func aSymlinkedOutputIsWrittenThroughAndStaysALink() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("real"), withIntermediateDirectories: true)
        let target = dir.appendingPathComponent("real/manifest.jsonl"), link = dir.appendingPathComponent("manifest.jsonl")
        try "old\n".write(to: target, atomically: false, encoding: .utf8)
        chmod(target.path, 0o640)
        try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: "real/manifest.jsonl")
        let npyTarget = dir.appendingPathComponent("real/logits.npy"), npyLink = dir.appendingPathComponent("logits.npy")
        try FileManager.default.createSymbolicLink(atPath: npyLink.path, withDestinationPath: npyTarget.path)  // dangling

        let result = try Runner.run(["transcribe", Runner.sample, "-o", dir.appendingPathComponent("out").path,
                                     "--jsonl", link.path, "-q"], limit: 120)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(Runner.fileType(link.path) == S_IFLNK, "the link is still a link")
        #expect(try String(contentsOf: target, encoding: .utf8).contains("\"status\":\"ok\""), "its target holds the manifest")
        var info = stat()
        stat(target.path, &info)
        #expect(info.st_mode & 0o777 == 0o640, "the replaced file keeps its permissions")

        let logits = try Runner.run(["logits", Runner.sample, "-o", npyLink.path], limit: 120)
        #expect(logits.status == 0, "\(logits.stderr)")
        #expect(Runner.fileType(npyLink.path) == S_IFLNK)
        #expect(try NPY.decode(Data(contentsOf: npyTarget)).shape.count == 2, "the dangling link's target was created")
    }

    /// A link to /dev/null made here (so that a failure cannot clobber the real one): written into, not replaced.
    @Test func aCharacterDeviceBehindALinkIsWrittenIntoNotReplaced() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let null = dir.appendingPathComponent("null").path
        try FileManager.default.createSymbolicLink(atPath: null, withDestinationPath: "/dev/null")
        let logits = try Runner.run(["logits", Runner.sample, "-o", null], limit: 120)
        #expect(logits.status == 0, "\(logits.stderr)")
        let manifest = try Runner.run(["transcribe", Runner.sample, "-o", dir.appendingPathComponent("out").path,
                                       "--jsonl", null, "-q"], limit: 120)
        #expect(manifest.status == 0, "\(manifest.stderr)")
        #expect(Runner.fileType(null) == S_IFLNK, "the link to /dev/null is still a link")
        #expect(Runner.fileType("/dev/null") == S_IFCHR)
        #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["null", "out"], "no temporary file left")
    }

    @Test func dashMeansStandardOutput() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let manifest = try Runner.run(["transcribe", Runner.sample, "-o", "out", "--jsonl", "-", "-q"], in: dir, limit: 120)
        #expect(manifest.status == 0, "\(manifest.stderr)")
        #expect(manifest.output.hasPrefix("{") && manifest.output.contains("\"status\":\"ok\""), "\(manifest.output)")
        let logits = try Runner.run(["logits", Runner.sample, "-o", "-"], in: dir, limit: 120)
        #expect(logits.status == 0, "\(logits.stderr)")
        #expect(try NPY.decode(logits.stdout).shape.count == 2)
        #expect(!FileManager.default.fileExists(atPath: dir.appendingPathComponent("-").path), "no file named -")
        // The transcript itself would go to stdout too: refused.
        let both = try Runner.run(["transcribe", Runner.sample, "--jsonl", "-", "-q"], in: dir, limit: 120)
        #expect(both.status == 2, "\(both.stderr)")
    }
}

extension OutputTargetTests {
    /// The same outputs when not root (the other tests run as whoever runs the suite: root in CI): as `nobody`.
    @Test(.enabled(if: geteuid() == 0 && FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")))
    func specialOutputsAsAnUnprivilegedUser() throws {
        let dir = try FaultTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("a.wav").path
        try FileManager.default.copyItem(atPath: Runner.sample, toPath: input)
        chmod(input, 0o644)
        let fifo = dir.appendingPathComponent("manifest.fifo").path
        let reader = try Runner.FIFOReader(path: fifo)
        chmod(fifo, 0o666)
        let null = dir.appendingPathComponent("null").path
        try FileManager.default.createSymbolicLink(atPath: null, withDestinationPath: "/dev/null")
        let out = dir.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        chmod(out.path, 0o777)
        // The manifest is far smaller than a pipe's buffer, so it can be read after the command ends.
        let manifest = try FaultTests.spawn(try FaultTests.unprivileged(
            ["transcribe", input, "-o", out.path, "--jsonl", fifo, "-q"], in: dir), in: dir)
        reader.drain()
        #expect(manifest.status == 0, "\(manifest.stderr)")
        #expect(String(decoding: reader.data, as: UTF8.self).contains("\"status\":\"ok\""))
        #expect(Runner.fileType(fifo) == S_IFIFO)
        let logits = try FaultTests.spawn(try FaultTests.unprivileged(["logits", input, "-o", null], in: dir), in: dir)
        #expect(logits.status == 0, "\(logits.stderr)")
        #expect(Runner.fileType(null) == S_IFLNK && Runner.fileType("/dev/null") == S_IFCHR)
    }
}

/// Issue 19, item 2: inputs whose outputs would be one file are refused (exit 2, pairs named) before any work.
@Suite struct OutputClashTests {
    func makeInputs(_ names: [String], in dir: URL) throws {
        for name in names {
            let url = dir.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: Runner.sample, toPath: url.path)
        }
    }

    @Test func twoExtensionsOfOneNameAreRefused() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try makeInputs(["d/x.wav", "d/x.aiff", "d/y.wav"], in: dir)
        for extra in [[], ["--overwrite"]] {
            let result = try Runner.run(["transcribe", dir.appendingPathComponent("d").path, "-q"] + extra, limit: 120)
            #expect(result.status == 2, "\(result.stderr)")
            #expect(result.stderr.contains("d/x.aiff") && result.stderr.contains("d/x.wav") && result.stderr.contains("x.txt"), "\(result.stderr)")
            #expect(try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("d").path).sorted()
                    == ["x.aiff", "x.wav", "y.wav"], "nothing done")
        }
    }

    @Test func sameNamesFromTwoFoldersUnderOneOutputDirAreRefused() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try makeInputs(["d1/x.wav", "d2/x.wav"], in: dir)
        let d1 = dir.appendingPathComponent("d1").path, d2 = dir.appendingPathComponent("d2").path
        let out = dir.appendingPathComponent("out").path
        for inputs in [[d1, d2], [d1 + "/x.wav", d2 + "/x.wav"]] {
            let result = try Runner.run(["transcribe"] + inputs + ["-o", out, "-f", "txt", "-f", "json", "-q"], limit: 120)
            #expect(result.status == 2, "\(result.stderr)")
            #expect(result.stderr.contains(d1 + "/x.wav") && result.stderr.contains(d2 + "/x.wav"), "\(result.stderr)")
            #expect(!FileManager.default.fileExists(atPath: out + "/x.txt"))
        }
        // Next to their inputs the two do not clash.
        let apart = try Runner.run(["transcribe", d1 + "/x.wav", d2 + "/x.wav", "-q"], limit: 120)
        #expect(apart.status == 0, "\(apart.stderr)")
        #expect(FileManager.default.fileExists(atPath: d1 + "/x.txt") && FileManager.default.fileExists(atPath: d2 + "/x.txt"))
    }
}

extension OutputClashTests {
    @Test func aManifestOverAnInputOrAnOutputIsRefused() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try makeInputs(["a.wav", "b.wav"], in: dir)
        let a = dir.appendingPathComponent("a.wav").path, b = dir.appendingPathComponent("b.wav").path
        let before = try Data(contentsOf: URL(fileURLWithPath: a))
        let overInput = try Runner.run(["transcribe", a, b, "-o", dir.appendingPathComponent("out").path, "--jsonl", a, "-q"], limit: 60)
        #expect(overInput.status == 2, "\(overInput.stderr)")
        #expect(try Data(contentsOf: URL(fileURLWithPath: a)) == before, "the input is untouched")
        let out = dir.appendingPathComponent("out").path
        let overOutput = try Runner.run(["transcribe", a, b, "-o", out, "--jsonl", out + "/a.txt", "-q"], limit: 60)
        #expect(overOutput.status == 2 && overOutput.stderr.contains(out + "/a.txt"), "\(overOutput.stderr)")
    }
}

/// Issue 19, item 3: chunking settings are checked by the library, for `logits` as for `transcribe`.
@Suite struct ChunkingValidationTests {
    @Test func logitsRefusesAChunkThatKeepsNothingInsteadOfRunningForever() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let long = CLI.fixtures.appendingPathComponent("audio/long_speech_60s.ogg").path
        let result = try Runner.run(["logits", long, "-o", dir.appendingPathComponent("q.npy").path, "--chunk-seconds", "5"], limit: 60)
        #expect(!result.timedOut, "logits --chunk-seconds 5 did not end")
        #expect(result.status == 2 && result.stderr.contains("stride"), "\(result.stderr)")
    }

    @Test func negativeOrNonFiniteSettingsAreUsageErrorsEverywhere() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let never = dir.appendingPathComponent("never.npy").path
        for command in [["logits", Runner.sample, "-o", never], ["transcribe", Runner.sample]] {
            for setting in [["--stride-seconds", "-1"], ["--chunk-seconds", "nan"], ["--chunk-seconds", "-30"], ["--chunk-seconds", "1e300"]] {
                let result = try Runner.run(command + setting, limit: 60)
                #expect(result.status == 2, "\(command[0]) \(setting): \(result.stderr)")
                #expect(result.stderr.contains("invalid chunking"), "\(command[0]) \(setting): \(result.stderr)")
            }
        }
        #expect(!FileManager.default.fileExists(atPath: never))
    }
}

/// Issue 19, items 4-7: a batch goes on past an unreadable folder, errors are words naming the path, problems with
/// outputs are found before any work, and NaN logits are refused.
@Suite struct CLIErrorTests {
    static let cocoa = ["NSCocoaErrorDomain", "Error Domain=", "UserInfo="]

    func expectPlainWords(_ text: String, naming path: String, sourceLocation: SourceLocation = #_sourceLocation) {
        #expect(text.contains(path), "\(text)", sourceLocation: sourceLocation)
        for dump in Self.cocoa { #expect(!text.contains(dump), "\(text)", sourceLocation: sourceLocation) }
    }

    @Test(.enabled(if: geteuid() != 0 || FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")))
    func anUnreadableSubfolderIsReportedAndTheBatchGoesOn() throws {
        let dir = try FaultTests.temporaryDirectory()
        defer { chmod(dir.appendingPathComponent("in/locked").path, 0o755); try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("in")
        for name in ["a.wav", "locked/b.wav", "sub/c.wav"] {
            let url = input.appendingPathComponent(name)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: Runner.sample, toPath: url.path)
            chmod(url.path, 0o644)
            chmod(url.deletingLastPathComponent().path, 0o755)
        }
        chmod(input.appendingPathComponent("locked").path, 0o000)
        let out = dir.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        chmod(out.path, 0o777)
        let result = try FaultTests.spawn(try FaultTests.unprivileged(
            ["transcribe", input.path, "-r", "-o", out.path, "-q"], in: dir), in: dir)
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains(input.appendingPathComponent("locked").path)
                && result.stderr.lowercased().contains("permission denied"), "\(result.stderr)")
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("a.txt").path))
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("sub/c.txt").path))
    }

    @Test func outputProblemsAreWordsNamingThePath() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        // An output directory under /proc (cannot be created, even by root).
        let proc = try Runner.run(["transcribe", Runner.sample, "-o", "/proc/asr-no-such-output", "-q"], limit: 60)
        #expect(proc.status == 1)
        expectPlainWords(proc.stderr, naming: "/proc/asr-no-such-output")
        // An existing file as the output directory.
        let file = dir.appendingPathComponent("file.txt")
        try "x".write(to: file, atomically: false, encoding: .utf8)
        let notDirectory = try Runner.run(["transcribe", Runner.sample, "-o", file.path, "-q"], limit: 60)
        #expect(notDirectory.status == 1)
        expectPlainWords(notDirectory.stderr, naming: file.path)
        #expect(notDirectory.stderr.contains("not a directory"), "\(notDirectory.stderr)")
        // A mirrored subfolder that cannot be created (a file is in the way): the input is named.
        let input = dir.appendingPathComponent("in/sub/x.wav")
        try FileManager.default.createDirectory(at: input.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Runner.sample, toPath: input.path)
        let out = dir.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        try "in the way".write(to: out.appendingPathComponent("sub"), atomically: false, encoding: .utf8)
        let mirrored = try Runner.run(["transcribe", dir.appendingPathComponent("in").path, "-r", "-o", out.path, "-q"], limit: 60)
        #expect(mirrored.status == 1)
        expectPlainWords(mirrored.stderr, naming: out.appendingPathComponent("sub").path)
        #expect(mirrored.stderr.contains(input.path), "the input is named: \(mirrored.stderr)")
    }

    @Test func decodeAndModelErrorsAreWords() throws {
        let decode = try Runner.run(["decode", "/nonexistent/nosuch.npy"], limit: 60)
        #expect(decode.status == 1)
        expectPlainWords(decode.stderr, naming: "/nonexistent/nosuch.npy")
        #expect(decode.stderr.components(separatedBy: "nosuch.npy").count == 2, "the file is named once: \(decode.stderr)")
        #expect(decode.stderr.contains("no such file"), "\(decode.stderr)")
        let model = try Runner.run(["transcribe", Runner.sample, "--model", "/nonexistent-model-dir"], limit: 60)
        #expect(model.status == 1)
        expectPlainWords(model.stderr, naming: "/nonexistent-model-dir")
        #expect(!model.stderr.contains("(the directory itself)") && model.stderr.contains("no such directory"), "\(model.stderr)")
    }

    /// An input that is a FIFO nobody writes to would block any attempt to read it: the run must stop on the
    /// unwritable output before touching any input (on a run that checks late, it hangs until the harness kills it).
    @Test func unwritableOutputsStopTheRunBeforeAnyWork() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let first = dir.appendingPathComponent("a.wav").path
        try FileManager.default.copyItem(atPath: Runner.sample, toPath: first)
        let blocking = dir.appendingPathComponent("b.wav").path
        #expect(mkfifo(blocking, 0o644) == 0)
        let result = try Runner.run(["transcribe", first, blocking, "-o", "/proc/asr-no-such-output", "-q"], limit: 60)
        #expect(!result.timedOut, "an input was read before the output was checked")
        #expect(result.status == 1)
        expectPlainWords(result.stderr, naming: "/proc/asr-no-such-output")

        // An unwritable --jsonl: nothing is transcribed (no transcript written, then the manifest lost).
        let out = dir.appendingPathComponent("out")
        let manifest = try Runner.run(["transcribe", first, "-o", out.path, "--jsonl", "/proc/asr-no-such-dir/m.jsonl", "-q"], limit: 60)
        #expect(manifest.status == 1)
        expectPlainWords(manifest.stderr, naming: "/proc/asr-no-such-dir/m.jsonl")
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("a.txt").path), "no work before the check")
    }

    @Test func decodeRefusesNonFiniteLogits() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let vocabulary = try BuiltinModel.load().vocabulary.count
        for (name, bad) in [("nan", Float.nan), ("inf", Float.infinity)] {
            var values = [Float](repeating: 0, count: 10 * vocabulary)
            values[3 * vocabulary + 2] = bad
            let file = dir.appendingPathComponent("\(name).npy")
            try NPY.encode(values, shape: [10, vocabulary]).write(to: file)
            let result = try Runner.run(["decode", file.path], limit: 60)
            #expect(result.status == 1, "\(result.stderr)")
            #expect(result.stderr.contains(file.path) && result.stderr.contains("frame 3"), "\(result.stderr)")
            #expect(result.output.isEmpty)
        }
    }
}

/// Issue 19, item 8: `logits` cuts long audio as `transcribe` does, so decoding saved logits gives the transcript.
@Suite struct LogitsAgreementTests {
    @Test func logitsThenDecodeEqualsTranscribeOnLongSpeech() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let long = Runner.builtin.appendingPathComponent("long_speech.flac").path
        let npy = dir.appendingPathComponent("long.npy").path
        let logits = try Runner.run(["logits", long, "-o", npy])
        #expect(logits.status == 0, "\(logits.stderr)")
        let decoded = try Runner.run(["decode", npy])
        let transcribed = try Runner.run(["transcribe", long, "-q"])
        #expect(decoded.status == 0 && transcribed.status == 0)
        #expect(!transcribed.output.isEmpty)
        #expect(decoded.output == transcribed.output)
    }
}

/// Issue 19, item 9: `-` is standard input for every format (spooled to a temporary file).
@Suite struct StandardInputTests {
    @Test(arguments: ["audio/builtin/00.wav", "audio/stereo_44100_24bit.flac", "audio/vorbis_32k.ogg", "audio/mp3_44100.mp3"])
    func dashReadsAudioFromAPipe(_ fixture: String) throws {
        let file = CLI.fixtures.appendingPathComponent(fixture)
        let direct = try Runner.run(["transcribe", file.path, "-q"], limit: 120)
        let piped = try Runner.run(["transcribe", "-", "-q"], stdin: try Data(contentsOf: file), limit: 120)
        #expect(direct.status == 0 && piped.status == 0, "\(piped.stderr)")
        #expect(piped.output == direct.output)
    }

    @Test func dashWithAnOutputDirAndLogits() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let audio = try Data(contentsOf: URL(fileURLWithPath: Runner.sample))
        let result = try Runner.run(["transcribe", "-", Runner.sample, "-o", dir.path, "-q"], stdin: audio, limit: 120)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(try String(contentsOf: dir.appendingPathComponent("stdin.txt"), encoding: .utf8)
                == (try String(contentsOf: dir.appendingPathComponent("00.txt"), encoding: .utf8)))
        let logits = try Runner.run(["logits", "-", "-o", dir.appendingPathComponent("x.npy").path], stdin: audio, limit: 120)
        #expect(logits.status == 0, "\(logits.stderr)")
        // Several inputs and no --output-dir: stdin has no folder to write next to.
        #expect(try Runner.run(["transcribe", "-", Runner.sample, "-q"], stdin: audio, limit: 60).status == 2)
        // Nothing on stdin: a clear error.
        let empty = try Runner.run(["transcribe", "-", "-q"], stdin: Data(), limit: 60)
        #expect(empty.status == 1 && empty.stderr.contains("standard input") && empty.stderr.contains("empty"), "\(empty.stderr)")
        #expect(!empty.stderr.contains("/dev/fd/"), "\(empty.stderr)")
    }
}

/// Issue 19, items 10 and 11: smaller defects of the same kind.
@Suite struct CLISmallDefectTests {
    @Test func emptyFolderWarnsAndHintsRecursive() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        try FileManager.default.createDirectory(at: dir.appendingPathComponent("sub"), withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: Runner.sample, toPath: dir.appendingPathComponent("sub/a.wav").path)
        let result = try Runner.run(["transcribe", dir.path], limit: 60)
        #expect(result.stderr.contains("no audio files") && result.stderr.contains("-r"), "\(result.stderr)")
    }

    @Test func optionValuesAreCheckedWithTheRightMessage() throws {
        let threads = try Runner.run(["transcribe", Runner.sample, "--threads", "-1"], limit: 60)
        #expect(threads.status == 2 && threads.stderr.contains("at least 1") && !threads.stderr.contains("Missing value"), "\(threads.stderr)")
        let weight = try Runner.run(["transcribe", Runner.sample, "--hotword", "foo:abc"], limit: 60)
        #expect(weight.status == 2 && weight.stderr.contains("weight"), "\(weight.stderr)")
        let empty = try Runner.run(["transcribe", Runner.sample, "--hotword", ""], limit: 60)
        #expect(empty.status == 2 && !empty.stderr.contains("--hotword --hotword"), "\(empty.stderr)")
    }

    @Test func logitsCreatesMissingFolders() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let output = dir.appendingPathComponent("a/b/x.npy")
        let result = try Runner.run(["logits", Runner.sample, "-o", output.path], limit: 60)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(FileManager.default.fileExists(atPath: output.path))
    }

    @Test func quietSilencesTheLanguageModelLine() throws {
        let arpa = CLI.fixtures.appendingPathComponent("lm/tiny_corpus.lmplz.order3.arpa").path
        let quiet = try Runner.run(["transcribe", Runner.sample, "--lm", arpa, "-q"], limit: 120)
        #expect(quiet.status == 0, "\(quiet.stderr)")
        #expect(!quiet.stderr.contains("language model:"), "\(quiet.stderr)")
    }

    @Test func manifestUsesTheJSONFieldNamesAndPrecision() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let result = try Runner.run(["transcribe", Runner.sample, "-o", dir.path, "-f", "json", "--jsonl", "-", "-q"], in: dir, limit: 60)
        #expect(result.status == 0, "\(result.stderr)")
        let line = try #require(try JSONSerialization.jsonObject(with: result.stdout) as? [String: Any])
        let json = try #require(try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("00.json"))) as? [String: Any])
        #expect(line["file"] as? String == Runner.sample && json["file"] as? String == Runner.sample)
        #expect(line["path"] == nil)
        #expect(line["duration"] as? Double == json["duration"] as? Double)
        let words = try #require(line["words"] as? [[String: Any]]), jsonWords = try #require(json["words"] as? [[String: Any]])
        #expect(words.count == jsonWords.count)
        for (a, b) in zip(words, jsonWords) {
            #expect(a["start"] as? Double == b["start"] as? Double && a["end"] as? Double == b["end"] as? Double)
            #expect(a["confidence"] as? Double == b["confidence"] as? Double)
        }
    }

    @Test func aCutFLACIsRefusedLikeACutWAV() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let whole = try Data(contentsOf: CLI.fixtures.appendingPathComponent("audio/stereo_44100_24bit.flac"))
        let cut = dir.appendingPathComponent("cut.flac")
        try whole.prefix(whole.count / 2).write(to: cut)
        let result = try Runner.run(["transcribe", cut.path, "-q"], limit: 60)
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains(cut.path) && result.stderr.contains("truncated"), "\(result.stderr)")
        let wav = try Runner.run(["transcribe", CLI.fixtures.appendingPathComponent("audio/broken_truncated.wav").path, "-q"], limit: 60)
        #expect(wav.status == 1 && wav.stderr.contains("truncated"), "\(wav.stderr)")
    }

    @Test func textNamedMP3IsRefusedWithoutDecoderNoise() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let fake = dir.appendingPathComponent("notes.mp3")
        try String(repeating: "these are not audio frames\n", count: 200).write(to: fake, atomically: false, encoding: .utf8)
        let result = try Runner.run(["transcribe", fake.path, "-q"], limit: 60)
        #expect(result.status == 1)
        #expect(result.stderr.contains(fake.path) && !result.stderr.contains("Illegal Audio-MPEG-Header") && !result.stderr.contains("Note:"),
                "\(result.stderr)")
    }

    @Test func theBuiltinModelSaysItIsADemo() throws {
        let loud = try Runner.run(["transcribe", Runner.sample], limit: 60)
        #expect(loud.status == 0)
        #expect(loud.stderr.contains("demo model") && loud.stderr.contains("asr download facebook/wav2vec2-base-960h"), "\(loud.stderr)")
        let quiet = try Runner.run(["transcribe", Runner.sample, "-q"], limit: 60)
        #expect(!quiet.stderr.contains("demo model"), "\(quiet.stderr)")
        let real = try Runner.run(["transcribe", CLI.fixtures.appendingPathComponent("speech_16k.wav").path,
                                   "--model", CLI.fixtures.appendingPathComponent("models/base-layout").path], limit: 60)
        #expect(!real.stderr.contains("demo model"), "\(real.stderr)")
    }
}

/// Issue 19: a property test over generated directory trees (random names, extensions that collide, nested folders,
/// broken files), with the built-in model and short samples. Whatever the tree: clashing inputs are refused before
/// any work; otherwise every input ends as exactly one set of outputs or one reported error, no two inputs share an
/// output, and a rerun skips exactly the finished ones (and redoes one whose output was removed).
@Suite struct DirectoryTreePropertyTests {
    enum Content { case audio(String), text, empty }

    struct Input {
        let relative: String
        let content: Content
        var stemKey: String { ((relative as NSString).deletingPathExtension) }
        var good: Bool { if case .audio = content { return true } else { return false } }
    }

    static func generate(seed: UInt64) -> [Input] {
        var random = BatchTests.SplitMix(seed: seed)
        func pick<T>(_ items: [T]) -> T { items[Int(random.next() % UInt64(items.count))] }
        let folders = ["", "", "sub", "sub/deeper", "Sub", "a b", "ünï", "x.wav"]
        let stems = ["talk", "Talk", "a", "b c", "e.tar", "ç", "take-1"]
        let extensions = ["wav", "wav", "WAV", "aiff", "flac", "ogg"]
        let samples = (0..<16).map { String(format: "%02d.wav", $0) }
        var inputs: [Input] = []
        var used = Set<String>()
        for _ in 0..<(6 + Int(random.next() % 6)) {
            let folder = pick(folders)
            let name = pick(stems) + "." + pick(extensions)
            let relative = folder.isEmpty ? name : folder + "/" + name
            guard used.insert(relative).inserted else { continue }
            let roll = random.next() % 10
            let content: Content = roll < 7 ? .audio(pick(samples)) : roll < 9 ? .text : .empty
            inputs.append(Input(relative: relative, content: content))
            // Now and then a twin with another extension (or only its case changed): the same output name.
            if random.next() % 4 == 0 {
                let twin = (relative as NSString).deletingPathExtension + "." + pick(["wav", "WAV", "flac", "aiff"])
                if used.insert(twin).inserted { inputs.append(Input(relative: twin, content: .audio(pick(samples)))) }
            }
        }
        // Odd seeds always have a clash, so both paths of the property are exercised.
        if seed % 2 == 1, let first = inputs.first {
            let twin = (first.relative as NSString).deletingPathExtension + ".w64"
            if used.insert(twin).inserted { inputs.append(Input(relative: twin, content: .audio(pick(samples)))) }
        }
        return inputs
    }

    func materialise(_ inputs: [Input], at root: URL) throws {
        for input in inputs {
            let url = root.appendingPathComponent(input.relative)
            try FileManager.default.createDirectory(at: url.deletingLastPathComponent(), withIntermediateDirectories: true)
            switch input.content {
            case .audio(let sample): try FileManager.default.copyItem(at: Runner.builtin.appendingPathComponent(sample), to: url)
            case .text: try "not audio at all\n".write(to: url, atomically: false, encoding: .utf8)
            case .empty: FileManager.default.createFile(atPath: url.path, contents: Data())
            }
        }
        try "notes".write(to: root.appendingPathComponent("README.txt"), atomically: false, encoding: .utf8)
    }

    func manifest(_ url: URL) throws -> [[String: Any]] {
        try String(contentsOf: url, encoding: .utf8).split(separator: "\n").map {
            try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    @Test(arguments: [UInt64(1), 2, 3, 4])
    func everyInputEndsAsOneOutputOrOneError(seed: UInt64) throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let root = dir.appendingPathComponent("in"), out = dir.appendingPathComponent("out")
        let jsonl = dir.appendingPathComponent("manifest.jsonl")
        var inputs = Self.generate(seed: seed)
        try materialise(inputs, at: root)
        let arguments = ["transcribe", root.path, "-r", "-o", out.path, "-f", "txt", "-f", "json", "--jsonl", jsonl.path, "-q", "--threads", "1"]

        // Clashes (same folder, same name but the extension): refused, nothing written, every clashing input named.
        let groups = Dictionary(grouping: inputs, by: \.stemKey).values.filter { $0.count > 1 }
        #expect(seed % 2 == 0 || !groups.isEmpty, "odd seeds generate a clash")
        if !groups.isEmpty {
            let refused = try Runner.run(arguments, limit: 120)
            #expect(refused.status == 2, "seed \(seed): \(refused.stderr)")
            for input in groups.joined() {
                #expect(refused.stderr.contains(root.appendingPathComponent(input.relative).path), "seed \(seed): \(input.relative) not named")
            }
            #expect(!FileManager.default.fileExists(atPath: out.path) && !FileManager.default.fileExists(atPath: jsonl.path))
            // Keep the first of each group.
            for group in groups { for input in group.dropFirst() { try FileManager.default.removeItem(at: root.appendingPathComponent(input.relative)) } }
            let removed = Set(groups.flatMap { $0.dropFirst().map(\.relative) })
            inputs.removeAll { removed.contains($0.relative) }
        }

        let first = try Runner.run(arguments, limit: 300)
        let bad = inputs.filter { !$0.good }, good = inputs.filter(\.good)
        #expect(first.status == (bad.isEmpty ? 0 : 1), "seed \(seed): \(first.stderr)")
        let lines = try manifest(jsonl)
        #expect(lines.count == inputs.count, "seed \(seed): one manifest line per input")
        var outputs = Set<String>()
        for input in inputs {
            let path = root.appendingPathComponent(input.relative).path
            let mine = lines.filter { $0["file"] as? String == path }
            #expect(mine.count == 1, "seed \(seed): \(input.relative) has \(mine.count) manifest lines")
            let expected = ["txt", "json"].map { out.appendingPathComponent(input.stemKey + "." + $0).path }
            let exist = expected.filter { FileManager.default.fileExists(atPath: $0) }
            if input.good {
                #expect(mine.first?["status"] as? String == "ok" && exist.count == 2, "seed \(seed): \(input.relative)")
                for output in expected { #expect(outputs.insert(output).inserted, "seed \(seed): \(output) shared") }
            } else {
                #expect(mine.first?["status"] as? String == "error" && exist.isEmpty, "seed \(seed): \(input.relative)")
                #expect(first.stderr.contains(path), "seed \(seed): error for \(input.relative) not reported")
            }
        }
        let produced = (FileManager.default.enumerator(atPath: out.path)?.allObjects as? [String] ?? [])
            .filter { $0.hasSuffix(".txt") || $0.hasSuffix(".json") }
        #expect(produced.count == 2 * good.count, "seed \(seed): outputs \(produced.sorted())")

        // A rerun skips exactly the finished ones; one whose output is gone is done again.
        var redo: Input?
        if let victim = good.first {
            redo = victim
            try FileManager.default.removeItem(atPath: out.appendingPathComponent(victim.stemKey + ".json").path)
        }
        let firstText = try String(contentsOf: jsonl, encoding: .utf8)
        let second = try Runner.run(arguments, limit: 300)
        #expect(second.status == (bad.isEmpty ? 0 : 1), "seed \(seed): \(second.stderr)")
        // The manifest is appended to (issue 18): the first run's lines stay as they were, the rerun adds a line for
        // each input it tried again (the failed ones and the one whose output is gone), none for the skipped ones
        // whose transcripts the manifest already holds.
        #expect(try String(contentsOf: jsonl, encoding: .utf8).hasPrefix(firstText), "seed \(seed): earlier lines kept")
        let again = try manifest(jsonl)
        #expect(again.count == inputs.count + bad.count + (redo == nil ? 0 : 1), "seed \(seed)")
        for input in inputs {
            let status = again.last { $0["file"] as? String == root.appendingPathComponent(input.relative).path }?["status"] as? String
            let expected = input.good ? "ok" : "error"
            #expect(status == expected, "seed \(seed): \(input.relative) is \(status ?? "missing") on the rerun")
        }
    }
}

/// Issue 28: standard input is named by the name it is given, not by string surgery on its spool path.
@Suite struct StandardInputNameTests {
    @Test(arguments: ["broken_text.wav", "broken_nan.wav"])
    func aCorruptPipeIsNamedStandardInput(_ fixture: String) throws {
        let broken = try Data(contentsOf: CLI.fixtures.appendingPathComponent("audio/\(fixture)"))
        for command in [["transcribe", "-", "-q"], ["logits", "-", "-o", "/dev/null"], ["align", "-", "--text", "a b", "-q"]] {
            let result = try Runner.run(command, stdin: broken, limit: 60)
            #expect(result.status != 0 && result.stderr.contains("standard input"), "\(command): \(result.stderr)")
            #expect(!result.stderr.contains("/dev/fd/"), "\(command): \(result.stderr)")
        }
    }
}
