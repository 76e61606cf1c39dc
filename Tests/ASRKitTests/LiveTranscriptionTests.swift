import Foundation
import Testing
@testable import ASRKit

/// Live transcription (ASRKit's LiveTranscription): the same transcript as the file path however the audio is cut
/// into buffers, a bounded buffer between producer and model, and cancellation that stops the work.
@Suite struct LiveTranscriptionTests {
    static let transcriber = Result { try Transcriber(modelDirectory: Fixtures.model("base-layout")) }

    /// Raw interleaved samples of a file at its own rate (what a microphone or a pipe would deliver).
    static func interleaved(_ url: URL) throws -> (samples: [Float], rate: Int, channels: Int) {
        let file = try AudioFile(path: url.path)
        var samples: [Float] = []
        while true {
            let block = try file.readInterleavedBlock(maxFrames: 4096)
            if block.isEmpty { break }
            samples += block
        }
        return (samples, file.sampleRate, file.channels)
    }

    /// Appends `samples` in buffers of random sizes (1 sample to 3 s) from another task, then finishes; collects
    /// the final segments.
    static func stream(
        _ samples: [Float], rate: Int, channels: Int, transcriber: Transcriber, chunking: ChunkingOptions, seed: UInt64
    ) async throws -> [TranscriptSegment] {
        let live = try LiveTranscription(transcriber: transcriber, sampleRate: rate, channels: channels, chunking: chunking)
        let producer = Task {
            var generator = SeededGenerator(seed: seed)
            var index = 0
            while index < samples.count {
                let size = Int.random(in: 1...(3 * rate * channels), using: &generator)
                let end = min(samples.count, index + (size % 7 == 0 ? 1 : size))
                try await live.append(Array(samples[index..<end]))
                index = end
            }
            live.finish()
        }
        var segments: [TranscriptSegment] = []
        for try await result in live {
            if case .final(let segment) = result { segments.append(segment) }
        }
        try await producer.value
        return segments
    }

    static func expectIdentity(_ segments: [TranscriptSegment], _ file: Transcription) {
        #expect(segments.map(\.text).joined(separator: " ") == file.text)
        #expect(segments.flatMap(\.words) == file.words)
        #expect(segments.flatMap(\.characters) == Array(file.characters.prefix(segments.flatMap(\.characters).count)))
    }

    @Test(arguments: [UInt64(1), 2, 3])
    func sameTranscriptAsTheFilePathInRandomBuffers(seed: UInt64) async throws {
        let transcriber = try Self.transcriber.get()
        let chunking = try ChunkingOptions(chunkSeconds: 1.5, strideSeconds: 0.25)
        let (samples, rate, channels) = try Self.interleaved(Fixtures.speech)
        let file = try await transcriber.transcribe(file: Fixtures.speech, chunking: chunking)
        let segments = try await Self.stream(samples, rate: rate, channels: channels, transcriber: transcriber, chunking: chunking, seed: seed)
        Self.expectIdentity(segments, file)
    }

    @Test func sameTranscriptForStereoAudioAtAnotherRate() async throws {
        let transcriber = try Self.transcriber.get()
        let url = Fixtures.root.appendingPathComponent("audio/stereo_44100_24bit.flac")
        let chunking = try ChunkingOptions(chunkSeconds: 1.2, strideSeconds: 0.1)
        let (samples, rate, channels) = try Self.interleaved(url)
        #expect(rate == 44_100 && channels == 2)
        let file = try await transcriber.transcribe(file: url, chunking: chunking)
        let segments = try await Self.stream(samples, rate: rate, channels: channels, transcriber: transcriber, chunking: chunking, seed: 7)
        Self.expectIdentity(segments, file)
    }

    /// The chunk loop fed incrementally gives the logits of the file path, whatever the buffer sizes.
    @Test func chunkerLogitsDoNotDependOnBufferSizes() throws {
        let transcriber = try Self.transcriber.get()
        let chunking = try ChunkingOptions(chunkSeconds: 1.5, strideSeconds: 0.25)
        let audio = try transcriber.loadAudio(file: Fixtures.speech)
        var consumed = false
        let whole = try transcriber.emissions(chunking: chunking) { defer { consumed = true }; return consumed ? nil : audio }
        var chunker = ChunkedEmissions(transcriber: transcriber, chunking: chunking)
        var logits: [Float] = []
        var generator = SeededGenerator(seed: 11)
        var index = 0
        while index < audio.count {
            let end = min(audio.count, index + Int.random(in: 1...20_000, using: &generator))
            chunker.append(Array(audio[index..<end]))
            while let piece = chunker.nextChunk() { logits += piece }
            index = end
        }
        logits += chunker.finish()
        #expect(logits == whole.emissions.logits)
    }

    /// A consumer that does not keep up holds the producer back: the buffer never holds much more than asked for.
    @Test func slowConsumerBoundsTheBuffer() async throws {
        let transcriber = try Self.transcriber.get()
        let rate = 16_000
        let live = try LiveTranscription(
            transcriber: transcriber, sampleRate: rate, chunking: try ChunkingOptions(chunkSeconds: 2, strideSeconds: 0.5),
            bufferSeconds: 1)
        let audio = try transcriber.loadAudio(file: Fixtures.speech)
        let buffer = rate / 10
        let appended = Counter()
        let producer = Task {
            for _ in 0..<300 {   // 30 s of audio in 0.1 s buffers
                try await live.append(Array(audio.prefix(buffer)))
                appended.increment()
            }
            live.finish()
        }
        // Nobody consumes yet: the producer stops at the buffer's size.
        try await Task.sleep(nanoseconds: 300_000_000)
        let early = appended.value
        #expect(early <= 11, "appended \(early) buffers of 0.1 s into a 1 s buffer with no consumer")
        // A slow consumer: the producer advances with it, and the buffer stays bounded.
        var results = 0
        for try await _ in live {
            results += 1
            try await Task.sleep(nanoseconds: 5_000_000)
        }
        try await producer.value
        #expect(appended.value == 300)
        #expect(live.peakBufferedSamples <= rate + buffer)
        #expect(live.chunksRun > 10)
    }

    /// Cancelling the iterating task stops the model between chunks, and the producer is told.
    @Test func cancellingTheConsumerStopsTheWork() async throws {
        let transcriber = try Self.transcriber.get()
        let live = try LiveTranscription(
            transcriber: transcriber, sampleRate: 16_000, chunking: try ChunkingOptions(chunkSeconds: 1.5, strideSeconds: 0.25),
            bufferSeconds: 2)
        let audio = try transcriber.loadAudio(file: Fixtures.speech)
        let producer = Task { () -> Error? in
            do {
                while true { try await live.append(audio) }   // endless audio
            } catch {
                return error
            }
        }
        let consumer = Task { () -> Error? in
            do {
                for try await _ in live {}
                return nil
            } catch {
                return error
            }
        }
        while live.chunksRun < 3 { try await Task.sleep(nanoseconds: 10_000_000) }
        consumer.cancel()
        #expect(await consumer.value is CancellationError)
        #expect(await producer.value is CancellationError)
        let stopped = live.chunksRun
        try await Task.sleep(nanoseconds: 300_000_000)
        #expect(live.chunksRun == stopped)
        await #expect(throws: CancellationError.self) { try await live.append([0, 0]) }
    }

    /// Abandoning the iteration (breaking out of the loop) releases a waiting producer.
    @Test func abandoningTheIterationReleasesTheProducer() async throws {
        let transcriber = try Self.transcriber.get()
        let live = try LiveTranscription(transcriber: transcriber, sampleRate: 16_000, bufferSeconds: 0.5)
        let producer = Task { () -> Error? in
            do {
                while true { try await live.append([Float](repeating: 0.01, count: 4000)) }
            } catch {
                return error
            }
        }
        do {
            let iterator = live.makeAsyncIterator()
            _ = iterator   // dropped without iterating
        }
        #expect(await producer.value is CancellationError)
    }

    @Test func emptyAndSilentAudioGiveNoSegments() async throws {
        let transcriber = try Self.transcriber.get()
        let live = try LiveTranscription(transcriber: transcriber, sampleRate: 8000)
        live.finish()
        var count = 0
        for try await _ in live { count += 1 }
        #expect(count == 0)
    }

    @Test func nonFiniteSamplesAreAnAudioError() async throws {
        let transcriber = try Self.transcriber.get()
        let live = try LiveTranscription(transcriber: transcriber, sampleRate: 16_000)
        try await live.append([0, 0.5, .nan])
        live.finish()
        await #expect(throws: ASRError.self) { for try await _ in live {} }
    }

    @Test func badParametersAreRefused() throws {
        let transcriber = try Self.transcriber.get()
        #expect(throws: ASRError.self) { try LiveTranscription(transcriber: transcriber, sampleRate: 0) }
        #expect(throws: ASRError.self) { try LiveTranscription(transcriber: transcriber, sampleRate: 16_000, channels: 0) }
        #expect(throws: ASRError.self) { try LiveTranscription(transcriber: transcriber, sampleRate: 16_000, bufferSeconds: 0) }
    }

    @Test func partialResultsComeBeforeTheFinalOnes() async throws {
        let transcriber = try Self.transcriber.get()
        let live = try LiveTranscription(
            transcriber: transcriber, sampleRate: 16_000, chunking: try ChunkingOptions(chunkSeconds: 30, strideSeconds: 5),
            partialResults: true, partialInterval: 0.5)
        let audio = try transcriber.loadAudio(file: Fixtures.speech)
        let producer = Task {
            for start in stride(from: 0, to: audio.count, by: 4000) {
                try await live.append(Array(audio[start..<min(audio.count, start + 4000)]))
            }
            live.finish()
        }
        var partials = 0, finals: [String] = []
        for try await result in live {
            switch result {
            case .partial: partials += 1
            case .final(let segment): finals.append(segment.text)
            }
        }
        try await producer.value
        #expect(partials >= 1)
        #expect(finals.joined(separator: " ") == (try await transcriber.transcribe(file: Fixtures.speech).text))
    }
}

final class Counter: @unchecked Sendable {
    private let lock = NSLock()
    private var count = 0
    func increment() { lock.withLock { count += 1 } }
    var value: Int { lock.withLock { count } }
}

/// SplitMix64: reproducible random numbers for the tests (buffer sizes, corpus shapes).
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    mutating func uniform() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
