import ASRKit
import Foundation
import Hummingbird
import HummingbirdWebSocket
import NIOHTTPTypes
import Logging
import NIOConcurrencyHelpers
import NIOCore
import ServiceLifecycle

/// A model the server offers, under the name requests give in `model`.
package struct ServedModel: Sendable {
    package let name: String
    package let transcriber: Transcriber
    /// Loaded once at start (--lm, or the model directory's language_model/), used unless a request says lm=off.
    package let languageModel: DecoderRecipe.LoadedLanguageModel?
    /// A multilingual (MMS) model's other languages, loaded as requests ask for them.
    package let languages: ModelLanguages

    package init(name: String, transcriber: Transcriber, languageModel: DecoderRecipe.LoadedLanguageModel?) {
        self.name = name
        self.transcriber = transcriber
        self.languageModel = languageModel
        languages = ModelLanguages(transcriber)
    }
}

/// `asr serve`'s settings.
package struct ServerOptions: Sendable {
    package var host = "127.0.0.1"
    package var port = 8080
    package var apiKey: String?
    package var maxUploadBytes = 100 * 1_048_576
    package var maxAudioSeconds = 3600.0
    package var maxConcurrency = 1
    package var queueSize = 16
    /// An upload still arriving after this long is cut (slow clients hold a queue place and a temporary file).
    package var uploadTimeout: Duration = .seconds(300)
    /// Uploads received at once; more are refused with 429 before their body is read.
    package var maxUploads = 64
    /// An upload slower than this on average (bytes per second), once `uploadRateGrace` has passed, is cut: a slow
    /// sender cannot hold a connection and a temporary file for the whole upload timeout.
    package var minUploadBytesPerSecond = 16 * 1024
    package var uploadRateGrace: Duration = .seconds(10)
    /// A connection that sends nothing for this long (between requests, or stalled mid-request) is closed.
    package var idleTimeout: Duration = .seconds(30)
    /// SIGTERM/SIGINT: requests in flight get this long to finish.
    package var gracePeriod: Duration = .seconds(30)
    package var temporaryDirectory = NSTemporaryDirectory()
    package var chunking = ChunkingOptions.default
    /// The server's decoding settings (--beam, --hotword, ...); a request's `beam` and hotwords are laid over them.
    package var decoder = DecoderRecipe()
    /// The widest `beam` a request may ask for.
    package var maxBeam = 512
    /// A request's forward passes and decoding may take this long on a compute slot; past it the work stops at the
    /// next chunk and the request is answered 503 `compute_time_exceeded` (nil: no limit).
    package var maxComputeSeconds: Double? = 600
    /// Other names of served models (alias → served name), e.g. "whisper-1" for clients configured for OpenAI.
    package var modelAliases: [String: String] = [:]

    package init() {}
}

/// The request context: Hummingbird's, plus the connection (to stop reading an upload that is refused).
package struct ServerContext: RequestContext {
    package var coreContext: CoreRequestContextStorage
    let channel: any Channel

    package init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        channel = source.channel
    }
}

/// The OpenAI-compatible transcription server: `POST /v1/audio/transcriptions`, `POST /v1/audio/translations` (400),
/// `GET /v1/models`, `GET /health`, `GET /metrics`; and, beyond OpenAI's API, `POST /v1/audio/alignments` (forced
/// alignment of a known transcript, as `asr align`).
package final class TranscriptionServer: Sendable {
    package let models: [ServedModel]
    package let options: ServerOptions
    let logger: Logger
    package let metrics: ServerMetrics
    let admission: Admission
    private let draining = NIOLockedValueBox(false)
    /// The cancel flags of the requests admitted now, so that the drain deadline can stop them.
    private let active = NIOLockedValueBox<[ObjectIdentifier: CancelFlag]>([:])
    /// Uploads being received now (they hold no queue place until complete).
    private let uploads = NIOLockedValueBox(0)
    /// Uploads being received now.
    var uploadsInProgress: Int { uploads.withLockedValue { $0 } }
    /// Open realtime sessions, each with what tells it the server is shutting down.
    private let realtimeSessions = NIOLockedValueBox<[Int: @Sendable () -> Void]>([:])
    private let nextRealtimeID = NIOLockedValueBox(0)
    /// Realtime sessions open now.
    var realtimeSessionsOpen: Int { realtimeSessions.withLockedValue { $0.count } }

    /// A session joins the set the drain tells to finish (`drain` is called once, when shutdown begins).
    func registerRealtime(drain: @escaping @Sendable () -> Void) -> Int {
        let id = nextRealtimeID.withLockedValue { $0 += 1; return $0 }
        realtimeSessions.withLockedValue { $0[id] = drain }
        return id
    }

    /// A session leaves the set.
    func unregisterRealtime(_ id: Int) { realtimeSessions.withLockedValue { _ = $0.removeValue(forKey: id) } }

    package init(models: [ServedModel], options: ServerOptions, logger: Logger) {
        precondition(!models.isEmpty, "a server needs a model")
        self.models = models
        self.options = options
        self.logger = logger
        let metrics = ServerMetrics()
        self.metrics = metrics
        admission = Admission(maxConcurrency: options.maxConcurrency, queueSize: options.queueSize) { admitted, running in
            metrics.admission(admitted: admitted, running: running)
        }
    }

    /// Whether SIGTERM/SIGINT has been received: new requests are answered 503.
    package var isDraining: Bool { draining.withLockedValue { $0 } }

    package func beginDraining() {
        draining.withLockedValue { $0 = true }
        // Realtime sessions transcribe the item in progress and close.
        for drain in realtimeSessions.withLockedValue({ Array($0.values) }) { drain() }
    }

    /// Stops a request: its forward pass at the next chunk, or its wait in the queue at once.
    func abandon(_ cancel: CancelFlag) {
        cancel.set()
        Task { await admission.cancelWaiter(cancel) }
    }

    /// A request's flag joins the set the drain deadline stops.
    func remember(_ cancel: CancelFlag) { active.withLockedValue { $0[ObjectIdentifier(cancel)] = cancel } }

    /// A request's flag leaves the set the drain deadline stops.
    func forget(_ cancel: CancelFlag) { active.withLockedValue { _ = $0.removeValue(forKey: ObjectIdentifier(cancel)) } }

    /// Stops every request still admitted (the drain deadline): forward passes at their next chunk, queued requests
    /// at once; each is answered 503.
    func cancelAll() async {
        for flag in active.withLockedValue({ Array($0.values) }) { flag.set() }
        await admission.cancelWaiting()
    }

    /// The Hummingbird application; `onListening` gets the bound port (useful with port 0).
    package func makeApplication(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) -> some ApplicationProtocol {
        let router = Router(context: ServerContext.self)
        router.add(middleware: OpenAIMiddleware(server: self))
        router.get("/health") { _, _ in self.health() }
        router.head("/health") { _, _ in self.health() }
        router.get("/metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(bytes: self.metrics.exposition())))
        }
        router.get("/v1/models") { _, _ in
            // Served names, then the aliases (--model-alias) clients may send instead.
            self.json(ModelList(object: "list", data: (self.models.map(\.name) + self.options.modelAliases.keys.sorted()).map { ModelEntry(id: $0) }))
        }
        router.get("/v1/models/{id}") { _, context in
            let id = context.parameters.get("id") ?? ""
            _ = try self.model(named: id)
            return self.json(ModelEntry(id: id))
        }
        router.post("/v1/audio/transcriptions") { request, context in try await self.transcribe(request, context: context) }
        router.post("/v1/audio/alignments") { request, context in try await self.align(request, context: context) }
        router.post("/v1/audio/translations") { _, _ -> Response in
            throw APIError.badRequest(
                "Translation is not supported: this server transcribes speech in the language its model was trained on. "
                    + "Use /v1/audio/transcriptions.", code: "unsupported_endpoint")
        }
        // Without an upgrade (a plain GET, or an upgrade refused below): the reason, in OpenAI's error shape.
        router.get("/v1/realtime") { request, _ -> Response in
            _ = try self.realtimeModel(request)
            throw APIError(.upgradeRequired, "/v1/realtime is a WebSocket endpoint: connect with a WebSocket client (the openai SDK's client.realtime.connect).",
                           code: "websocket_required")
        }
        let realtime = Router(context: RealtimeContext.self)
        realtime.ws("/v1/realtime") { request, _ in
            // Every upgrade is taken: a refusal here could only be a bare 400 (Hummingbird answers a declined upgrade
            // so), while an `error` event on the socket says why (no key, shutting down, unknown model) before it closes.
            // A browser cannot set Authorization: it offers the key as a subprotocol; the answer selects "realtime".
            let offered = request.headers[.secWebSocketProtocol]?.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) } ?? []
            return .upgrade(offered.contains("realtime") ? [.secWebSocketProtocol: "realtime"] : [:])
        } onUpgrade: { inbound, outbound, context in
            try await self.runRealtime(context.request, inbound: inbound, outbound: outbound)
        }
        let listeningLogger = logger
        let host = options.host
        return Application(
            router: router,
            server: .http1WithRealtime(
                webSocketRouter: realtime, idleTimeout: options.idleTimeout, maxMessage: Self.maxRealtimeMessage),
            configuration: .init(address: .hostname(host, port: options.port), serverName: nil),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                listeningLogger.info("listening on http://\(host):\(port)")
                await onListening(port)
            },
            logger: logger)
    }

    /// Runs until SIGTERM or SIGINT, then stops accepting, lets requests in flight finish (up to the grace period)
    /// and returns.
    package func run(onListening: @escaping @Sendable (Int) async -> Void = { _ in }) async throws {
        let app = makeApplication(onListening: onListening)
        var configuration = ServiceGroupConfiguration(
            services: [
                .init(service: app),
                // Last, so shut down first: from then on new requests get 503 while the server drains.
                .init(service: DrainOnShutdown(server: self), successTerminationBehavior: .ignore),
            ],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger)
        configuration.maximumGracefulShutdownDuration = options.gracePeriod
        try await ServiceGroup(configuration: configuration).run()
    }

    // MARK: Endpoints

    struct ModelEntry: Encodable {
        let id: String
        let object = "model"
        let created = 0
        let owned_by = "asr"
    }

    struct ModelList: Encodable {
        let object: String
        let data: [ModelEntry]
    }

    struct Health: Encodable {
        let status: String
        let models: [String]
    }

    func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: JSON.encode(value)))
    }

    func health() -> Response {
        isDraining
            ? json(Health(status: "shutting_down", models: models.map(\.name)), status: .serviceUnavailable)
            : json(Health(status: "ok", models: models.map(\.name)))
    }

    /// The served model a request names (its name or an alias; the first model when none is named).
    func model(named requested: String?) throws -> ServedModel {
        let name = requested.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        guard !name.isEmpty else { return models[0] }
        let served = options.modelAliases[name] ?? name
        guard let found = models.first(where: { $0.name == served }) else { throw unknownModel(name) }
        return found
    }

    func unknownModel(_ name: String) -> APIError {
        .notFound("The model '\(name)' does not exist. This server has: \(models.map(\.name).joined(separator: ", ")).",
                  param: "model", code: "model_not_found")
    }

    /// Checks `Authorization: Bearer KEY` when the server has a key (constant-time comparison).
    func authenticate(_ request: Request) throws {
        guard let key = options.apiKey else { return }
        let header = request.headers[.authorization] ?? ""
        let given = header.lowercased().hasPrefix("bearer ") ? header.dropFirst(7).trimmingCharacters(in: .whitespaces) : ""
        guard Self.constantTimeEqual(Array(given.utf8), Array(key.utf8)) else { throw APIError.unauthorized }
    }

    /// Compares in time that depends only on the lengths, not on where the bytes differ.
    static func constantTimeEqual(_ a: [UInt8], _ b: [UInt8]) -> Bool {
        var difference = UInt8(a.count == b.count ? 0 : 1)
        guard !b.isEmpty else { return a.isEmpty }
        for i in 0..<max(a.count, b.count) {
            difference |= (i < a.count ? a[i] : 0) ^ b[i % b.count]
        }
        return difference == 0
    }

    // MARK: Transcription

    func transcribe(_ request: Request, context: ServerContext) async throws -> Response {
        try await admitted(request, context: context) { form, path, cancel, lease in
            let job = try TranscriptionJob(form: form, server: self)
            let chunking = options.chunking, maxSeconds = options.maxAudioSeconds
            if job.stream { return streamedTranscription(job, path: path, cancel: cancel, lease: lease) }
            let (transcription, seconds) = try await compute(cancel: cancel) {
                try job.transcriber.transcribe(file: URL(fileURLWithPath: path), name: Self.uploadName(job.filename), chunking: chunking, decoder: job.decoder, maxSeconds: maxSeconds,
                                               checkCancellation: { if cancel.isSet { throw RequestCancelled() } })
            }
            metrics.transcribed(audioSeconds: transcription.duration, computeSeconds: seconds)
            logger.info("transcribed \(String(format: "%.2f", transcription.duration)) s of audio in \(String(format: "%.3f", seconds)) s",
                        metadata: ["model": "\(job.model.name)", "format": "\(job.format.rawValue)"])
            return job.format.response(transcription, language: job.language, words: job.words)
        }
    }

    /// `stream=true`: Server-Sent Events as OpenAI sends them — a `transcript.text.delta` for each final segment as its
    /// chunk is decoded (greedy decoding; with a beam search or a language model, which can revise earlier text, one
    /// delta at the end), then `transcript.text.done` with the whole text, equal to the non-streamed response's. The
    /// work runs while the response streams; the upload and the queue place are released when it ends.
    private func streamedTranscription(_ job: TranscriptionJob, path: String, cancel requestCancel: CancelFlag, lease: Lease) -> Response {
        // The request's own flag is set once its handler returns (Hummingbird stops watching the connection then);
        // the stream has its own, set when a write fails (the client left) or by the drain deadline.
        let cancel = CancelFlag()
        if requestCancel.isSet { cancel.set() }
        remember(cancel)
        lease.transfer(stopping: cancel)
        let chunking = options.chunking, maxSeconds = options.maxAudioSeconds
        return Response(
            status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"],
            body: ResponseBody { writer in
                let (events, continuation) = AsyncStream<String>.makeStream()
                let work = Task { () -> Result<Transcription, any Error> in
                    defer { continuation.finish() }
                    do {
                        let (transcription, seconds) = try await self.compute(cancel: cancel) {
                            let check = { if cancel.isSet { throw RequestCancelled() } }
                            if let decoder = job.decoder {
                                return try job.transcriber.transcribe(
                                    file: URL(fileURLWithPath: path), name: Self.uploadName(job.filename), chunking: chunking,
                                    decoder: decoder, maxSeconds: maxSeconds, checkCancellation: check)
                            }
                            var first = true
                            return try job.transcriber.transcribeStreaming(
                                file: URL(fileURLWithPath: path), name: Self.uploadName(job.filename), chunking: chunking,
                                maxSeconds: maxSeconds, checkCancellation: check
                            ) { segment in
                                guard !segment.text.isEmpty else { return }
                                continuation.yield(StreamEvent.delta((first ? "" : " ") + segment.text))
                                first = false
                            }
                        }
                        self.metrics.transcribed(audioSeconds: transcription.duration, computeSeconds: seconds)
                        self.logger.info("transcribed \(String(format: "%.2f", transcription.duration)) s of audio in \(String(format: "%.3f", seconds)) s, streamed",
                                         metadata: ["model": "\(job.model.name)"])
                        return .success(transcription)
                    } catch {
                        return .failure(error)
                    }
                }
                // A comment line at once and every 2 s while the work runs: writing fails when the client has left
                // (before its turn in the queue, or while a beam search emits nothing), which abandons the work.
                let heartbeat = Task {
                    while !Task.isCancelled {
                        continuation.yield(": \n\n")
                        try? await Task.sleep(for: .seconds(2))
                    }
                }
                defer { heartbeat.cancel() }
                do {
                    for await event in events { try await writer.write(ByteBuffer(string: event)) }
                    switch await work.value {
                    case .success(let transcription):
                        if job.decoder != nil, !transcription.text.isEmpty {
                            try await writer.write(ByteBuffer(string: StreamEvent.delta(transcription.text)))
                        }
                        try await writer.write(ByteBuffer(string: StreamEvent.done(transcription.text)))
                    case .failure(let error):
                        let apiError = (error as? APIError)
                            ?? (error is RequestCancelled && self.isDraining ? .shuttingDown : APIError(.internalServerError, "Transcription failed: \(error)"))
                        try await writer.write(ByteBuffer(string: StreamEvent.error(apiError)))
                    }
                    try await writer.finish(nil)
                } catch {
                    self.abandon(cancel)  // the client is gone: out of the queue, or stopped at the next chunk
                    _ = await work.value
                }
                await lease.release()
            })
    }

    /// `POST /v1/audio/alignments`: multipart `file` (audio) and `text` (its transcript), optional `model`,
    /// `language`, `word_ends` (viterbi, acoustic: as `asr align --word-ends`) and `response_format` (json, txt, srt,
    /// vtt, tsv, textgrid, ctm: `asr align`'s formats, byte for byte). Limits, queueing and errors as for transcriptions; a transcript that cannot fit the audio is a 400 that
    /// says so in seconds and characters.
    func align(_ request: Request, context: ServerContext) async throws -> Response {
        try await admitted(request, context: context) { form, path, cancel, _ in
            let job = try AlignmentJob(form: form, server: self)
            let chunking = options.chunking, maxSeconds = options.maxAudioSeconds
            let (alignment, seconds) = try await compute(cancel: cancel) {
                try job.transcriber.align(file: URL(fileURLWithPath: path), name: Self.uploadName(job.filename), transcript: job.text, chunking: chunking, maxSeconds: maxSeconds,
                                          wordEnds: job.wordEnds, checkCancellation: { if cancel.isSet { throw RequestCancelled() } })
            }
            metrics.transcribed(audioSeconds: alignment.duration, computeSeconds: seconds)
            logger.info("aligned \(alignment.words.count) words to \(String(format: "%.2f", alignment.duration)) s of audio in \(String(format: "%.3f", seconds)) s",
                        metadata: ["model": "\(job.model.name)", "format": "\(job.format.rawValue)"])
            return job.response(alignment)
        }
    }

    /// A request that uploads audio: refused early when the server drains, the body is too large or too many uploads
    /// arrive at once; then the upload is received into a temporary file — holding no place in the queue, so slow
    /// senders cannot lock others out — and only then admitted to the queue (429 when full), and `handle` runs with
    /// the form, the file's path and the request's cancel flag. When the client closes its connection the work stops: waiting in the queue, it
    /// leaves it; running, the forward pass stops at the next chunk (`cancel` is set). Hummingbird then closes the
    /// connection after the response (no keep-alive on these two endpoints).
    private func admitted(_ request: Request, context: ServerContext,
                          _ handle: (UploadedForm, String, CancelFlag, Lease) async throws -> Response) async throws -> Response {
        guard !isDraining else { throw APIError.shuttingDown }
        let boundary = try multipartBoundary(request.headers[.contentType])
        if let length = request.headers[.contentLength].flatMap({ Int($0) }), length > options.maxUploadBytes {
            throw APIError.tooLarge(limit: options.maxUploadBytes)
        }
        // curl and other clients ask before sending a body over 1 MB and wait a second for the answer.
        if request.headers[.expect]?.lowercased() == "100-continue" {
            context.channel.writeAndFlush(HTTPResponsePart.head(HTTPResponse(status: .continue)), promise: nil)
        }
        let maxUploads = options.maxUploads
        guard uploads.withLockedValue({ count in count < maxUploads ? { count += 1; return true }() : false }) else {
            throw APIError.queueFull(retryAfter: 1)
        }
        let cancel = CancelFlag()
        let logger = self.logger
        remember(cancel)
        defer { forget(cancel) }
        let answered = CancelFlag()  // set once the handler has its response: a close after that is the normal end
        var uploading = true
        func uploaded() { if uploading { uploading = false; uploads.withLockedValue { $0 -= 1 } } }
        defer { uploaded() }
        return try await request.body.consumeWithInboundCloseHandler({ body in
            // Ended (answered, or failed and about to be answered): a close of the connection after this is normal.
            defer { answered.set() }
            let file = try TemporaryFile(directory: self.options.temporaryDirectory)
            let lease = Lease(server: self, file: file, cancel: cancel)
            defer { if !lease.isTransferred { file.remove() } }
            let form = try await self.receive(body, context: context, boundary: boundary, into: file)
            // Counted as uploading until admitted (or refused), so that a drain never sees neither.
            let retryAfter = await self.admission.admit()
            uploaded()
            if let retryAfter { throw APIError.queueFull(retryAfter: retryAfter) }
            do {
                var response = try await withTaskCancellationHandler {
                    try await handle(form, file.path, cancel, lease)
                } onCancel: {
                    cancel.set()
                }
                // Hummingbird closes the connection after a response whose connection it watched: say so, or a
                // client would send its next request on it (keep-alive) and find it gone.
                response.headers[.connection] = "close"
                if !lease.isTransferred { await self.admission.leave() }
                return response
            } catch {
                await self.admission.leave()
                throw error
            }
        }, onInboundClosed: {
            guard !answered.isSet else { return }
            if !cancel.isSet { logger.info("client closed the connection: its request is abandoned") }
            self.abandon(cancel)
        })
    }

    /// The multipart body into `file`; a client still uploading after the timeout, or sending slower than
    /// `minUploadBytesPerSecond` on average once `uploadRateGrace` has passed (slowloris), is disconnected, which ends
    /// the body stream.
    private func receive(_ body: RequestBody, context: ServerContext, boundary: String, into file: TemporaryFile) async throws -> UploadedForm {
        let channel = context.channel
        let (timeout, grace, minRate) = (options.uploadTimeout, options.uploadRateGrace, Double(options.minUploadBytesPerSecond))
        let path = file.path
        let logger = self.logger
        let watchdog = Task {
            let clock = ContinuousClock()
            let start = clock.now
            while true {
                try await Task.sleep(for: .milliseconds(250))
                let elapsed = clock.now - start
                if elapsed >= timeout {
                    logger.info("upload cut: still arriving after the upload timeout")
                    channel.close(promise: nil)
                    return
                }
                guard elapsed >= grace else { continue }
                var info = stat()
                let received = stat(path, &info) == 0 ? Double(info.st_size) : 0
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                if received < minRate * seconds {
                    logger.info("upload cut: \(Int(received)) bytes in \(Int(seconds)) s is below the minimum rate")
                    channel.close(promise: nil)
                    return
                }
            }
        }
        defer { watchdog.cancel() }
        do {
            return try await readMultipartForm(body, boundary: boundary, maxBytes: options.maxUploadBytes, into: file)
        } catch let error as APIError {
            throw error
        } catch {
            throw APIError.badRequest("The upload was interrupted: \(error)", code: "upload_interrupted")
        }
    }

    /// How the library's errors name an upload: its client-side file name, never the temporary file it was
    /// received into.
    static func uploadName(_ filename: String?) -> String {
        filename.map { "'\($0)'" } ?? "the uploaded file"
    }

    /// Runs `work` on a compute slot (waiting for one), returning its result and the seconds it took; the library's
    /// errors become API errors.
    func compute<T: Sendable>(cancel: CancelFlag, _ work: @escaping @Sendable () throws -> T) async throws -> (T, Double) {
        // A client that left while queued leaves the queue here (its task is cancelled, or its flag set by now).
        do {
            try await admission.acquire(for: cancel)
        } catch {
            metrics.abandoned()
            throw RequestCancelled()
        }
        guard !cancel.isSet else {
            await admission.release(seconds: nil)
            metrics.abandoned()
            throw RequestCancelled()
        }
        let started = ContinuousClock.now
        // The compute-time limit stops the work the way a client that leaves does (at the next chunk), and says so.
        let timedOut = CancelFlag()
        let limit = options.maxComputeSeconds.map { seconds in
            Task {
                try await Task.sleep(for: .seconds(seconds))
                timedOut.set()
                cancel.set()
            }
        }
        let outcome: Result<T, any Error>
        do {
            outcome = .success(try await ComputeThreads.run(work))
        } catch {
            outcome = .failure(error)
        }
        limit?.cancel()
        let elapsed = ContinuousClock.now - started
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        await admission.release(seconds: seconds)
        switch outcome {
        case .success(let value):
            return (value, seconds)
        case .failure(let error as AudioTooLong):
            throw APIError.audioTooLong(limit: error.limitSeconds)
        case .failure(let error as RequestCancelled):
            if timedOut.isSet {
                metrics.timedOut()
                throw APIError.computeTimeExceeded(limit: options.maxComputeSeconds ?? 0)
            }
            metrics.abandoned()
            throw error
        case .failure(let error as ASRError):
            if case .transcriptTooLong = error {
                throw APIError.badRequest("\(error)", param: "text", code: "transcript_too_long")
            }
            throw APIError.badRequest("The audio could not be read: \(error)", param: "file", code: "invalid_audio")
        case .failure(let error):
            throw APIError(.internalServerError, "Transcription failed: \(error)")
        }
    }
}

/// What a request that uploads holds — its temporary file, its queue place, its cancel flag — handed to a streamed
/// response, which releases it when the stream ends.
final class Lease: @unchecked Sendable {  // transferred once, released once
    private let server: TranscriptionServer
    private let file: TemporaryFile
    private var cancel: CancelFlag
    private(set) var isTransferred = false

    init(server: TranscriptionServer, file: TemporaryFile, cancel: CancelFlag) {
        self.server = server
        self.file = file
        self.cancel = cancel
    }

    /// The stream takes the lease; `cancel` is the flag it stops by.
    func transfer(stopping cancel: CancelFlag) {
        isTransferred = true
        self.cancel = cancel
    }

    private let released = NIOLockedValueBox(false)

    /// Gives everything back, once (the stream's end, or `deinit` when the body never ran: the client left before
    /// the response's head could be written).
    func release() async {
        guard released.withLockedValue({ done in defer { done = true }; return !done }) else { return }
        file.remove()
        await server.admission.leave()
        server.forget(cancel)
    }

    deinit {
        guard isTransferred, released.withLockedValue({ done in defer { done = true }; return !done }) else { return }
        file.remove()
        server.abandon(cancel)
        server.forget(cancel)
        let admission = server.admission
        Task { await admission.leave() }
    }
}

/// The Server-Sent Events of a streamed transcription, as OpenAI sends them.
enum StreamEvent {
    static func delta(_ text: String) -> String { event(["type": "transcript.text.delta", "delta": text]) }
    static func done(_ text: String) -> String { event(["type": "transcript.text.done", "text": text]) }
    static func error(_ error: APIError) -> String {
        "data: " + String(decoding: JSON.encode(error.body).readableBytesView, as: UTF8.self) + "\n\n"
    }
    private static func event(_ fields: [String: String]) -> String {
        "data: " + String(decoding: JSON.encode(fields).readableBytesView, as: UTF8.self) + "\n\n"
    }
}

/// A validated alignment request: the audio, its transcript, the model (and language) and the output format.
struct AlignmentJob: Sendable {
    let model: ServedModel
    let transcriber: Transcriber
    let text: String
    let format: AlignmentFormat
    let wordEnds: WordEndPlacement
    let filename: String?

    init(form: UploadedForm, server: TranscriptionServer) throws {
        guard let file = form.file else {
            throw APIError.badRequest("The request has no audio: send it in a multipart 'file' field.", param: "file")
        }
        guard file.size > 0 else { throw APIError.badRequest("The uploaded file is empty.", param: "file", code: "empty_file") }
        filename = form.filename
        guard let text = form.value("text"), !text.split(whereSeparator: \.isWhitespace).isEmpty else {
            throw APIError.badRequest("The request has no transcript to align: send it in a 'text' field.", param: "text")
        }
        self.text = text
        model = try server.model(named: form.value("model"))
        format = try form.choice("response_format", default: AlignmentFormat.json) {
            $0.lowercased() == "text" ? "txt" : $0.lowercased()
        }
        wordEnds = try form.choice("word_ends", default: WordEndPlacement.viterbi) {
            $0.isEmpty ? WordEndPlacement.viterbi.rawValue : $0.lowercased()
        }
        transcriber = try model.languages.transcriber(for: form.value("language").flatMap { $0.isEmpty ? nil : $0 })
    }

    /// The alignment in the requested format, as `asr align -f FORMAT` writes it (the upload's name as the file).
    func response(_ alignment: ForcedAlignment) -> Response {
        let type = switch format {
        case .json: "application/json"
        case .srt: "application/x-subrip; charset=utf-8"
        case .vtt: "text/vtt; charset=utf-8"
        case .tsv: "text/tab-separated-values; charset=utf-8"
        case .txt, .textgrid, .ctm: "text/plain; charset=utf-8"
        }
        return Response(status: .ok, headers: [.contentType: type],
                        body: .init(byteBuffer: ByteBuffer(string: format.render(alignment, source: filename))))
    }
}

/// A validated transcription request.
struct TranscriptionJob: Sendable {
    let model: ServedModel
    /// The model in the request's language (a multilingual model's adapters), else the model as loaded.
    let transcriber: Transcriber
    let decoder: (any CTCDecoder)?
    let format: ResponseFormat
    let language: String?
    let words: Bool
    let filename: String?
    /// `stream=true`: Server-Sent Events.
    let stream: Bool

    init(form: UploadedForm, server: TranscriptionServer) throws {
        guard let file = form.file else {
            throw APIError.badRequest("The request has no audio: send it in a multipart 'file' field.", param: "file")
        }
        guard file.size > 0 else { throw APIError.badRequest("The uploaded file is empty.", param: "file", code: "empty_file") }
        filename = form.filename

        model = try server.model(named: form.value("model"))

        format = try form.choice("response_format", default: ResponseFormat.json)

        var granularities: [String] = []
        for key in ["timestamp_granularities[]", "timestamp_granularities"] { granularities += form.fields[key] ?? [] }
        for value in granularities where value != "word" && value != "segment" {
            throw APIError.badRequest("timestamp_granularities[] '\(value)' is not 'word' or 'segment'.", param: "timestamp_granularities[]")
        }
        words = granularities.contains("word")

        // A multilingual (MMS) model runs the language asked for; for any other model the field is accepted for
        // compatibility (a CTC model has one language). The response names the language that ran.
        let requestedLanguage = form.value("language").flatMap { $0.isEmpty ? nil : $0 }
        transcriber = try model.languages.transcriber(for: requestedLanguage)
        language = transcriber.language ?? requestedLanguage
        if let temperature = form.value("temperature"), !temperature.isEmpty {
            guard let value = Double(temperature), value.isFinite, value >= 0 else {
                throw APIError.badRequest("temperature '\(temperature)' is not a number ≥ 0.", param: "temperature")
            }
        }
        // OpenAI's multipart booleans: true/false in any letter case; 1/0 are taken too.
        switch form.value("stream")?.lowercased() {
        case nil, "", "false", "0": stream = false
        case "true", "1": stream = true
        case let other?: throw APIError.badRequest("stream '\(other)' is not true or false.", param: "stream")
        }

        var recipe = server.options.decoder
        if let beam = form.value("beam") {
            guard let width = Int(beam), (1...server.options.maxBeam).contains(width) else {
                throw APIError.badRequest("beam '\(beam)' is not a whole number in 1...\(server.options.maxBeam) (the server's --max-beam).",
                                          param: "beam")
            }
            recipe.beam = width
        }
        // An n-gram model is of the language the server was started with: another language decodes without it.
        let languageModel = transcriber.language == model.transcriber.language ? model.languageModel : nil
        var useLanguageModel = languageModel != nil
        if let lm = form.value("lm") {
            switch lm.lowercased() {
            case "on", "true", "1":
                guard languageModel != nil else {
                    throw APIError.badRequest("The model '\(model.name)' has no language model (start the server with --lm).", param: "lm")
                }
                useLanguageModel = true
            case "off", "false", "0": useLanguageModel = false
            default: throw APIError.badRequest("lm '\(lm)' is not 'on' or 'off'.", param: "lm")
            }
        }
        for spec in (form.fields["hotwords"] ?? []).flatMap(Self.phrases) {
            do {
                recipe.hotwords.append(try Hotword(parsing: spec))
            } catch {
                throw APIError.badRequest("hotwords: \(error)", param: "hotwords")
            }
        }
        if let prompt = form.value("prompt") {
            recipe.hotwords += Self.promptHotwords(prompt, vocabulary: transcriber.vocabulary)
        }
        do {
            decoder = try recipe.makeDecoder(vocabulary: transcriber.vocabulary, languageModel: useLanguageModel ? languageModel : nil)
        } catch {
            throw APIError.badRequest("\(error)", param: "hotwords")
        }
    }

    /// A `hotwords` field: phrases separated by commas or newlines, each "phrase" or "phrase:weight" as --hotword.
    static func phrases(_ field: String) -> [String] {
        field.split(whereSeparator: { $0 == "," || $0 == "\n" }).map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    /// OpenAI's `prompt` as hotwords: its words (split at whitespace and punctuation other than apostrophes), at the
    /// default weight; words the model cannot spell are left out; at most 64.
    static func promptHotwords(_ prompt: String, vocabulary: Vocabulary) -> [Hotword] {
        var seen = Set<String>()
        var hotwords: [Hotword] = []
        for word in prompt.split(whereSeparator: { !($0.isLetter || $0.isNumber || $0 == "'") }) where hotwords.count < 64 {
            let hotword = Hotword(String(word))
            guard seen.insert(hotword.text.uppercased()).inserted, vocabulary.canSpell(hotword.text) else { continue }
            hotwords.append(hotword)
        }
        return hotwords
    }
}

/// Errors in OpenAI's shape, authentication of /v1/, request metrics.
struct OpenAIMiddleware: RouterMiddleware {
    typealias Context = ServerContext
    let server: TranscriptionServer

    static let endpoints: Set<String> = [
        "/health", "/metrics", "/v1/models", "/v1/audio/transcriptions", "/v1/audio/translations", "/v1/audio/alignments",
    ]

    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        var response: Response
        do {
            if request.uri.path.hasPrefix("/v1/") { try server.authenticate(request) }
            response = try await next(request, context)
        } catch {
            let apiError: APIError
            switch error {
            case let error as APIError: apiError = error
            case let error as HTTPError where error.status == .notFound:
                apiError = .notFound("No endpoint \(request.method) \(request.uri.path).", code: "unknown_endpoint")
            case let error as HTTPError:
                apiError = APIError(error.status, error.body ?? error.status.reasonPhrase)
            case is RequestCancelled, is CancellationError:
                // The client left (or the drain deadline passed): nobody may read this; 499 in the metrics, as nginx.
                apiError = server.isDraining
                    ? .shuttingDown : APIError(HTTPResponse.Status(code: 499, reasonPhrase: "Client Closed Request"), "The client closed the connection.")
            default:
                apiError = APIError(.internalServerError, "\(error)")
            }
            response = apiError.response
            if request.method == .post || request.method == .put {
                // The rest of a refused upload is not read: the connection ends after this answer.
                response.headers[.connection] = "close"
                context.channel.close(mode: .input, promise: nil)
            }
            if apiError.status.code >= 500 {
                server.logger.error("\(request.method) \(request.uri.path): \(apiError.message)")
            } else {
                server.logger.debug("\(request.method) \(request.uri.path): \(apiError.status.code) \(apiError.message)")
            }
        }
        let path = request.uri.path
        let endpoint = Self.endpoints.contains(path) ? path : path.hasPrefix("/v1/models/") ? "/v1/models/{id}" : "other"
        let elapsed = ContinuousClock.now - started
        server.metrics.request(endpoint: endpoint, status: Int(response.status.code),
                               seconds: Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18)
        return response
    }
}

/// Marks the server as draining when graceful shutdown begins (before the HTTP server stops accepting).
struct DrainOnShutdown: Service {
    let server: TranscriptionServer

    func run() async throws {
        // Cancelled (the server failed to start, e.g. its port is taken): there is nothing to drain.
        do { try await gracefulShutdown() } catch { return }
        server.beginDraining()
        // The listener stays open meanwhile (the services shut down one after another, this one first), so new
        // requests get the 503 the README promises rather than "connection refused".
        let grace = server.options.gracePeriod
        let margin = min(Duration.seconds(1), grace / 2)
        let clock = ContinuousClock()
        let deadline = clock.now + grace - margin
        var running = await server.admission.admitted + server.uploadsInProgress + server.realtimeSessionsOpen
        if running > 0 { server.logger.info("shutting down: finishing \(running) request(s) in flight") }
        while running > 0, clock.now < deadline, !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(50))
            running = await server.admission.admitted + server.uploadsInProgress + server.realtimeSessionsOpen
        }
        guard running > 0, !Task.isCancelled else { return }
        // The grace period ends: what still runs is stopped and answered 503 before the process exits.
        server.logger.warning("grace period ending: stopping \(running) request(s) in flight (answered 503)")
        await server.cancelAll()
        let end = clock.now + margin
        while await server.admission.admitted > 0, clock.now < end, !Task.isCancelled {
            try? await Task.sleep(for: .milliseconds(20))
        }
    }
}
