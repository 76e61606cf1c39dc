import Foundation
import Testing

/// `asr transcribe - --raw … --live`: headerless PCM from a pipe (sox, a slow writer), segments printed as they
/// become final, the last one when the input closes, and the same transcript as the file path.
@Suite struct LiveCLITests {
    static let long = CLI.fixtures.appendingPathComponent("audio/builtin/long_speech.flac").path

    /// Runs `asr` under bash with `pipeline` feeding its stdin; returns stdout lines with the seconds at which each
    /// arrived, the status and stderr.
    static func pipe(_ pipeline: String, _ arguments: [String]) throws -> (lines: [(String, Double)], status: Int32, stderr: String, elapsed: Double) {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        let quoted = ([CLI.executable.path] + arguments).map { "'" + $0.replacingOccurrences(of: "'", with: "'\\''") + "'" }
        process.arguments = ["-c", "set -o pipefail; \(pipeline) | \(quoted.joined(separator: " "))"]
        process.currentDirectoryURL = CLI.root
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        let started = Date()
        try process.run()
        var lines: [(String, Double)] = []
        var pending = Data()
        let handle = out.fileHandleForReading
        while true {
            let data = handle.availableData
            if data.isEmpty { break }
            pending += data
            while let newline = pending.firstIndex(of: 10) {
                lines.append((String(decoding: pending[..<newline], as: UTF8.self), Date().timeIntervalSince(started)))
                pending = Data(pending[(newline + 1)...])
            }
        }
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (lines, process.terminationStatus, String(decoding: errData, as: UTF8.self), Date().timeIntervalSince(started))
    }

    static func fileTranscript(_ path: String, _ extra: [String] = []) throws -> String {
        let result = try CLI.run(["transcribe", path, "--quiet"] + extra)
        #expect(result.status == 0, "\(result.stderr)")
        return result.stdout.trimmingCharacters(in: .newlines)
    }

    @Test func soxPipeOfRawS16GivesTheFileTranscript() throws {
        let expected = try Self.fileTranscript(Self.long)
        let run = try Self.pipe("sox '\(Self.long)' -t raw -e signed -b 16 -r 16000 -c 1 -",
                                ["transcribe", "-", "--raw", "s16le", "--rate", "16000", "--live", "--quiet"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.lines.count >= 2, "segments as they become final")
        #expect(run.lines.map(\.0).joined(separator: " ") == expected)
    }

    /// 44.1 kHz stereo float PCM: downmixed and resampled as the file path does it, so the same transcript as the
    /// same samples in a WAV file.
    @Test func rawStereoFloatAtAnotherRateMatchesTheSameAudioAsAFile() throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("asr-live-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let wav = directory.appendingPathComponent("stereo.wav").path
        let raw = directory.appendingPathComponent("stereo.f32").path
        let sox = Process()
        sox.executableURL = URL(fileURLWithPath: "/bin/bash")
        sox.arguments = ["-c", "sox '\(Self.long)' -e floating-point -b 32 -r 44100 -c 2 '\(wav)' remix 1 1v0.5 && sox '\(wav)' -t raw '\(raw)'"]
        try sox.run()
        sox.waitUntilExit()
        #expect(sox.terminationStatus == 0)
        let chunking = ["--chunk-seconds", "10", "--stride-seconds", "2"]
        let expected = try Self.fileTranscript(wav, chunking)
        let run = try Self.pipe("cat '\(raw)'", ["transcribe", "-", "--raw", "f32le", "--rate", "44100", "--channels", "2", "--quiet"] + chunking)
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.lines.map(\.0).joined(separator: "\n") == expected)
    }

    /// A writer that delivers audio at 8× real time: segments are printed while it is still writing, and closing
    /// its end of the pipe flushes the last one.
    @Test func slowWriterGetsSegmentsBeforeItFinishes() throws {
        let chunking = ["--chunk-seconds", "6", "--stride-seconds", "1"]
        let expected = try Self.fileTranscript(Self.long, chunking)
        let writer = """
            sox '\(Self.long)' -t raw -e signed -b 16 -r 16000 -c 1 - | python3 -c '
            import sys, time
            data = sys.stdin.buffer.read()
            step = 4000  # 0.125 s of audio every 1/64 s: 8x real time
            for i in range(0, len(data), step):
                sys.stdout.buffer.write(data[i:i + step]); sys.stdout.buffer.flush(); time.sleep(1 / 64)
            '
            """
        let run = try Self.pipe(writer, ["transcribe", "-", "--raw", "s16le", "--rate", "16000", "--live", "--format", "json", "--quiet"] + chunking)
        #expect(run.status == 0, "\(run.stderr)")
        let segments = run.lines.compactMap { try? JSONSerialization.jsonObject(with: Data($0.0.utf8)) as? [String: Any] }
        #expect(segments.count == run.lines.count, "one JSON object a line")
        #expect(segments.compactMap { $0["text"] as? String }.joined(separator: " ") == expected)
        #expect(segments.allSatisfy { $0["start"] is Double && $0["end"] is Double && $0["words"] is [Any] })
        // The writer needs ~7 s; the first segments must not wait for it.
        #expect(run.lines.count >= 3)
        if let first = run.lines.first { #expect(first.1 < run.elapsed - 2, "first segment at \(first.1) s of \(run.elapsed) s") }
    }

    @Test func badRawParametersAreUsageErrors() throws {
        let cases: [([String], String)] = [
            (["--raw", "s16le"], "--rate"),
            (["--raw", "s16le", "--rate", "0"], "--rate 0"),
            (["--raw", "u8", "--rate", "16000"], "u8"),
            (["--raw", "s16le", "--rate", "16000", "--channels", "0"], "--channels 0"),
            (["--rate", "16000"], "--raw"),
            (["--live", "--format", "srt"], "srt"),
            (["--live", "--output-dir", "/tmp"], "--output-dir"),
        ]
        for (arguments, mentioned) in cases {
            let result = try CLI.run(["transcribe", "-"] + arguments)
            #expect(result.status == 2, "\(arguments): \(result.stderr)")
            #expect(result.stderr.contains(mentioned), "\(arguments): \(result.stderr)")
        }
    }

    @Test func trailingPartialSampleIsAWarningNotAFailure() throws {
        let run = try Self.pipe("printf 'abc'", ["transcribe", "-", "--raw", "s16le", "--rate", "16000", "--quiet"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(run.stderr.contains("1 trailing byte"))
    }
}
