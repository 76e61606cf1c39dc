import Foundation
import Logging
import Testing
@testable import ASRKit

/// What a library owes its callers: diagnostics through the Logger they pass (never printed), async work that stops
/// when its task is cancelled, progress, and errors that keep what they are.
@Suite struct LibraryMannersTests {
    final class Capture: @unchecked Sendable {
        private let lock = NSLock()
        private var entries: [(Logger.Level, String)] = []
        func add(_ level: Logger.Level, _ message: String) { lock.withLock { entries.append((level, message)) } }
        var all: [(Logger.Level, String)] { lock.withLock { entries } }
    }

    struct CaptureHandler: LogHandler {
        let capture: Capture
        var logLevel: Logger.Level = .trace
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) { capture.add(event.level, "\(event.message)") }
    }

    static func logger(_ capture: Capture) -> Logger {
        var logger = Logger(label: "test") { _ in CaptureHandler(capture: capture) }
        logger.logLevel = .trace
        return logger
    }

    @Test func vocabularySmallerThanTheModelIsAWarningNamingBothNumbers() throws {
        let directory = try Fixtures.copyModel("base-layout")
        defer { try? FileManager.default.removeItem(at: directory.deletingLastPathComponent()) }
        let url = directory.appendingPathComponent("vocab.json")
        let vocab = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Int]
        #expect(vocab.count == 32)
        let kept = vocab.filter { $0.value < 20 }
        try JSONSerialization.data(withJSONObject: kept).write(to: url)
        let capture = Capture()
        let transcriber = try Transcriber(modelDirectory: directory, logger: Self.logger(capture))
        let warnings = capture.all.filter { $0.0 == .warning }.map(\.1)
        #expect(warnings.contains { $0.contains("20") && $0.contains("32") }, "\(warnings)")
        #expect(transcriber.warnings.contains { $0.contains("20") && $0.contains("32") })
    }

    @Test func resamplingAndChunkingAreDebugMessages() throws {
        let capture = Capture()
        let transcriber = try Transcriber(modelDirectory: Fixtures.model("base-layout"), logger: Self.logger(capture))
        _ = try transcriber.transcribe(
            file: Fixtures.root.appendingPathComponent("audio/stereo_44100_24bit.flac"),
            chunking: try ChunkingOptions(chunkSeconds: 1.2, strideSeconds: 0.1))
        _ = try transcriber.transcribe(
            file: Fixtures.root.appendingPathComponent("audio/builtin/long_speech.flac"),
            chunking: try ChunkingOptions(chunkSeconds: 10, strideSeconds: 2))
        let debug = capture.all.filter { $0.0 == .debug }.map(\.1)
        #expect(debug.contains { $0.contains("resampling 44100 Hz") }, "\(debug)")
        #expect(debug.contains { $0.contains("chunked") }, "\(debug)")
        #expect(capture.all.allSatisfy { $0.0 != .warning })
    }

    @Test func cancellingAnAsyncTranscriptionStopsItBetweenChunks() async throws {
        let transcriber = try Transcriber(modelDirectory: Fixtures.model("base-layout"))
        let file = Fixtures.root.appendingPathComponent("audio/builtin/long_speech.flac")
        let chunking = try ChunkingOptions(chunkSeconds: 2, strideSeconds: 0.5)
        let reports = Counter()
        // The first progress report holds the work until the test has cancelled it (a tiny model would otherwise
        // finish all ~58 chunks before a polling test gets to cancel: a race, not a test).
        let cancelled = DispatchSemaphore(value: 0)
        let task = Task {
            try await transcriber.transcribe(file: file, chunking: chunking) { _ in
                reports.increment()
                if reports.value == 1 { _ = cancelled.wait(timeout: .now() + 30) }
            }
        }
        while reports.value == 0 { try await Task.sleep(nanoseconds: 1_000_000) }
        task.cancel()
        cancelled.signal()
        await #expect(throws: CancellationError.self) { try await task.value }
        let stopped = reports.value
        try await Task.sleep(nanoseconds: 200_000_000)
        #expect(reports.value == stopped)
        #expect(stopped < 50, "about 58 chunks in all; cancelled after \(stopped)")
    }

    @Test func progressRisesToTheWholeFile() async throws {
        let transcriber = try Transcriber(modelDirectory: Fixtures.model("base-layout"))
        let file = Fixtures.root.appendingPathComponent("audio/builtin/long_speech.flac")
        let seen = Capture()
        let result = try await transcriber.transcribe(file: file, chunking: try ChunkingOptions(chunkSeconds: 10, strideSeconds: 2)) {
            seen.add(.info, "\($0.processedSeconds) \($0.fractionCompleted ?? -1)")
        }
        let values = seen.all.map { $0.1.split(separator: " ").compactMap { Double($0) } }
        #expect(values.count >= 5)
        #expect(zip(values, values.dropFirst()).allSatisfy { $0[0] <= $1[0] })
        #expect(values.last == [result.duration, 1])
    }

    @Test func cancellingTheBatchIsNotAFileFailure() async throws {
        let transcriber = try Transcriber(modelDirectory: Fixtures.model("base-layout"))
        let task = Task {
            try await transcriber.transcribe(files: Array(repeating: Fixtures.root.appendingPathComponent("audio/builtin/long_speech.flac"), count: 20))
        }
        try await Task.sleep(nanoseconds: 50_000_000)
        task.cancel()
        await #expect(throws: CancellationError.self) { _ = try await task.value }
    }

    @Test func libraryErrorsNameNoCommand() {
        let message = "\(ASRError.modelNotCached(id: "acme/model", cache: "/cache"))"
        #expect(!message.contains("asr ") && !message.contains("--"))
    }
}
