import Foundation
import Testing

/// The `asr serve` binary as users run it: started on a free loopback port, driven with curl, stopped with SIGTERM.
@Suite(.serialized) struct BinaryTests {
    /// A started `asr serve` and the port it logged.
    final class ServeProcess: @unchecked Sendable {
        let process = Process()
        let port: Int
        private let log = LockedLog()

        final class LockedLog: @unchecked Sendable {
            private let lock = NSLock()
            private var text = ""
            func append(_ s: String) { lock.lock(); text += s; lock.unlock() }
            var value: String { lock.lock(); defer { lock.unlock() }; return text }
        }

        init(_ arguments: [String], environment: [String: String] = [:]) throws {
            process.executableURL = Paths.executable
            process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
            process.arguments = ["serve", "--port", "0"] + arguments
            let err = Pipe()
            process.standardError = err
            process.standardOutput = FileHandle.nullDevice
            let log = self.log
            err.fileHandleForReading.readabilityHandler = { handle in
                let data = handle.availableData
                if !data.isEmpty { log.append(String(decoding: data, as: UTF8.self)) }
            }
            try process.run()
            let deadline = Date().addingTimeInterval(60)
            var found: Int?
            while found == nil && Date() < deadline && process.isRunning {
                if let range = log.value.range(of: "listening on http://127.0.0.1:") {
                    found = Int(log.value[range.upperBound...].prefix { $0.isNumber })
                }
                if found == nil { Thread.sleep(forTimeInterval: 0.05) }
            }
            guard let found else {
                if process.isRunning { process.terminate() }
                throw TestFailure("asr serve did not start: \(log.value)")
            }
            port = found
        }

        var stderr: String { log.value }

        func waitForExit(seconds: Double = 60) -> Int32? {
            let deadline = Date().addingTimeInterval(seconds)
            while process.isRunning && Date() < deadline { Thread.sleep(forTimeInterval: 0.05) }
            return process.isRunning ? nil : process.terminationStatus
        }

        deinit { if process.isRunning { process.terminate() } }
    }

    static let sample = Paths.fixture("audio/builtin/08.wav")

    @Test func curlMultipartMatchesTheCLI() async throws {
        guard FileManager.default.isExecutableFile(atPath: "/usr/bin/curl") else { return }
        let server = try ServeProcess([])
        for (format, cli) in [("text", "txt"), ("srt", "srt"), ("vtt", "vtt")] {
            let result = try runProgram(URL(fileURLWithPath: "/usr/bin/curl"), [
                "-sS", "--fail-with-body", "http://127.0.0.1:\(server.port)/v1/audio/transcriptions",
                "-F", "file=@\(Self.sample)", "-F", "model=builtin", "-F", "response_format=\(format)",
            ])
            #expect(result.status == 0, "\(result.stderr)")
            #expect(String(decoding: result.stdout, as: UTF8.self) == (try cliTranscript(Self.sample, format: cli)))
        }
        let json = try runProgram(URL(fileURLWithPath: "/usr/bin/curl"), [
            "-sS", "http://127.0.0.1:\(server.port)/v1/audio/transcriptions", "-F", "file=@\(Self.sample)",
        ])
        let text = (try JSONSerialization.jsonObject(with: json.stdout) as? [String: Any])?["text"] as? String
        #expect(text == String(try cliTranscript(Self.sample, format: "txt").dropLast()))
        let notFound = try runProgram(URL(fileURLWithPath: "/usr/bin/curl"), [
            "-s", "-o", "/dev/null", "-w", "%{http_code}", "http://127.0.0.1:\(server.port)/v1/audio/transcriptions",
            "-F", "file=@\(Self.sample)", "-F", "model=whisper-1",
        ])
        #expect(String(decoding: notFound.stdout, as: UTF8.self) == "404")
        kill(server.process.processIdentifier, SIGTERM)
        #expect(server.waitForExit() == 0)
    }

    /// SIGTERM while a request is uploading: it is finished and answered, the process exits 0, nothing is left.
    @Test func sigtermFinishesTheRequestInFlightThenExitsZero() async throws {
        let temporary = FileManager.default.temporaryDirectory.appendingPathComponent("asr-serve-bin-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: temporary) }
        let server = try ServeProcess(["--grace-seconds", "20"], environment: ["TMPDIR": temporary.path])
        let port = server.port
        let upload = try form(file: Self.sample)
        let body = upload.finished()
        let reply = try await offPool { () -> Reply in
            let connection = try Connection(port: port)
            connection.send(Data("POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: \(upload.contentType)\r\nContent-Length: \(body.count)\r\n\r\n".utf8) + body.prefix(1000))
            Thread.sleep(forTimeInterval: 0.5)
            kill(server.process.processIdentifier, SIGTERM)
            Thread.sleep(forTimeInterval: 0.5)
            connection.send(body.dropFirst(1000))
            return try connection.readReply()
        }
        #expect(reply.status == 200, "\(reply.text)")
        #expect(reply.json["text"] as? String == String(try cliTranscript(Self.sample, format: "txt").dropLast()))
        #expect(server.waitForExit() == 0, "\(server.stderr)")
        #expect((try? FileManager.default.contentsOfDirectory(atPath: temporary.path)) == [])
        #expect((try? Connection(port: port)) == nil)
    }

    /// SIGTERM with --grace-seconds 3 while one long request computes and another waits (issue 25, item 3): both are
    /// answered 503 before the deadline, a request arriving during the drain gets 503 (not "connection refused"), and
    /// the process exits 0 within the grace period.
    @Test func theGraceDeadlineIsKept() async throws {
        let server = try ServeProcess(["--grace-seconds", "3"])
        let long = try NoiseRecording(seconds: 900)
        let upload = try long.request()
        let port = server.port
        let pid = server.process.processIdentifier
        let results = try await offPool { () -> (Reply, Reply, Reply, Double, Double) in
            let first = try Connection(port: port), second = try Connection(port: port)
            first.send(upload)
            Thread.sleep(forTimeInterval: 1.0)
            second.send(upload)
            Thread.sleep(forTimeInterval: 0.5)
            let signalled = Date()
            kill(pid, SIGTERM)
            Thread.sleep(forTimeInterval: 0.3)
            let late = try Connection(port: port)
            late.send(Data("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".utf8))
            let lateReply = try late.readReply()
            let a = try first.readReply(), b = try second.readReply()
            let answered = Date().timeIntervalSince(signalled)
            while kill(pid, 0) == 0 && Date().timeIntervalSince(signalled) < 30 { Thread.sleep(forTimeInterval: 0.02) }
            return (a, b, lateReply, answered, Date().timeIntervalSince(signalled))
        }
        let (a, b, late, answered, exited) = results
        #expect(a.status == 503 && b.status == 503, "\(a.status) \(a.text) / \(b.status) \(b.text)")
        #expect(late.status == 503, "during the drain: \(late.status)")
        #expect(answered < 3.0, "answered \(answered) s after SIGTERM")
        #expect(exited < 3.5, "exited \(exited) s after SIGTERM")
        #expect(server.waitForExit() == 0, "\(server.stderr)")
    }

    @Test func aModelThatCannotBeLoadedExits1BeforeListening() throws {
        let result = try runProgram(Paths.executable, ["serve", "--port", "0", "--model", "bad=/nonexistent/model"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("/nonexistent/model"))
        #expect(!result.stderr.contains("listening"))
        let usage = try runProgram(Paths.executable, ["serve", "--port", "0", "--model", "a=/x", "--model", "a=/y"])
        #expect(usage.status == 2)
    }

    /// `--api-key "$KEY"` with KEY unset must not start a server that looks closed and is open (issue 25, item 4);
    /// an alias must name a served model.
    @Test func anEmptyAPIKeyOrAWrongAliasIsRefusedAtStart() throws {
        for key in ["", "  "] {
            let result = try runProgram(Paths.executable, ["serve", "--port", "0", "--api-key", key])
            #expect(result.status == 2 && result.stderr.contains("--api-key is empty"), "\(result.stderr)")
            #expect(!result.stderr.contains("listening"))
        }
        let alias = try runProgram(Paths.executable, ["serve", "--port", "0", "--model-alias", "whisper-1=nope"])
        #expect(alias.status == 2 && alias.stderr.contains("no served model is named 'nope'"), "\(alias.stderr)")
    }
}
