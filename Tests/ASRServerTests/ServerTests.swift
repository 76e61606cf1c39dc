import ASRBuiltinModel
import ASRKit
@testable import ASRServer
import Foundation
import Testing

/// The transcription endpoint against the CLI, every response format and every error status, on an in-process
/// server listening on an ephemeral loopback port.
@Suite(.serialized) struct ServerTests {
    static let sample = Paths.fixture("audio/builtin/08.wav")
    static let longer = Paths.fixture("audio/builtin/03.wav")

    @Test func formatsMatchTheCLIByteForByte() async throws {
        let running = try await RunningServer.start()
        defer { Task { await running.stop() } }
        for file in [Self.sample, Self.longer, Paths.fixture("audio/stereo_44100_24bit.flac")] {
            let txt = try cliTranscript(file, format: "txt")
            for (format, cli) in [("text", "txt"), ("srt", "srt"), ("vtt", "vtt")] {
                let reply = try await transcription(port: running.port, try form(file: file, [("model", "builtin"), ("response_format", format)]))
                #expect(reply.status == 200, "\(reply.text)")
                #expect(reply.text == (cli == "txt" ? txt : try cliTranscript(file, format: cli)), "\(format) of \(file)")
            }
            let json = try await transcription(port: running.port, try form(file: file))
            #expect(json.status == 200)
            #expect(json.headers["content-type"] == "application/json")
            #expect(json.json["text"] as? String == String(txt.dropLast()))

            let cliJSON = try JSONSerialization.jsonObject(with: Data(try cliTranscript(file, format: "json").utf8)) as! [String: Any]
            let verbose = try await transcription(port: running.port, try form(file: file, [
                ("response_format", "verbose_json"), ("timestamp_granularities[]", "word"), ("timestamp_granularities[]", "segment"),
                ("language", "en"), ("temperature", "0.2"),
            ]))
            #expect(verbose.status == 200)
            let v = verbose.json
            #expect(v["task"] as? String == "transcribe")
            #expect(v["language"] as? String == "en")
            #expect(v["text"] as? String == cliJSON["text"] as? String)
            #expect(v["duration"] as? Double == cliJSON["duration"] as? Double)
            let words = v["words"] as? [[String: Any]] ?? []
            let cliWords = cliJSON["words"] as? [[String: Any]] ?? []
            #expect(words.count == cliWords.count)
            for (ours, theirs) in zip(words, cliWords) {
                #expect(ours["word"] as? String == theirs["text"] as? String)
                #expect(ours["start"] as? Double == theirs["start"] as? Double)
                #expect(ours["end"] as? Double == theirs["end"] as? Double)
            }
            let srtCues = try cliTranscript(file, format: "srt").components(separatedBy: "\n\n").filter { !$0.isEmpty }
            let segments = v["segments"] as? [[String: Any]] ?? []
            #expect(segments.count == srtCues.count)
            #expect(segments.map { $0["text"] as? String ?? "" }.joined(separator: " ") == cliWords.map { $0["text"] as? String ?? "" }.joined(separator: " "))
            // Without word granularity: no words.
            let plain = try await transcription(port: running.port, try form(file: file, [("response_format", "verbose_json")]))
            #expect(plain.json["words"] == nil)
            #expect(plain.json["segments"] != nil)
        }
        #expect(running.leftovers.isEmpty)
    }

    @Test func decodingOptionsMatchTheCLI() async throws {
        let running = try await RunningServer.start()
        defer { Task { await running.stop() } }
        let expected = try cliTranscript(Self.sample, format: "srt", ["--hotword", "TEMPERATURE:4", "--hotword", "DEGREES", "--beam", "8"])
        let reply = try await transcription(port: running.port, try form(file: Self.sample, [
            ("response_format", "srt"), ("hotwords", "TEMPERATURE:4, DEGREES"), ("beam", "8"),
        ]))
        #expect(reply.status == 200, "\(reply.text)")
        #expect(reply.text == expected)
        // prompt → hotwords (words the model can spell, default weight).
        let prompted = try await transcription(port: running.port, try form(file: Self.sample, [
            ("response_format", "text"), ("prompt", "Temperature, degrees!"),
        ]))
        #expect(prompted.text == (try cliTranscript(Self.sample, format: "txt", ["--hotword", "Temperature", "--hotword", "degrees"])))
    }

    @Test func languageModelOnAndOffMatchTheCLI() async throws {
        let modelDirectory = Paths.fixture("models/base-layout")
        let arpa = Paths.fixture("lm/tiny_corpus.lmplz.order3.arpa")
        let transcriber = try Transcriber(modelDirectory: URL(fileURLWithPath: modelDirectory))
        let lm = try DecodingLanguageModel.load(path: arpa, options: BeamSearchOptions())
        let running = try await RunningServer.start(models: [
            ServedModel(name: "base", transcriber: transcriber, languageModel: (lm.0, lm.1)),
            ServedModel(name: "builtin", transcriber: RunningServer.builtin, languageModel: nil),
        ])
        defer { Task { await running.stop() } }
        let speech = Paths.fixture("speech_16k.wav")
        let on = try await transcription(port: running.port, try form(file: speech, [("model", "base"), ("response_format", "text")]))
        #expect(on.text == (try cliTranscript(speech, format: "txt", ["--model", modelDirectory, "--lm", arpa])))
        let off = try await transcription(port: running.port, try form(file: speech, [("model", "base"), ("response_format", "text"), ("lm", "off")]))
        #expect(off.text == (try cliTranscript(speech, format: "txt", ["--model", modelDirectory])))
        let noLM = try await transcription(port: running.port, try form(file: Self.sample, [("model", "builtin"), ("lm", "on")]))
        #expect(noLM.status == 400 && (noLM.json["error"] as? [String: Any])?["param"] as? String == "lm")
        let models = try await request(port: running.port, "GET", "/v1/models")
        #expect((models.json["data"] as? [[String: Any]])?.compactMap { $0["id"] as? String } == ["base", "builtin"])
    }

    /// A multilingual (MMS) model runs the request's `language` (its own codes or ISO 639-1), as the CLI's --language.
    /// `POST /v1/audio/alignments`: every format byte for byte as `asr align -f FORMAT` (the upload's name standing
    /// for the file), and its errors in OpenAI's shape.
    @Test func alignmentsMatchTheCLIByteForByte() async throws {
        let running = try await RunningServer.start()
        defer { Task { await running.stop() } }
        let text = "SET A TIMER\nfor 7 minutes!"
        let file = Paths.fixture("audio/builtin/01.wav")
        func align(_ fields: [(String, String)]) async throws -> Reply {
            let body = try form(file: file, fields)
            return try await request(port: running.port, "POST", "/v1/audio/alignments", headers: ["Content-Type": body.contentType],
                                     body: body.finished())
        }
        for format in ["json", "srt", "vtt", "tsv", "textgrid", "ctm", "txt"] {
            let reply = try await align([("text", text), ("response_format", format)])
            #expect(reply.status == 200, "\(format): \(reply.text)")
            let dir = FileManager.default.temporaryDirectory.appendingPathComponent("asr-align-\(UUID().uuidString)")
            try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
            defer { try? FileManager.default.removeItem(at: dir) }
            // The CLI names the file as given: give it the upload's name.
            let local = dir.appendingPathComponent("01.wav")
            try FileManager.default.copyItem(atPath: file, toPath: local.path)
            let cli = try runProgram(Paths.executable, ["align", "01.wav", "--text", text, "-f", format, "-q"], in: dir.path)
            #expect(cli.status == 0)
            #expect(reply.text == String(decoding: cli.stdout, as: UTF8.self), "\(format)")
            if format == "json" {
                // word_ends=acoustic is the CLI's --word-ends acoustic, and moves some end.
                let acoustic = try await align([("text", text), ("response_format", format), ("word_ends", "acoustic")])
                let cliAcoustic = try runProgram(Paths.executable, ["align", "01.wav", "--text", text, "-f", format, "-q",
                                                                    "--word-ends", "acoustic"], in: dir.path)
                #expect(acoustic.status == 200 && acoustic.text == String(decoding: cliAcoustic.stdout, as: UTF8.self))
                #expect(acoustic.text != reply.text)
            }
        }
        let badWordEnds = try await align([("text", text), ("word_ends", "late")])
        #expect(badWordEnds.status == 400 && (badWordEnds.json["error"] as? [String: Any])?["param"] as? String == "word_ends")
        let noText = try await align([])
        #expect(noText.status == 400 && (noText.json["error"] as? [String: Any])?["param"] as? String == "text", "\(noText.text)")
        let tooLong = try await align([("text", String(repeating: "ABABABAB ", count: 200))])
        let error = tooLong.json["error"] as? [String: Any]
        #expect(tooLong.status == 400 && error?["code"] as? String == "transcript_too_long", "\(tooLong.text)")
        #expect((error?["message"] as? String)?.contains("s of audio") == true)
        let badFormat = try await align([("text", text), ("response_format", "docx")])
        #expect(badFormat.status == 400)
        #expect(running.leftovers.isEmpty)
    }

    /// Operators' options (issue 25): OpenAI model names as aliases, a cap on `beam`, HEAD /health for load balancers.
    @Test func aliasesBeamCapAndHeadHealth() async throws {
        let running = try await RunningServer.start { options in
            options.modelAliases = ["whisper-1": "builtin"]
            options.maxBeam = 8
        }
        defer { Task { await running.stop() } }
        let aliased = try await transcription(port: running.port, try form(file: Self.sample, [("model", "whisper-1")]))
        #expect(aliased.status == 200, "\(aliased.text)")
        #expect((aliased.json["text"] as? String).map { $0 + "\n" } == (try cliTranscript(Self.sample, format: "txt")))
        let models = try await request(port: running.port, "GET", "/v1/models")
        #expect(models.text.contains("\"whisper-1\"") && models.text.contains("\"builtin\""))
        #expect(try await request(port: running.port, "GET", "/v1/models/whisper-1").status == 200)
        let unknown = try await transcription(port: running.port, try form(file: Self.sample, [("model", "gpt-4o-transcribe")]))
        #expect(unknown.status == 404)
        let wide = try await transcription(port: running.port, try form(file: Self.sample, [("beam", "9")]))
        #expect(wide.status == 400 && wide.text.contains("--max-beam"), "\(wide.text)")
        #expect(try await transcription(port: running.port, try form(file: Self.sample, [("beam", "8")])).status == 200)
        let head = try await request(port: running.port, "HEAD", "/health")
        #expect(head.status == 200)
    }

    /// A client that leaves stops its work (issue 25, item 1): the one in the forward pass stops at its next chunk,
    /// the one waiting in the queue leaves it, and the next request is served at its normal latency instead of
    /// after both (15 minutes of audio each: ~15 s of compute apiece here).
    @Test func aClientThatLeavesStopsItsWork() async throws {
        let running = try await RunningServer.start { $0.maxConcurrency = 1 }
        defer { Task { await running.stop() } }
        let long = try NoiseRecording(seconds: 900)

        let started = ContinuousClock.now
        #expect(try await transcription(port: running.port, try form(file: Self.sample)).status == 200)
        let baseline = ContinuousClock.now - started

        let upload = try long.request()
        let port = running.port
        try await offPool {
            // The first starts its forward pass; the second waits in the queue behind it; both leave.
            let first = try Connection(port: port)
            first.send(upload)
            Thread.sleep(forTimeInterval: 1.5)
            let second = try Connection(port: port)
            second.send(upload)
            Thread.sleep(forTimeInterval: 1.0)
            withExtendedLifetime((first, second)) {}
        }
        // (Both sockets are closed now.) The next request waits at most for a chunk of the first to end.
        let after = ContinuousClock.now
        let reply = try await transcription(port: running.port, try form(file: Self.sample))
        let latency = ContinuousClock.now - after
        #expect(reply.status == 200)
        #expect(latency < baseline + .seconds(4), "served after \(latency) (alone: \(baseline)): the abandoned work went on")
        let metrics = try await request(port: running.port, "GET", "/metrics")
        #expect(metrics.text.contains("asr_abandoned_requests_total 2"), "\(metrics.text)")
    }

    /// Issue 25, item 5: a request's compute time is capped; past the cap its work stops at the next chunk and it is
    /// answered 503 `compute_time_exceeded`, and the slot is free for the next request.
    @Test func computeTimeIsCapped() async throws {
        let running = try await RunningServer.start { $0.maxConcurrency = 1; $0.maxComputeSeconds = 1 }
        defer { Task { await running.stop() } }
        let long = try NoiseRecording(seconds: 900)
        let started = ContinuousClock.now
        let reply = try await transcription(port: running.port, try form(file: long.url.path))
        let took = ContinuousClock.now - started
        #expect(reply.status == 503, "\(reply.text)")
        #expect((reply.json["error"] as? [String: Any])?["code"] as? String == "compute_time_exceeded", "\(reply.text)")
        // 15 minutes of audio take about a minute here; the cap stops it after the chunk running at 1 s.
        #expect(took < .seconds(15), "answered after \(took)")
        #expect(try await transcription(port: running.port, try form(file: Self.sample)).status == 200)
        let metrics = try await request(port: running.port, "GET", "/metrics")
        #expect(metrics.text.contains("asr_compute_time_exceeded_total 1"), "\(metrics.text)")
    }

    /// An early refusal (413 by Content-Length, 415, 404 on PUT) is the only answer on its connection: the unread
    /// body is not parsed as another request (issue 25, item 7: an extra "400" followed).
    @Test func anEarlyRefusalIsTheOnlyAnswer() async throws {
        let running = try await RunningServer.start { $0.maxUploadBytes = 1_048_576 }
        defer { Task { await running.stop() } }
        let port = running.port
        let cases: [(String, Data, Int)] = [
            ("POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=abc\r\nContent-Length: 2000000\r\n\r\n",
             Data(repeating: 0x78, count: 500_000), 413),
            ("POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n",
             Data(repeating: 0x79, count: 100), 415),
            ("PUT /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n", Data(repeating: 0x79, count: 100), 404),
        ]
        for (head, body, status) in cases {
            let answer = try await offPool { () -> String in
                let connection = try Connection(port: port)
                connection.send(Data(head.utf8) + body)
                connection.setReceiveTimeout(3)
                return String(decoding: connection.readAll(), as: UTF8.self)
            }
            let statusLines = answer.components(separatedBy: "\r\n").filter { $0.hasPrefix("HTTP/1.1 ") }
            #expect(statusLines.count == 1 && statusLines.first?.hasPrefix("HTTP/1.1 \(status)") == true, "\(statusLines)")
        }
    }

    /// `Expect: 100-continue` (curl sends it for bodies over 1 MB, then waits a second): answered before the body.
    @Test func expectContinueIsAnswered() async throws {
        let running = try await RunningServer.start()
        defer { Task { await running.stop() } }
        let upload = try form(file: Self.sample)
        let body = upload.finished()
        let port = running.port
        let (interim, reply) = try await offPool { () -> (String, Reply) in
            let connection = try Connection(port: port)
            connection.send(Data(("POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nConnection: close\r\nExpect: 100-continue\r\n"
                + "Content-Type: \(upload.contentType)\r\nContent-Length: \(body.count)\r\n\r\n").utf8))
            connection.setReceiveTimeout(2)
            var buffer = [UInt8](repeating: 0, count: 256)
            let n = recv(connection.fd, &buffer, buffer.count, 0)
            let interim = n > 0 ? String(decoding: buffer[0..<n], as: UTF8.self) : ""
            connection.setReceiveTimeout(60)
            connection.send(body)
            return (interim, try connection.readReply())
        }
        #expect(interim.hasPrefix("HTTP/1.1 100 Continue"), "before the body: \(interim)")
        #expect(reply.status == 200, "\(reply.status)")
    }

    /// A client that leaves while queued gives its place back at once, not when its turn comes.
    @Test func aQueuedClientThatLeavesFreesItsPlace() async throws {
        let running = try await RunningServer.start { $0.maxConcurrency = 1; $0.queueSize = 1 }
        defer { Task { await running.stop() } }
        let long = try NoiseRecording(seconds: 900)
        let upload = try long.request()
        let port = running.port
        let first = try await offPool { () -> Connection in
            let connection = try Connection(port: port)
            connection.send(upload)
            return connection
        }
        try await Task.sleep(for: .seconds(1))
        try await offPool {
            let second = try Connection(port: port)
            second.send(upload)
            Thread.sleep(forTimeInterval: 1.0)
            withExtendedLifetime(second) {}
        }
        try await Task.sleep(for: .milliseconds(500))
        let metrics = try await request(port: port, "GET", "/metrics").text
        #expect(metrics.contains("asr_queue_depth 0") && metrics.contains("asr_forward_passes_running 1"), "\(metrics)")
        withExtendedLifetime(first) {}
    }

    /// Slow senders cannot lock others out (issue 25, item 2): uploads hold no queue place, and one slower than the
    /// minimum rate is cut once the grace has passed. Here the whole queue is one place.
    @Test func slowUploadsDoNotLockOthersOut() async throws {
        let running = try await RunningServer.start { options in
            options.maxConcurrency = 1
            options.queueSize = 0
            options.uploadRateGrace = .seconds(1)
            options.minUploadBytesPerSecond = 16 * 1024
        }
        defer { Task { await running.stop() } }
        let upload = try form(file: Self.sample)
        let body = upload.finished()
        let head = "POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Type: \(upload.contentType)\r\nContent-Length: \(body.count)\r\n\r\n"
        let port = running.port
        let slow = try await offPool { () -> [Connection] in
            try (0..<5).map { _ in
                let connection = try Connection(port: port)
                connection.send(Data(head.utf8) + body.prefix(100))
                return connection
            }
        }
        try await Task.sleep(for: .milliseconds(300))
        let served = try await transcription(port: running.port, upload)
        #expect(served.status == 200, "a complete upload is served while 5 slow ones trickle: \(served.status) \(served.text)")
        // The slow ones are cut after the grace (1 s here): the server closes their connections.
        let cut = try await offPool { () -> Int in
            var closed = 0
            for connection in slow {
                connection.setReceiveTimeout(5)
                _ = connection.readAll()   // returns at the server's close (or the 5 s timeout)
                if !connection.send(Data(repeating: 0x41, count: 1)) || !connection.send(Data(repeating: 0x41, count: 1)) { closed += 1 }
            }
            return closed
        }
        #expect(cut == 5, "\(cut) of 5 slow uploads cut")
        #expect(running.leftovers.isEmpty)
    }

    /// `stream=true`: Server-Sent Events as OpenAI sends them; the deltas add up to the non-streamed text.
    @Test func streamedTranscriptionsAreServerSentEvents() async throws {
        let running = try await RunningServer.start()
        defer { Task { await running.stop() } }
        let file = Paths.fixture("audio/long_speech_60s.ogg")
        let plain = try await transcription(port: running.port, try form(file: file))
        let text = try #require(plain.json["text"] as? String)
        for value in ["true", "True", "1"] {
            let reply = try await transcription(port: running.port, try form(file: file, [("stream", value)]))
            #expect(reply.status == 200 && reply.headers["content-type"] == "text/event-stream")
            #expect(reply.headers["transfer-encoding"] == "chunked")
            // The body as sent: chunked transfer coding undone (each chunk "SIZE\r\nDATA\r\n", then "0\r\n\r\n").
            var body = Data(), rest = reply.body[...]
            while let lineEnd = rest.range(of: Data("\r\n".utf8)),
                  let size = Int(String(decoding: rest[..<lineEnd.lowerBound], as: UTF8.self), radix: 16), size > 0 {
                body += rest[lineEnd.upperBound..<(lineEnd.upperBound + size)]
                rest = rest[(lineEnd.upperBound + size + 2)...]
            }
            // (Comment lines, ": ", are the heartbeat that notices a client gone; SSE readers skip them.)
            let events = String(decoding: body, as: UTF8.self).components(separatedBy: "\n\n")
                .filter { !$0.isEmpty && !$0.hasPrefix(":") }.map { event -> [String: Any] in
                #expect(event.hasPrefix("data: "))
                return (try? JSONSerialization.jsonObject(with: Data(event.dropFirst(6).utf8))) as? [String: Any] ?? [:]
            }
            let deltas = events.filter { $0["type"] as? String == "transcript.text.delta" }.compactMap { $0["delta"] as? String }
            #expect(deltas.count >= 3, "one delta per final segment of a 69 s file: \(deltas.count)")
            #expect(deltas.joined() == text)
            #expect(events.last?["type"] as? String == "transcript.text.done" && events.last?["text"] as? String == text)
        }
        let bad = try await transcription(port: running.port, try form(file: Self.sample, [("stream", "maybe")]))
        #expect(bad.status == 400)
        #expect(try await transcription(port: running.port, try form(file: Self.sample, [("stream", "false")])).status == 200)
        #expect(running.leftovers.isEmpty)
    }

    @Test func languageChoosesAnMMSModelsAdapters() async throws {
        let modelDirectory = Paths.fixture("models/mms-layout")
        let transcriber = try Transcriber(modelDirectory: URL(fileURLWithPath: modelDirectory))
        let running = try await RunningServer.start(models: [ServedModel(name: "mms", transcriber: transcriber, languageModel: nil)])
        defer { Task { await running.stop() } }
        let speech = Paths.fixture("speech_16k.wav")
        for (asked, language) in [("fra", "fra"), ("de", "deu"), ("eng", "eng"), (nil, "eng"), ("fr", "fra")] {
            var fields = [("response_format", "verbose_json")]
            if let asked { fields.append(("language", asked)) }
            let reply = try await transcription(port: running.port, try form(file: speech, fields))
            #expect(reply.status == 200, "\(reply.text)")
            #expect(reply.json["language"] as? String == language)
            let cli = try cliTranscript(speech, format: "txt", ["--model", modelDirectory, "--language", language])
            #expect((reply.json["text"] as? String).map { $0 + "\n" } == cli, "\(asked ?? "none")")
        }
        let unknown = try await transcription(port: running.port, try form(file: speech, [("language", "xx")]))
        #expect(unknown.status == 400)
        let error = unknown.json["error"] as? [String: Any]
        #expect(error?["param"] as? String == "language" && error?["code"] as? String == "unsupported_language")
        #expect((error?["message"] as? String)?.contains("deu, eng, fra") == true, "\(unknown.text)")
    }

    @Test func errorsHaveOpenAIsShapeAndStatus() async throws {
        let running = try await RunningServer.start { $0.maxAudioSeconds = 20 }
        defer { Task { await running.stop() } }
        let port = running.port
        func expectError(_ reply: Reply, _ status: Int, code: String? = nil, param: String? = nil, sourceLocation: SourceLocation = #_sourceLocation) {
            #expect(reply.status == status, "\(reply.text)", sourceLocation: sourceLocation)
            let error = reply.json["error"] as? [String: Any]
            #expect(error?["message"] is String, sourceLocation: sourceLocation)
            #expect(error?["type"] is String, sourceLocation: sourceLocation)
            #expect(error?.keys.contains("param") == true && error?.keys.contains("code") == true, sourceLocation: sourceLocation)
            if let code { #expect(error?["code"] as? String == code, sourceLocation: sourceLocation) }
            if let param { #expect(error?["param"] as? String == param, sourceLocation: sourceLocation) }
        }
        expectError(try await transcription(port: port, try form(file: Self.sample, [("response_format", "xml")])), 400, param: "response_format")
        var noFile = Multipart()
        noFile.field("model", "builtin")
        expectError(try await transcription(port: port, noFile), 400, param: "file")
        var empty = Multipart()
        empty.file(Data())
        expectError(try await transcription(port: port, empty), 400, code: "empty_file")
        let unreadable = try await transcription(port: port, try form(file: Paths.fixture("audio/broken_text.wav")))
        expectError(unreadable, 400, code: "invalid_audio", param: "file")
        #expect(!unreadable.text.contains(running.temporaryDirectory) && !unreadable.text.contains("/proc/self"))
        #expect(unreadable.text.contains("broken_text.wav"))
        expectError(try await transcription(port: port, try form(file: Self.sample, [("beam", "0")])), 400, param: "beam")
        expectError(try await transcription(port: port, try form(file: Self.sample, [("temperature", "hot")])), 400, param: "temperature")
        expectError(try await transcription(port: port, try form(file: Self.sample, [("hotwords", "ÆØÅ")])), 400, param: "hotwords")
        expectError(try await transcription(port: port, try form(file: Self.sample, [("timestamp_granularities[]", "char")])), 400)
        expectError(try await transcription(port: port, try form(file: Self.sample, [("model", "whisper-1")])), 404, code: "model_not_found", param: "model")
        expectError(try await request(port: port, "GET", "/v1/nothing"), 404)
        expectError(try await request(port: port, "POST", "/v1/audio/transcriptions", headers: ["Content-Type": "application/json"], body: Data("{}".utf8)), 415)
        expectError(try await request(port: port, "POST", "/v1/audio/transcriptions"), 415)
        expectError(try await request(port: port, "POST", "/v1/audio/transcriptions", headers: ["Content-Type": "multipart/form-data"], body: Data("x".utf8)), 400)
        var garbage = Multipart()
        garbage.file(try Data(contentsOf: URL(fileURLWithPath: Self.sample)))
        var truncated = garbage.finished()
        truncated.removeLast(40)
        expectError(try await request(port: port, "POST", "/v1/audio/transcriptions", headers: ["Content-Type": garbage.contentType], body: truncated), 400, code: "malformed_multipart")
        expectError(try await transcription(port: port, try form(file: Paths.fixture("audio/builtin/long_speech.flac"))), 422, code: "audio_too_long")
        expectError(try await request(port: port, "POST", "/v1/audio/transcriptions", headers: ["Content-Type": "text/plain"],
                                      body: try form(file: Self.sample).finished()), 415)
        let translation = try await transcription(port: port, try form(file: Self.sample)).status
        #expect(translation == 200)
        var translate = try form(file: Self.sample)
        translate.field("model", "builtin")
        let t = try await request(port: port, "POST", "/v1/audio/translations", headers: ["Content-Type": translate.contentType], body: translate.finished())
        expectError(t, 400, code: "unsupported_endpoint")
        // Errors are counted by status in /metrics.
        let metrics = try await request(port: port, "GET", "/metrics").text
        #expect(metrics.contains("asr_http_requests_total{endpoint=\"/v1/audio/transcriptions\",status=\"400\"}"))
        #expect(metrics.contains("asr_http_requests_total{endpoint=\"/v1/audio/transcriptions\",status=\"422\"}"))
        #expect(running.leftovers.isEmpty)
    }

    @Test func apiKeyIsRequiredOnV1() async throws {
        let running = try await RunningServer.start { $0.apiKey = "sk-test-123" }
        defer { Task { await running.stop() } }
        let port = running.port
        #expect(try await transcription(port: port, try form(file: Self.sample)).status == 401)
        let wrong = try await transcription(port: port, try form(file: Self.sample), headers: ["Authorization": "Bearer sk-test-124"])
        #expect(wrong.status == 401 && wrong.errorCode == "invalid_api_key")
        #expect(try await request(port: port, "GET", "/v1/models", headers: ["Authorization": "Bearer sk-test-12"]).status == 401)
        #expect(try await transcription(port: port, try form(file: Self.sample), headers: ["Authorization": "Bearer sk-test-123"]).status == 200)
        #expect(try await request(port: port, "GET", "/v1/models", headers: ["Authorization": "Bearer sk-test-123"]).status == 200)
        #expect(try await request(port: port, "GET", "/health").status == 200)
        #expect(TranscriptionServer.constantTimeEqual(Array("abc".utf8), Array("abc".utf8)))
        #expect(!TranscriptionServer.constantTimeEqual(Array("abcd".utf8), Array("abc".utf8)))
        #expect(!TranscriptionServer.constantTimeEqual([], Array("abc".utf8)))
    }

    @Test func uploadsOverTheLimitAreRefusedWhileStreaming() async throws {
        let running = try await RunningServer.start { $0.maxUploadBytes = 1_048_576 }
        defer { Task { await running.stop() } }
        let port = running.port
        // Announced too large: refused before reading.
        var big = Multipart()
        big.file(Data(repeating: 7, count: 3 * 1_048_576))
        let announced = try await transcription(port: port, big)
        #expect(announced.status == 413 && announced.errorCode == "upload_too_large")
        // Chunked, no length: refused as soon as the limit is passed; the server does not wait for the rest.
        let form = big
        let streamed = try await offPool { () -> (Reply, Int) in
            let connection = try Connection(port: port)
            connection.send(Data("POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Type: \(form.contentType)\r\n\r\n".utf8))
            var sent = 0
            let body = form.finished()
            var offset = 0
            // 2 MB of a 3 MB body, then stop sending: the answer must still come.
            while offset < 2 * 1_048_576 {
                let piece = body[offset..<min(offset + 65536, body.count)]
                guard connection.send(Data(String(piece.count, radix: 16).utf8) + Data("\r\n".utf8) + piece + Data("\r\n".utf8)) else { break }
                offset += piece.count
                sent += piece.count
            }
            connection.setReceiveTimeout(20)
            return (try connection.readReply(), sent)
        }
        #expect(streamed.0.status == 413)
        #expect(try await request(port: port, "GET", "/health").status == 200)
        #expect(running.leftovers.isEmpty)
    }

    @Test func aFullQueueAnswers429WithRetryAfter() async throws {
        let running = try await RunningServer.start { $0.maxConcurrency = 1; $0.queueSize = 0 }
        defer { Task { await running.stop() } }
        let port = running.port
        // One request computing holds the only place (two minutes of audio: about two seconds of compute). An upload
        // still arriving would hold none (slowUploadsDoNotLockOthersOut).
        let long = try NoiseRecording(seconds: 120)
        let holder = try Connection(port: port)
        holder.send(try long.request())
        try await Task.sleep(for: .milliseconds(500))
        let refused = try await transcription(port: port, try form(file: Self.sample))
        #expect(refused.status == 429 && refused.errorCode == "queue_full", "\(refused.status) \(refused.text)")
        #expect(Int(refused.headers["retry-after"] ?? "") ?? 0 >= 1)
        let metrics = try await request(port: port, "GET", "/metrics").text
        #expect(metrics.contains("asr_in_flight_requests 1"))
        #expect(metrics.contains("asr_forward_passes_running 1"))
        // The holder is answered; then there is room again.
        let finished = try await offPool { () -> Reply in
            holder.setReceiveTimeout(60)
            return try holder.readReply()
        }
        #expect(finished.status == 200)
        #expect(try await transcription(port: port, try form(file: Self.sample)).status == 200)
        let after = try await request(port: port, "GET", "/metrics").text
        #expect(after.contains("asr_queue_depth 0") && after.contains("asr_in_flight_requests 0"))
        #expect(after.contains("asr_http_requests_total{endpoint=\"/v1/audio/transcriptions\",status=\"429\"} 1"))
        #expect(after.contains("asr_real_time_factor_bucket"))
        #expect(after.contains("asr_audio_seconds_total"))
    }

    @Test func drainingAnswers503() async throws {
        let running = try await RunningServer.start()
        defer { Task { await running.stop() } }
        #expect(try await request(port: running.port, "GET", "/health").status == 200)
        running.server.beginDraining()
        let reply = try await transcription(port: running.port, try form(file: Self.sample))
        #expect(reply.status == 503 && reply.errorCode == "shutting_down")
        #expect(try await request(port: running.port, "GET", "/health").status == 503)
    }
}
