import Foundation
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// Faults outside the input's content: unreadable inputs, unwritable or full output, and a two-hour file that must be
/// streamed in bounded memory. Runs the real binary.
@Suite struct FaultTests {
    let model = CLI.fixtures.appendingPathComponent("models/base-layout").path
    let speech = CLI.fixtures.appendingPathComponent("speech_16k.wav").path

    /// Spawns `arguments` (argv[0] is the program path), stdout and stderr to files; returns the exit status, both
    /// outputs and the child's own peak resident memory in kilobytes (VmHWM, polled every 10 ms while it runs).
    static func spawn(_ arguments: [String], in directory: URL) throws -> (status: Int32, stdout: String, stderr: String, peakKB: Int) {
        let outPath = directory.appendingPathComponent("spawn.out").path, errPath = directory.appendingPathComponent("spawn.err").path
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        posix_spawn_file_actions_addopen(&actions, 1, outPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        posix_spawn_file_actions_addopen(&actions, 2, errPath, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { argv.forEach { free($0) } }
        var pid: pid_t = 0
        let rc = posix_spawn(&pid, arguments[0], &actions, nil, &argv, environ)
        guard rc == 0 else { throw POSIXError(POSIXErrorCode(rawValue: rc) ?? .EINVAL) }
        // The peak is read from /proc/PID/status (VmHWM, the high-water mark of the memory the child got at exec),
        // polled until it exits. wait4's ru_maxrss would not do: posix_spawn execs from a vfork that shares this
        // process's memory, and Linux folds the old memory's high-water mark into the child's maxrss at exec, so a
        // test process that has loaded a large model elsewhere (tests run in parallel) would be charged to the child.
        var status: Int32 = 0
        var peakKB = 0
        while true {
            let reaped = waitpid(pid, &status, WNOHANG)
            if reaped == pid { break }
            if reaped < 0 && errno != EINTR { break }
            if let text = try? String(contentsOfFile: "/proc/\(pid)/status", encoding: .utf8),
               let line = text.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
               let kb = Int(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "") {
                peakKB = max(peakKB, kb)
            }
            usleep(10_000)
        }
        let exit = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        return (exit, (try? String(contentsOfFile: outPath, encoding: .utf8)) ?? "",
                (try? String(contentsOfFile: errPath, encoding: .utf8)) ?? "", peakKB)
    }

    static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("asr-faults-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }

    /// Root ignores file permissions, so permission tests run the binary as `nobody` through setpriv(1) when we are
    /// root; the binary is copied somewhere `nobody` can execute it.
    static func unprivileged(_ arguments: [String], in directory: URL) throws -> [String] {
        guard geteuid() == 0 else { return [CLI.executable.path] + arguments }
        let copy = directory.appendingPathComponent("asr")
        if !FileManager.default.fileExists(atPath: copy.path) {
            // Copied by cp(1), not in this process: a write descriptor open here while another test forks would be
            // inherited by that child and make exec fail with "Text file busy".
            let cp = Process()
            cp.executableURL = URL(fileURLWithPath: "/bin/cp")
            cp.arguments = [CLI.executable.path, copy.path]
            try cp.run()
            cp.waitUntilExit()
        }
        chmod(directory.path, 0o755)
        return ["/usr/bin/setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", copy.path] + arguments
    }

    @Test(.enabled(if: geteuid() != 0 || FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")))
    func unreadableInputIsPermissionDeniedAndTheBatchGoesOn() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let locked = dir.appendingPathComponent("locked.wav"), open = dir.appendingPathComponent("open.wav")
        try FileManager.default.copyItem(atPath: speech, toPath: locked.path)
        try FileManager.default.copyItem(atPath: speech, toPath: open.path)
        chmod(locked.path, 0o000)
        chmod(open.path, 0o644)
        let out = dir.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        chmod(out.path, 0o777)
        // The built-in model: a fixture path may not be readable by `nobody`.
        let result = try Self.spawn(try Self.unprivileged(
            ["transcribe", locked.path, open.path, "-o", out.path, "--quiet"], in: dir), in: dir)
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains("locked.wav") && result.stderr.lowercased().contains("permission denied"), "\(result.stderr)")
        #expect(FileManager.default.fileExists(atPath: out.appendingPathComponent("open.txt").path), "the readable file is still transcribed")
        #expect(!FileManager.default.fileExists(atPath: out.appendingPathComponent("locked.txt").path))
    }

    @Test(.enabled(if: geteuid() != 0 || FileManager.default.isExecutableFile(atPath: "/usr/bin/setpriv")))
    func unwritableOutputDirectoryIsAClearErrorAndInputsAreUntouched() throws {
        let dir = try Self.temporaryDirectory()
        defer { chmod(dir.appendingPathComponent("out").path, 0o755); try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("talk.wav")
        try FileManager.default.copyItem(atPath: speech, toPath: input.path)
        chmod(input.path, 0o644)
        let before = try Data(contentsOf: input)
        let out = dir.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: out, withIntermediateDirectories: true)
        chmod(out.path, 0o555)
        let result = try Self.spawn(try Self.unprivileged(
            ["transcribe", input.path, "-o", out.path, "--quiet"], in: dir), in: dir)
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains(out.appendingPathComponent("talk.txt").path), "\(result.stderr)")
        #expect(result.stderr.lowercased().contains("permission denied"), "\(result.stderr)")
        #expect(try Data(contentsOf: input) == before)
        #expect(try FileManager.default.contentsOfDirectory(atPath: out.path).isEmpty)
    }

    /// A full disk, simulated with the file-size limit (RLIMIT_FSIZE, `ulimit -f`): the write fails with EFBIG
    /// part-way, as it would with ENOSPC. The tool must report it, leave no partial file, and keep the input.
    /// Not under ThreadSanitizer: the file-size limit applies to its runtime too, which then faults (SIGBUS) in the
    /// child before our code runs.
    @Test(.enabled(if: ProcessInfo.processInfo.environment["ASR_SANITIZER"] != "thread"))
    func fullDiskIsAClearErrorWithNoPartialOutput() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let input = dir.appendingPathComponent("talk.ogg")
        try FileManager.default.copyItem(at: CLI.fixtures.appendingPathComponent("audio/long_speech_60s.ogg"), to: input)
        let before = try Data(contentsOf: input)
        let out = dir.appendingPathComponent("out")
        // 8 × 512 bytes: far less than the JSON of a minute of speech.
        let result = try Self.spawn(["/usr/bin/prlimit", "--fsize=4096", CLI.executable.path, "transcribe", input.path,
                                     "-f", "json", "-o", out.path, "--quiet"], in: dir)
        #expect(result.status == 1, "\(result.stderr)")
        #expect(result.stderr.contains(out.appendingPathComponent("talk.json").path) && result.stderr.contains("File too large"),
                "\(result.stderr)")
        #expect(try Data(contentsOf: input) == before)
        #expect((try? FileManager.default.contentsOfDirectory(atPath: out.path))?.isEmpty ?? true, "no partial or temporary file")
    }

    /// Two hours of audio (8 kHz, so it is also resampled) go through in chunks: peak memory stays far below the
    /// 460 MB the decoded samples alone would take as floats at 16 kHz.
    @Test func twoHourFileIsStreamedInBoundedMemory() throws {
        let dir = try Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let wav = dir.appendingPathComponent("two_hours.wav")
        let rate = 8000, seconds = 7200
        let count = rate * seconds
        var header = Data()
        func u32(_ v: Int) { withUnsafeBytes(of: UInt32(v).littleEndian) { header.append(contentsOf: $0) } }
        func u16(_ v: Int) { withUnsafeBytes(of: UInt16(v).littleEndian) { header.append(contentsOf: $0) } }
        header.append(contentsOf: Array("RIFF".utf8)); u32(36 + 2 * count); header.append(contentsOf: Array("WAVEfmt ".utf8))
        u32(16); u16(1); u16(1); u32(rate); u32(2 * rate); u16(2); u16(16)
        header.append(contentsOf: Array("data".utf8)); u32(2 * count)
        FileManager.default.createFile(atPath: wav.path, contents: header)
        let handle = try FileHandle(forWritingTo: wav)
        try handle.seekToEnd()
        // One minute of a warbling tone with noise, repeated.
        var state: UInt32 = 12345
        var block = [Int16](repeating: 0, count: rate * 60)
        for i in block.indices {
            state = state &* 1_664_525 &+ 1_013_904_223
            let t = Double(i) / Double(rate)
            block[i] = Int16(6000 * sin(2 * Double.pi * (300 + 200 * sin(t)) * t) + Double(Int32(state >> 20) - 2048))
        }
        let minute = block.withUnsafeBytes { Data($0) }
        for _ in 0..<(seconds / 60) { try handle.write(contentsOf: minute) }
        try handle.close()
        let result = try Self.spawn([CLI.executable.path, "transcribe", wav.path, "--model", model, "-o",
                                     dir.appendingPathComponent("out").path, "--quiet", "--threads", "2"], in: dir)
        #expect(result.status == 0, "\(result.stderr)")
        let text = try String(contentsOf: dir.appendingPathComponent("out/two_hours.txt"), encoding: .utf8)
        #expect(!text.isEmpty)
        print("two-hour file: peak RSS \(result.peakKB / 1024) MB")
        // Under a sanitizer (scripts/sanitize.sh) shadow memory and quarantine inflate RSS: only the run is checked.
        if ProcessInfo.processInfo.environment["ASR_SANITIZER"] == nil {
            #expect(result.peakKB < 300 * 1024, "peak RSS \(result.peakKB / 1024) MB")
        }
    }
}
