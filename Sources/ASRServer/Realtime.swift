import ASRKit
import Foundation
import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import HummingbirdWebSocket
import NIOConcurrencyHelpers

/// One realtime transcription session (`GET /v1/realtime?intent=transcription` upgraded to a WebSocket), speaking
/// OpenAI's realtime transcription events: the client streams base64 audio with `input_audio_buffer.append`; the
/// audio is cut into items by the client (`input_audio_buffer.commit`) or by the server's voice-activity detection
/// (`server_vad`, on by default: an item starts where speech starts, less `prefix_padding_ms`, and is committed
/// after `silence_duration_ms` of silence); each item is transcribed with the served model in the library's
/// incremental mode (the file path's chunks and greedy decoding: an item's transcript is what
/// `/v1/audio/transcriptions` gives for the same audio) and answered with
/// `conversation.item.input_audio_transcription.delta` events as its text becomes final, then `.completed`.
///
/// Every model pass runs on a compute slot of the server's queue (admitted like a request, released between
/// passes: a session that streams audio holds no slot while it waits for more); a client that leaves stops the pass
/// at its next chunk; on shutdown the item in progress is transcribed, then the session is closed.
///
/// The transport is abstracted (`send`), so the protocol is tested without a socket.
final class RealtimeSession: @unchecked Sendable {  // handle/drain/end run one at a time (the session's loop)
    private let server: TranscriptionServer
    private var model: ServedModel
    private var transcriber: Transcriber
    private let send: @Sendable (String) async -> Void
    /// Set when the client leaves or the drain deadline passes: the pass in progress stops at its next chunk.
    let cancel = CancelFlag()

    private var format = AudioFormat.pcm16(rate: 24000)
    private var vad: VoiceActivity.Settings? = .init()
    private var language: String?
    private var prompt: String?
    /// Whether the client speaks the beta's `transcription_session.*` names (answered in kind).
    private var beta = false
    private let sessionID = RealtimeSession.identifier("sess")

    private var decoder = PCMDecoder(format: .pcm16(rate: 24000))
    private var detector: VoiceActivity
    /// The item being filled, with its model state.
    private var item: Item?
    private var previousItemID: String?
    /// Seconds of audio the session has been sent; past the server's --max-audio-seconds it is closed.
    private var secondsReceived = 0.0

    private struct Item {
        let id: String
        let steps: IncrementalTranscription
        var texts: [String] = []
        var sourceSamples = 0
        var computeSeconds = 0.0
    }

    init(server: TranscriptionServer, model: ServedModel, send: @escaping @Sendable (String) async -> Void) {
        self.server = server
        self.model = model
        transcriber = model.transcriber
        self.send = send
        detector = VoiceActivity(settings: .init(), sampleRate: 24000)
    }

    // MARK: Protocol

    /// The first event of the session.
    func start() async {
        await emit(["type": beta ? "transcription_session.created" : "session.created", "session": sessionObject()])
    }

    /// One text message from the client.
    func handle(_ text: String) async {
        guard let object = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] else {
            return await error("invalid_request_error", "The message is not a JSON object.", code: "invalid_json")
        }
        let eventID = object["event_id"] as? String
        guard let type = object["type"] as? String else {
            return await error("invalid_request_error", "The event has no 'type'.", code: "missing_type", eventID: eventID)
        }
        switch type {
        case "input_audio_buffer.append":
            guard let audio = object["audio"] as? String, let bytes = Data(base64Encoded: audio, options: .ignoreUnknownCharacters) else {
                return await error("invalid_request_error", "'audio' must be base64-encoded audio.", code: "invalid_value",
                                   param: "audio", eventID: eventID)
            }
            await append(decoder.decode(bytes), eventID: eventID)
        case "input_audio_buffer.commit":
            await commit(eventID: eventID, byClient: true)
        case "input_audio_buffer.clear":
            item = nil
            decoder.reset()
            detector.reset()
            await emit(["type": "input_audio_buffer.cleared"])
        case "session.update", "transcription_session.update":
            beta = type == "transcription_session.update"
            await update(object["session"] as? [String: Any] ?? [:], eventID: eventID)
        default:
            await error("invalid_request_error", "Unknown event type '\(type)': this server takes session.update, "
                        + "input_audio_buffer.append, input_audio_buffer.commit and input_audio_buffer.clear.",
                        code: "unknown_event_type", eventID: eventID)
        }
    }

    /// The server is shutting down: the item in progress is transcribed (nothing the client sent is lost).
    func drain() async {
        if let item, item.sourceSamples > 0 { await commit(eventID: nil, byClient: false) }
    }

    /// The client left: the pass in progress stops at its next chunk, a queued one leaves the queue.
    func end() {
        server.abandon(cancel)
    }

    /// Whether the session has been sent more audio than the server takes in one request (--max-audio-seconds).
    var isOverAudioLimit: Bool { secondsReceived > server.options.maxAudioSeconds }

    // MARK: Audio

    private func append(_ samples: [Float], eventID: String?) async {
        guard !samples.isEmpty else { return }
        secondsReceived += Double(samples.count) / Double(format.rate)
        guard vad != nil else {
            if item == nil { item = newItem() }
            await feed(samples)
            return
        }
        for event in detector.process(samples) {
            switch event {
            case .started(let sample):
                item = newItem()
                await emit(["type": "input_audio_buffer.speech_started", "audio_start_ms": milliseconds(sample), "item_id": item!.id])
            case .audio(let audio):
                await feed(audio)
            case .stopped(let sample):
                guard let item else { continue }
                await emit(["type": "input_audio_buffer.speech_stopped", "audio_end_ms": milliseconds(sample), "item_id": item.id])
                await commit(eventID: eventID, byClient: false)
            }
        }
    }

    private func milliseconds(_ sample: Int) -> Int { Int((Double(sample) * 1000 / Double(format.rate)).rounded()) }

    private func newItem() -> Item {
        Item(id: Self.identifier("item"),
             steps: IncrementalTranscription(transcriber: transcriber, sampleRate: format.rate, chunking: server.options.chunking,
                                             sourceName: "the realtime audio"))
    }

    /// Audio into the current item; chunks that became complete run now (their text is final: delta events).
    private func feed(_ samples: [Float]) async {
        guard var current = item else { return }
        current.sourceSamples += samples.count
        do { try current.steps.append(samples) } catch { return await self.error("invalid_request_error", "\(error)", code: "invalid_audio") }
        item = current
        while current.steps.hasReadyChunk {
            let steps = current.steps
            guard let segments = await run({ steps.runChunk().map { [$0] } ?? [] }, itemID: current.id, mustRun: false) else { return }
            await deltas(segments)
        }
    }

    private func deltas(_ segments: [TranscriptSegment]) async {
        guard var current = item else { return }
        for segment in segments where !segment.text.isEmpty {
            await emit(["type": "conversation.item.input_audio_transcription.delta", "item_id": current.id, "content_index": 0,
                        "delta": (current.texts.isEmpty ? "" : " ") + segment.text])
            current.texts.append(segment.text)
        }
        item = current
    }

    private func commit(eventID: String?, byClient: Bool) async {
        guard let current = item, current.sourceSamples > 0 else {
            if byClient {
                await error("invalid_request_error",
                            "Error committing input audio buffer: the buffer is empty (append audio first).",
                            code: "input_audio_buffer_commit_empty", eventID: eventID)
            }
            return
        }
        let seconds = Double(current.sourceSamples) / Double(format.rate)
        if byClient && seconds < 0.1 {
            return await error("invalid_request_error",
                               String(format: "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, but buffer only has %.2fms of audio.", seconds * 1000),
                               code: "input_audio_buffer_commit_empty", eventID: eventID)
        }
        let previous = previousItemID
        previousItemID = current.id
        var committed: [String: Any] = ["type": "input_audio_buffer.committed", "item_id": current.id]
        committed["previous_item_id"] = previous ?? NSNull()
        await emit(committed)
        await emit(["type": beta ? "conversation.item.created" : "conversation.item.added", "previous_item_id": previous ?? NSNull(),
                    "item": ["id": current.id, "object": "realtime.item", "type": "message", "status": "completed", "role": "user",
                             "content": [["type": "input_audio", "transcript": NSNull()]]]])
        let steps = current.steps
        let cancel = self.cancel
        guard let last = await run({ try steps.finish { if cancel.isSet { throw RequestCancelled() } } },
                                   itemID: current.id, mustRun: true) else {
            item = nil
            return
        }
        await deltas(last)
        let transcript = (item?.texts ?? []).joined(separator: " ")
        server.metrics.transcribed(audioSeconds: seconds, computeSeconds: item?.computeSeconds ?? 0)
        item = nil
        await emit(["type": "conversation.item.input_audio_transcription.completed", "item_id": current.id, "content_index": 0,
                    "transcript": transcript, "usage": ["type": "duration", "seconds": seconds]])
    }

    /// Runs model work on a compute slot, admitted like a request: nil (after a `failed` event when `mustRun`) when
    /// the queue stays full, the client left, or the work failed. A chunk that need not run now (`mustRun` false)
    /// is left for later when the queue is full.
    private func run(_ work: @escaping @Sendable () throws -> [TranscriptSegment], itemID: String, mustRun: Bool) async -> [TranscriptSegment]? {
        var waited = 0.0
        while let retryAfter = await server.admission.admit() {
            guard mustRun, waited < 30, !cancel.isSet else {
                if mustRun { await failed(itemID, "server_busy", "The server is busy: its queue of waiting requests is full. Retry after \(retryAfter) s.") }
                return nil
            }
            try? await Task.sleep(for: .milliseconds(250))
            waited += 0.25
        }
        let cancel = self.cancel
        do {
            let (segments, seconds) = try await server.compute(cancel: cancel) { () throws -> [TranscriptSegment] in
                if cancel.isSet { throw RequestCancelled() }
                return try work()
            }
            await server.admission.leave()
            if item?.id == itemID { item?.computeSeconds += seconds }
            return segments
        } catch {
            await server.admission.leave()
            if !(error is RequestCancelled) {
                let message = (error as? APIError)?.message ?? "\(error)"
                await failed(itemID, (error as? APIError)?.code ?? "server_error", message)
            }
            return nil
        }
    }

    private func failed(_ itemID: String, _ code: String, _ message: String) async {
        await emit(["type": "conversation.item.input_audio_transcription.failed", "item_id": itemID, "content_index": 0,
                    "error": ["type": "server_error", "code": code, "message": message]])
        item = nil
    }

    // MARK: Session configuration

    private func update(_ session: [String: Any], eventID: String?) async {
        // GA: session.audio.input.{format, transcription, turn_detection}; beta: session.input_audio_format,
        // input_audio_transcription, turn_detection.
        let input = ((session["audio"] as? [String: Any])?["input"] as? [String: Any]) ?? [:]
        var newFormat = format
        if let spec = input["format"] as? [String: Any] {
            let rate = (spec["rate"] as? NSNumber)?.intValue
            switch spec["type"] as? String {
            case "audio/pcm", nil: newFormat = .pcm16(rate: rate ?? 24000)
            case "audio/pcmu": newFormat = .mulaw
            case "audio/pcma": newFormat = .alaw
            case let other?:
                return await error("invalid_request_error", "Audio format '\(other)' is not supported: use audio/pcm, audio/pcmu or audio/pcma.",
                                   code: "invalid_value", param: "session.audio.input.format.type", eventID: eventID)
            }
            if case .pcm16(let r) = newFormat, !AudioFile.supportedRates.contains(r) {
                return await error("invalid_request_error", "Sample rate \(r) is not supported (24000 is OpenAI's; any of 1000...768000 is taken).",
                                   code: "invalid_value", param: "session.audio.input.format.rate", eventID: eventID)
            }
        } else if let name = session["input_audio_format"] as? String {
            switch name {
            case "pcm16": newFormat = .pcm16(rate: 24000)
            case "g711_ulaw": newFormat = .mulaw
            case "g711_alaw": newFormat = .alaw
            default:
                return await error("invalid_request_error", "Audio format '\(name)' is not supported: use pcm16, g711_ulaw or g711_alaw.",
                                   code: "invalid_value", param: "session.input_audio_format", eventID: eventID)
            }
        }
        let transcription = (input["transcription"] ?? session["input_audio_transcription"]) as? [String: Any]
        var newModel = model, newTranscriber = transcriber, newLanguage = language, newPrompt = prompt
        if let transcription {
            if let name = transcription["model"] as? String, !name.isEmpty {
                do { newModel = try server.model(named: name) } catch let apiError as APIError {
                    return await error("invalid_request_error", apiError.message, code: apiError.code ?? "model_not_found",
                                       param: "session.audio.input.transcription.model", eventID: eventID)
                } catch { return }
            }
            newLanguage = (transcription["language"] as? String).flatMap { $0.isEmpty ? nil : $0 }
            newPrompt = transcription["prompt"] as? String
            do { newTranscriber = try newModel.languages.transcriber(for: newLanguage) } catch {
                return await self.error("invalid_request_error", "\(error)", code: "unsupported_language",
                                        param: "session.audio.input.transcription.language", eventID: eventID)
            }
        }
        var newVAD = vad
        let detection = input.keys.contains("turn_detection") ? input["turn_detection"] : session["turn_detection"]
        if input.keys.contains("turn_detection") || session.keys.contains("turn_detection") {
            if let spec = detection as? [String: Any] {
                guard ["server_vad", "semantic_vad", nil].contains(spec["type"] as? String) else {
                    return await error("invalid_request_error", "turn_detection.type must be server_vad (semantic_vad is taken as server_vad).",
                                       code: "invalid_value", param: "session.audio.input.turn_detection.type", eventID: eventID)
                }
                var settings = VoiceActivity.Settings()
                if let value = (spec["threshold"] as? NSNumber)?.doubleValue { settings.threshold = value }
                if let value = (spec["prefix_padding_ms"] as? NSNumber)?.intValue { settings.prefixPaddingMs = value }
                if let value = (spec["silence_duration_ms"] as? NSNumber)?.intValue { settings.silenceDurationMs = value }
                guard (0...1).contains(settings.threshold), (0...10_000).contains(settings.prefixPaddingMs),
                      (20...60_000).contains(settings.silenceDurationMs) else {
                    return await error("invalid_request_error", "turn_detection: threshold must be in 0...1, prefix_padding_ms in 0...10000, silence_duration_ms in 20...60000.",
                                       code: "invalid_value", param: "session.audio.input.turn_detection", eventID: eventID)
                }
                newVAD = settings
            } else {
                newVAD = nil
            }
        }
        let audioChanges = newFormat != format || newTranscriber !== transcriber || newVAD != vad
        if audioChanges, let item, item.sourceSamples > 0 {
            return await error("invalid_request_error", "The audio format, model, language and turn detection cannot change while audio is buffered: commit or clear it first.",
                               code: "session_update_while_buffered", eventID: eventID)
        }
        format = newFormat
        model = newModel
        transcriber = newTranscriber
        language = newLanguage
        prompt = newPrompt
        vad = newVAD
        item = nil
        decoder = PCMDecoder(format: format)
        detector = VoiceActivity(settings: vad ?? .init(), sampleRate: format.rate)
        await emit(["type": beta ? "transcription_session.updated" : "session.updated", "session": sessionObject()])
    }

    private func sessionObject() -> [String: Any] {
        var formatObject: [String: Any]
        switch format {
        case .pcm16(let rate): formatObject = ["type": "audio/pcm", "rate": rate]
        case .mulaw: formatObject = ["type": "audio/pcmu"]
        case .alaw: formatObject = ["type": "audio/pcma"]
        }
        let turnDetection: Any = vad.map { ["type": "server_vad", "threshold": $0.threshold, "prefix_padding_ms": $0.prefixPaddingMs,
                                            "silence_duration_ms": $0.silenceDurationMs] as [String: Any] } ?? NSNull()
        let transcription: [String: Any] = ["model": model.name, "language": (transcriber.language ?? language) ?? NSNull(),
                                            "prompt": prompt ?? ""]
        return ["type": "transcription", "object": "realtime.transcription_session", "id": sessionID,
                "audio": ["input": ["format": formatObject, "transcription": transcription, "turn_detection": turnDetection,
                                    "noise_reduction": NSNull()]],
                "include": [String]()]
    }

    // MARK: Events

    private func emit(_ event: [String: Any]) async {
        var event = event
        event["event_id"] = Self.identifier("event")
        guard let data = try? JSONSerialization.data(withJSONObject: event, options: [.sortedKeys, .withoutEscapingSlashes]) else { return }
        await send(String(decoding: data, as: UTF8.self))
    }

    private func error(_ type: String, _ message: String, code: String, param: String? = nil, eventID: String? = nil) async {
        await emit(["type": "error", "error": ["type": type, "code": code, "message": message, "param": param ?? NSNull(),
                                               "event_id": eventID ?? NSNull()] as [String: Any]])
    }

    static func identifier(_ prefix: String) -> String {
        let alphabet = Array("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
        return prefix + "_" + String((0..<22).map { _ in alphabet.randomElement()! })
    }
}

/// The audio formats of OpenAI's realtime API: 16-bit little-endian PCM (24 kHz there; any rate here), and G.711
/// μ-law and A-law at 8 kHz.
enum AudioFormat: Equatable, Sendable {
    case pcm16(rate: Int)
    case mulaw
    case alaw

    var rate: Int {
        switch self {
        case .pcm16(let rate): rate
        case .mulaw, .alaw: 8000
        }
    }
}

/// Bytes of one of the ``AudioFormat``s → samples in [-1, 1); a 16-bit sample split across two appends is joined.
struct PCMDecoder {
    let format: AudioFormat
    private var carry: UInt8?

    init(format: AudioFormat) { self.format = format }

    mutating func reset() { carry = nil }

    mutating func decode(_ data: Data) -> [Float] {
        switch format {
        case .pcm16:
            var bytes = [UInt8](data)
            if let carry { bytes.insert(carry, at: 0) }
            carry = bytes.count % 2 == 1 ? bytes.removeLast() : nil
            return stride(from: 0, to: bytes.count, by: 2).map {
                Float(Int16(bitPattern: UInt16(bytes[$0]) | UInt16(bytes[$0 + 1]) << 8)) / 32768
            }
        case .mulaw:
            return data.map(Self.mulaw)
        case .alaw:
            return data.map(Self.alaw)
        }
    }

    /// ITU-T G.711 μ-law: the complement of sign, 3-bit exponent and 4-bit mantissa; ±32124 at most.
    static func mulaw(_ byte: UInt8) -> Float {
        let u = ~byte
        let exponent = Int((u >> 4) & 0x07), mantissa = Int(u & 0x0F)
        let magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
        return Float(u & 0x80 != 0 ? -magnitude : magnitude) / 32768
    }

    /// ITU-T G.711 A-law: even bits inverted (0x55), sign bit set for positive; ±32256 at most.
    static func alaw(_ byte: UInt8) -> Float {
        let a = byte ^ 0x55
        let exponent = Int((a >> 4) & 0x07), mantissa = Int(a & 0x0F)
        let magnitude = exponent == 0 ? (mantissa << 4) + 8 : ((mantissa << 4) + 0x108) << (exponent - 1)
        return Float(a & 0x80 != 0 ? magnitude : -magnitude) / 32768
    }
}

/// Energy-based voice activity detection over 20 ms frames, with OpenAI's `server_vad` settings: speech starts at
/// the first frame whose RMS level reaches the threshold (`threshold` t in 0…1 maps to −80 + 70·t dBFS: 0.5 is
/// −45 dBFS, above a quiet room's noise and below speech at any usual recording level), the item keeps
/// `prefixPaddingMs` of audio before it, and speech stops after `silenceDurationMs` of frames below the threshold
/// (the silence stays in the item, as OpenAI's `audio_end_ms` includes it).
struct VoiceActivity {
    struct Settings: Equatable, Sendable {
        var threshold = 0.5
        var prefixPaddingMs = 300
        var silenceDurationMs = 500
    }

    enum Event: Equatable {
        /// Speech starts; the item's audio starts at this source sample (the prefix padding included).
        case started(sample: Int)
        /// Audio of the current item.
        case audio([Float])
        /// Speech stopped at this source sample (after the silence).
        case stopped(sample: Int)
    }

    let settings: Settings
    let frame: Int
    private let level: Float
    private var pending: [Float] = []
    /// Samples before the pending ones.
    private var position = 0
    private var speaking = false
    private var silentSamples = 0
    private var prefix: [Float] = []

    init(settings: Settings, sampleRate: Int) {
        self.settings = settings
        frame = max(1, sampleRate / 50)
        level = Float(pow(10, (-80 + 70 * settings.threshold) / 20))
        prefixCapacity = settings.prefixPaddingMs * sampleRate / 1000
        silenceLimit = settings.silenceDurationMs * sampleRate / 1000
    }

    private let prefixCapacity: Int
    private let silenceLimit: Int

    mutating func reset() {
        pending = []
        speaking = false
        silentSamples = 0
        prefix = []
    }

    mutating func process(_ samples: [Float]) -> [Event] {
        pending += samples
        var events: [Event] = []
        var audio: [Float] = []
        var start = 0
        while pending.count - start >= frame {
            let chunk = pending[start..<(start + frame)]
            let loud = (chunk.reduce(Float(0)) { $0 + $1 * $1 } / Float(frame)).squareRoot() >= level
            if speaking {
                audio += chunk
                silentSamples = loud ? 0 : silentSamples + frame
                if silentSamples >= silenceLimit {
                    events.append(.audio(audio))
                    audio = []
                    events.append(.stopped(sample: position + start + frame))
                    speaking = false
                    silentSamples = 0
                }
            } else if loud {
                speaking = true
                silentSamples = 0
                events.append(.started(sample: position + start - prefix.count))
                audio = prefix + chunk
                prefix = []
            } else {
                prefix += chunk
                if prefix.count > prefixCapacity { prefix.removeFirst(prefix.count - prefixCapacity) }
            }
            start += frame
        }
        if !audio.isEmpty { events.append(.audio(audio)) }
        pending.removeFirst(start)
        position += start
        return events
    }
}

/// The context of a WebSocket upgrade request.
struct RealtimeContext: RequestContext, WebSocketRequestContext {
    var coreContext: CoreRequestContextStorage
    let webSocket: WebSocketHandlerReference<Self>

    init(source: ApplicationRequestContextSource) {
        coreContext = .init(source: source)
        webSocket = .init()
    }
}

extension TranscriptionServer {
    /// The largest WebSocket message taken (an append of 15 MB of audio, base64-encoded, with its JSON).
    static let maxRealtimeMessage = 21 << 20
    /// Messages received but not yet handled, in bytes, beyond which a session that sends faster than it is
    /// transcribed is closed (a minute of 24 kHz PCM is 3.8 MB in base64).
    static let maxRealtimeBacklog = 64 << 20

    /// The model a realtime request asks for (`model=`, else the default), when it is a transcription session.
    func realtimeModel(_ request: Request) throws -> ServedModel {
        let query = request.uri.queryParameters
        guard query.get("intent") == "transcription" else {
            throw APIError.badRequest(
                "This server offers realtime transcription only: connect to /v1/realtime?intent=transcription.",
                param: "intent", code: "unsupported_intent")
        }
        return try model(named: query.get("model"))
    }

    /// One realtime session: messages are read as they come (a client that leaves is seen at once, and its work
    /// stopped) and handled in order; shutdown transcribes the item in progress and closes the session.
    func runRealtime(_ request: Request, inbound: WebSocketInboundStream, outbound: WebSocketOutboundWriter) async throws {
        // Refusals: one `error` event in OpenAI's shape, then the close.
        let model: ServedModel
        do {
            if isDraining { throw APIError.shuttingDown }
            try authenticate(request)
            model = try realtimeModel(request)
        } catch let error as APIError {
            let event: [String: Any] = ["type": "error", "event_id": RealtimeSession.identifier("event"),
                                        "error": ["type": error.type, "code": error.code ?? NSNull(), "message": error.message,
                                                  "param": error.param ?? NSNull(), "event_id": NSNull()] as [String: Any]]
            if let data = try? JSONSerialization.data(withJSONObject: event, options: [.sortedKeys]) {
                try? await outbound.write(.text(String(decoding: data, as: UTF8.self)))
            }
            try? await outbound.close(error.status == .serviceUnavailable ? .goingAway : .policyViolation, reason: error.code)
            return
        }
        enum Input: Sendable { case message(String), drain, end, overflow }
        let (inputs, continuation) = AsyncStream<Input>.makeStream()
        let backlog = NIOLockedValueBox(0)
        let session = RealtimeSession(server: self, model: model) { text in
            try? await outbound.write(.text(text))
        }
        let id = registerRealtime { continuation.yield(.drain) }
        defer { unregisterRealtime(id) }
        remember(session.cancel)
        defer { forget(session.cancel) }
        metrics.realtimeSessions(by: 1)
        defer { metrics.realtimeSessions(by: -1) }
        if isDraining { continuation.yield(.drain) }

        let reader = Task {
            do {
                for try await message in inbound.messages(maxSize: Self.maxRealtimeMessage) {
                    guard case .text(let text) = message else { continue }
                    let queued = backlog.withLockedValue { $0 += text.utf8.count; return $0 }
                    if queued > Self.maxRealtimeBacklog { continuation.yield(.overflow); break }
                    continuation.yield(.message(text))
                }
            } catch {}
            // The client closed (or the connection broke): work for it stops now, not when its turn comes.
            session.end()
            continuation.yield(.end)
            continuation.finish()
        }
        defer { reader.cancel() }
        await session.start()
        for await input in inputs {
            switch input {
            case .message(let text):
                backlog.withLockedValue { $0 -= text.utf8.count }
                await session.handle(text)
                if session.isOverAudioLimit {
                    logger.info("realtime session closed: more than \(options.maxAudioSeconds) s of audio")
                    await session.drain()
                    try? await outbound.close(.policyViolation, reason: "more audio than this server's --max-audio-seconds")
                    return
                }
            case .drain:
                await session.drain()
                try? await outbound.close(.goingAway, reason: "the server is shutting down")
                return
            case .overflow:
                logger.warning("realtime session closed: the client sends audio faster than it is transcribed")
                try? await outbound.close(.policyViolation, reason: "audio arrives faster than it is transcribed")
                return
            case .end:
                return
            }
        }
    }
}

extension HTTPServerBuilder {
    /// HTTP/1.1 with the realtime WebSocket upgrade, and a deadline for the first request's head: Hummingbird's idle
    /// timeout is installed only once the upgrade has been decided (after the first head), so without this a
    /// connection that sends part of a head and stops would be held for ever.
    static func http1WithRealtime<Router: HTTPResponderBuilder>(
        webSocketRouter: Router, idleTimeout: Duration, maxMessage: Int
    ) -> HTTPServerBuilder where Router.Responder.Context: WebSocketRequestContext {
        let responder = webSocketRouter.buildResponder()
        let timeout = TimeAmount.nanoseconds(Int64(idleTimeout.components.seconds) * 1_000_000_000
                                             + idleTimeout.components.attoseconds / 1_000_000_000)
        return HTTPServerBuilder { httpResponder in
            HeadDeadline(inner: HTTP1WebSocketUpgradeChannel(
                responder: httpResponder, webSocketResponder: responder,
                configuration: .init(
                    http1: .init(idleTimeout: timeout),
                    // OpenAI takes up to 15 MB of audio in one append event.
                    ws: .init(maxFrameSize: maxMessage, autoPing: .enabled(timePeriod: .seconds(30))))),
                timeout: timeout)
        }
    }
}

/// A child channel that closes a connection whose first request head has not arrived within `timeout`.
struct HeadDeadline<Inner: ServerChildChannel>: ServerChildChannel {
    let inner: Inner
    let timeout: TimeAmount

    func setup(channel: any Channel, logger: Logger) -> EventLoopFuture<Inner.Value> {
        channel.eventLoop.makeCompletedFuture {
            try channel.pipeline.syncOperations.addHandler(FirstHeadTimer(timeout: timeout), position: .first)
        }.flatMap {
            inner.setup(channel: channel, logger: logger)
        }.flatMapThrowing { value in
            // After the upgrade handler: a head that cannot be parsed (before the upgrade is decided) is answered
            // 400 and closed, as Hummingbird's plain HTTP/1 channel does; later errors go on to Hummingbird.
            try channel.pipeline.syncOperations.addHandler(UndecidedRequestErrors(), position: .last)
            return value
        }
    }

    func handle(value: Inner.Value, logger: Logger) async {
        await inner.handle(value: value, logger: logger)
    }
}

/// Answers 400 and closes on a parse error of the first request head (the upgrade handler forwards it unanswered);
/// once anything has been read through it (the upgrade decided), errors pass on to Hummingbird's own handling.
final class UndecidedRequestErrors: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = Any
    private var decided = false

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        decided = true
        context.fireChannelRead(data)
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard !decided else { return context.fireErrorCaught(error) }
        decided = true
        let answer = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        var buffer = context.channel.allocator.buffer(capacity: answer.utf8.count)
        buffer.writeString(answer)
        // Written below the HTTP encoder (its state does not know of this answer), straight to the socket.
        context.channel.pipeline.context(handlerType: FirstHeadTimer.self).whenSuccess { first in
            first.writeAndFlush(NIOAny(buffer)).whenComplete { _ in context.channel.close(promise: nil) }
        }
    }
}

/// Closes the channel unless the end of a request head (CRLF CRLF) has been read within `timeout`; inert after.
final class FirstHeadTimer: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer
    private let timeout: TimeAmount
    private var timer: Scheduled<Void>?
    private var tail: [UInt8] = []
    private var done = false

    init(timeout: TimeAmount) { self.timeout = timeout }

    func handlerAdded(context: ChannelHandlerContext) {
        let channel = context.channel
        timer = context.eventLoop.scheduleTask(in: timeout) { channel.close(promise: nil) }
    }

    func handlerRemoved(context: ChannelHandlerContext) { timer?.cancel() }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if !done {
            let buffer = unwrapInboundIn(data)
            // The last three bytes of the previous read, then this read: a CRLF CRLF split across reads is seen.
            let bytes = tail + (buffer.getBytes(at: buffer.readerIndex, length: buffer.readableBytes) ?? [])
            if bytes.count >= 4, (0...(bytes.count - 4)).contains(where: { bytes[$0] == 13 && bytes[$0 + 1] == 10 && bytes[$0 + 2] == 13 && bytes[$0 + 3] == 10 }) {
                done = true
                timer?.cancel()
            } else {
                tail = Array(bytes.suffix(3))
            }
        }
        context.fireChannelRead(data)
    }
}
