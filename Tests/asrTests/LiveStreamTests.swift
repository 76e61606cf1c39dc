import ASRBuiltinModel
import ASRKit
import Foundation
import Testing

/// Live transcription with a real model on ~60 s of speech: the final segments, fed in random-sized buffers, are
/// the file path's transcript, words and times, and they come out while the audio is still arriving.
@Suite struct LiveStreamTests {
    @Test(arguments: [(30.0, 5.0, UInt64(1)), (10.0, 2.0, UInt64(2)), (6.0, 1.0, UInt64(3))])
    func finalSegmentsAreTheFileTranscriptOnLongSpeech(chunk: Double, stride: Double, seed: UInt64) async throws {
        let transcriber = try BuiltinModel.load()
        let url = CLI.fixtures.appendingPathComponent("audio/builtin/long_speech.flac")
        let chunking = try ChunkingOptions(chunkSeconds: chunk, strideSeconds: stride)
        let file = try await transcriber.transcribe(file: url, chunking: chunking)
        let audio = try transcriber.loadAudio(file: url)
        let live = try LiveTranscription(
            transcriber: transcriber, sampleRate: transcriber.sampleRate, chunking: chunking, bufferSeconds: 0.5)
        let fed = FedSeconds()
        let producer = Task {
            var state = seed
            var index = 0
            while index < audio.count {
                state = state &* 6364136223846793005 &+ 1442695040888963407
                let size = 1 + Int((state >> 33) % 40_000)
                let end = min(audio.count, index + size)
                try await live.append(Array(audio[index..<end]))
                fed.set(Double(end) / 16_000)
                index = end
            }
            live.finish()
        }
        var segments: [TranscriptSegment] = []
        var latencies: [Double] = []
        for try await result in live {
            guard case .final(let segment) = result else { continue }
            segments.append(segment)
            latencies.append(fed.value - segment.end)
        }
        try await producer.value
        #expect(segments.map(\.text).joined(separator: " ") == file.text)
        #expect(segments.flatMap(\.words) == file.words)
        #expect(segments.count >= 2, "final segments before the end of the audio")
        // Each segment but the last is final at most chunk − stride seconds after its end, give or take the two buffers
        // (2.5 s at most each) between producer and model and the wait for the next word boundary.
        for latency in latencies.dropLast() { #expect(latency <= chunk - stride + 7) }
        print("live \(chunk)/\(stride) s: \(segments.count) segments, latency \(latencies.map { String(format: "%.1f", $0) })")
    }
}

final class FedSeconds: @unchecked Sendable {
    private let lock = NSLock()
    private var seconds = 0.0
    func set(_ value: Double) { lock.withLock { seconds = value } }
    var value: Double { lock.withLock { seconds } }
}
