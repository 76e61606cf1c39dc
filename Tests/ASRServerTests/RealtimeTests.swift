import ASRBuiltinModel
import ASRKit
import Foundation
import NIOConcurrencyHelpers
import Testing
@testable import ASRServer

/// Issue 25: the realtime transcription session's protocol (OpenAI's events) without a socket — the WebSocket
/// itself is driven by the official SDK in scripts/realtime_client_check.py — and its parts: G.711, the VAD.
@Suite struct RealtimeTests {
    /// Events a session sent, in order, as JSON objects.
    final class Recorder: @unchecked Sendable {
        private let lock = NIOLock()
        private var events: [[String: Any]] = []
        var all: [[String: Any]] { lock.withLock { events } }
        var types: [String] { all.compactMap { $0["type"] as? String } }
        func record(_ text: String) {
            let event = (try? JSONSerialization.jsonObject(with: Data(text.utf8))) as? [String: Any] ?? [:]
            lock.withLock { events.append(event) }
        }
    }

    static func session(_ running: RunningServer) -> (RealtimeSession, Recorder) {
        let recorder = Recorder()
        let session = RealtimeSession(server: running.server, model: running.server.models[0]) { recorder.record($0) }
        return (session, recorder)
    }

    /// The 16 kHz fixture as 16-bit PCM bytes, and as a WAV file the HTTP path reads.
    static func speech() throws -> (pcm: Data, rate: Int) {
        let data = try Data(contentsOf: URL(fileURLWithPath: ServerTests.sample))
        // A canonical 44-byte header (the fixture is written so by tools/fixtures).
        return (data.subdata(in: 44..<data.count), 16000)
    }

    static func append(_ session: RealtimeSession, _ pcm: Data, piece: Int = 3200) async {
        var start = 0
        while start < pcm.count {
            let end = min(pcm.count, start + piece)
            await session.handle(#"{"type":"input_audio_buffer.append","audio":"\#(pcm.subdata(in: start..<end).base64EncodedString())"}"#)
            start = end
        }
    }

    @Test func aCommittedItemIsTheHTTPTranscript() async throws {
        let running = try await RunningServer.start()
        defer { Task { await running.stop() } }
        let (session, events) = Self.session(running)
        await session.start()
        #expect(events.types == ["session.created"])
        // 16 kHz PCM (an extension of OpenAI's 24 kHz), no VAD; odd-sized appends split samples across events.
        await session.handle(#"{"type":"session.update","session":{"type":"transcription","audio":{"input":{"format":{"type":"audio/pcm","rate":16000},"turn_detection":null}}}}"#)
        #expect(events.types.last == "session.updated")
        let (pcm, _) = try Self.speech()
        await Self.append(session, pcm, piece: 3333)
        await session.handle(#"{"type":"input_audio_buffer.commit","event_id":"c1"}"#)
        let types = events.types
        #expect(types.contains("conversation.item.input_audio_transcription.delta"))
        #expect(types.contains("input_audio_buffer.committed") && types.contains("conversation.item.added"))
        let completed = try #require(events.all.last)
        #expect(completed["type"] as? String == "conversation.item.input_audio_transcription.completed")
        let expected = try await transcription(port: running.port, try form(file: ServerTests.sample, [("response_format", "text")])).text
        #expect(completed["transcript"] as? String == expected.trimmingCharacters(in: .whitespacesAndNewlines))
        let deltas = events.all.filter { ($0["type"] as? String)?.hasSuffix(".delta") == true }.compactMap { $0["delta"] as? String }.joined()
        #expect(deltas == completed["transcript"] as? String)
        // The item ran on the server's queue and was counted.
        let metrics = try await request(port: running.port, "GET", "/metrics").text
        #expect(metrics.contains("asr_in_flight_requests 0"))
    }

    @Test func errorsAreEventsAndTheSessionGoesOn() async throws {
        let running = try await RunningServer.start { $0.modelAliases = ["whisper-1": "builtin"] }
        defer { Task { await running.stop() } }
        let (session, events) = Self.session(running)
        func lastError() -> [String: Any]? { events.all.last?["error"] as? [String: Any] }
        await session.handle("not json")
        #expect(lastError()?["code"] as? String == "invalid_json")
        await session.handle(#"{"type":"input_audio_buffer.commit","event_id":"e7"}"#)
        #expect(lastError()?["code"] as? String == "input_audio_buffer_commit_empty" && lastError()?["event_id"] as? String == "e7")
        await session.handle(#"{"type":"response.create"}"#)
        #expect(lastError()?["code"] as? String == "unknown_event_type")
        await session.handle(#"{"type":"session.update","session":{"type":"transcription","audio":{"input":{"transcription":{"model":"nope"}}}}}"#)
        #expect(lastError()?["code"] as? String == "model_not_found")
        await session.handle(#"{"type":"session.update","session":{"type":"transcription","audio":{"input":{"format":{"type":"audio/opus"}}}}}"#)
        #expect(lastError()?["param"] as? String == "session.audio.input.format.type")
        // An alias is a model name like any other; the beta's event names are answered in kind.
        await session.handle(#"{"type":"transcription_session.update","session":{"input_audio_format":"g711_alaw","input_audio_transcription":{"model":"whisper-1"},"turn_detection":null}}"#)
        #expect(events.types.last == "transcription_session.updated")
        await session.handle(#"{"type":"input_audio_buffer.append","audio":"\#(Data(repeating: 0xD5, count: 80).base64EncodedString())"}"#)
        await session.handle(#"{"type":"input_audio_buffer.commit"}"#)
        #expect((lastError()?["message"] as? String)?.contains("buffer too small") == true, "10 ms is under OpenAI's 100 ms")
        await session.handle(#"{"type":"input_audio_buffer.clear"}"#)
        #expect(events.types.last == "input_audio_buffer.cleared")
    }

    @Test func theServersVADCutsItemsAtSilence() async throws {
        let running = try await RunningServer.start()
        defer { Task { await running.stop() } }
        let (session, events) = Self.session(running)
        await session.handle(#"{"type":"session.update","session":{"type":"transcription","audio":{"input":{"format":{"type":"audio/pcm","rate":16000},"turn_detection":{"type":"server_vad","silence_duration_ms":400}}}}}"#)
        let (pcm, _) = try Self.speech()
        let silence = Data(count: 16000 * 2)
        await Self.append(session, silence + pcm + silence + pcm + silence)
        let types = events.types
        #expect(types.filter { $0 == "input_audio_buffer.speech_started" }.count == 2, "\(types)")
        #expect(types.filter { $0 == "conversation.item.input_audio_transcription.completed" }.count == 2, "\(types)")
        let completed = events.all.filter { $0["type"] as? String == "conversation.item.input_audio_transcription.completed" }
        #expect(completed.allSatisfy { ($0["transcript"] as? String)?.isEmpty == false })
        // Nothing left in the buffer: a commit now is an empty one.
        await session.handle(#"{"type":"input_audio_buffer.commit"}"#)
        #expect((events.all.last?["error"] as? [String: Any])?["code"] as? String == "input_audio_buffer_commit_empty")
    }

    @Test func drainingTranscribesTheItemInProgress() async throws {
        let running = try await RunningServer.start()
        defer { Task { await running.stop() } }
        let (session, events) = Self.session(running)
        await session.handle(#"{"type":"session.update","session":{"type":"transcription","audio":{"input":{"format":{"type":"audio/pcm","rate":16000},"turn_detection":null}}}}"#)
        let (pcm, _) = try Self.speech()
        await Self.append(session, pcm)
        await session.drain()
        #expect(events.types.last == "conversation.item.input_audio_transcription.completed")
        #expect((events.all.last?["transcript"] as? String)?.isEmpty == false)
    }

    @Test func g711DecodesToTheStandardsValues() {
        // ITU-T G.711 reference points: μ-law 0xFF/0x7F are ±0, 0x80 is +32124, 0x00 is −32124; A-law 0xD5 is +8,
        // 0x55 is −8, 0xAA is +32256, 0x2A is −32256.
        #expect(PCMDecoder.mulaw(0xFF) == 0 && PCMDecoder.mulaw(0x7F) == 0)
        #expect(PCMDecoder.mulaw(0x80) == 32124 / 32768 && PCMDecoder.mulaw(0x00) == -32124 / 32768)
        #expect(PCMDecoder.alaw(0xD5) == 8 / 32768 && PCMDecoder.alaw(0x55) == -8 / 32768)
        #expect(PCMDecoder.alaw(0xAA) == 32256 / 32768 && PCMDecoder.alaw(0x2A) == -32256 / 32768)
        // Monotonic over each sign's codes.
        let positive = (0...127).map { PCMDecoder.mulaw(UInt8(0xFF - $0)) }
        #expect(zip(positive, positive.dropFirst()).allSatisfy { $0 < $1 })
        var pcm = PCMDecoder(format: .pcm16(rate: 24000))
        #expect(pcm.decode(Data([0x00, 0x80, 0xFF])) == [-1])
        #expect(pcm.decode(Data([0x7F])) == [Float(0x7FFF) / 32768], "a sample split across appends")
    }

    @Test func theVADKeepsItsPaddingAndSilence() {
        var vad = VoiceActivity(settings: .init(threshold: 0.5, prefixPaddingMs: 100, silenceDurationMs: 200), sampleRate: 1000)
        let quiet = [Float](repeating: 0.001, count: 500)  // −60 dBFS: below −45
        let loud = [Float](repeating: 0.1, count: 300)      // −20 dBFS
        let events = vad.process(quiet + loud + quiet)
        guard case .started(let start)? = events.first, case .stopped(let stop)? = events.last else {
            Issue.record("\(events)"); return
        }
        #expect(start == 400 && stop == 1000, "speech at 500 less 100 ms of padding; stopped 200 ms after it ends")
        let audio = events.compactMap { if case .audio(let a) = $0 { a } else { nil } }.joined()
        #expect(audio.count == stop - start)
        // Split anywhere, the same events.
        var again = VoiceActivity(settings: .init(threshold: 0.5, prefixPaddingMs: 100, silenceDurationMs: 200), sampleRate: 1000)
        let input = quiet + loud + quiet
        var split: [VoiceActivity.Event] = []
        for piece in stride(from: 0, to: input.count, by: 37) { split += again.process(Array(input[piece..<min(input.count, piece + 37)])) }
        let splitAudio = split.compactMap { if case .audio(let a) = $0 { a } else { nil } }.joined()
        #expect(Array(splitAudio) == Array(audio) && split.first == events.first && split.last == events.last)
    }
}
