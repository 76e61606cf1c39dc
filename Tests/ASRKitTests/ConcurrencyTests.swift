import Foundation
import Testing
@testable import ASRKit

@Suite struct ConcurrencyTests {
    /// One loaded model shared by four concurrent transcriptions gives exactly the single-threaded results.
    @Test func sharedModelGivesIdenticalResultsUnderConcurrency() async throws {
        let transcriber = try Transcriber(modelDirectory: Fixtures.model("large-layout"))
        let files = ["reference_16k_mono.wav", "stereo_48k.wav", "vorbis_32k.ogg", "phone_8k_ulaw.wav"]
            .map { Fixtures.root.appendingPathComponent("audio/\($0)") }
        let sequential = try files.map { try transcriber.transcribe(file: $0, chunking: .default) as Transcription }
        for _ in 0..<3 {
            let concurrent = try await withThrowingTaskGroup(of: (Int, Transcription).self) { group in
                for (i, file) in files.enumerated() {
                    group.addTask { (i, try await transcriber.transcribe(file: file)) }
                }
                var out = [Transcription?](repeating: nil, count: files.count)
                for try await (i, t) in group { out[i] = t }
                return out.compactMap { $0 }
            }
            #expect(concurrent == sequential)
        }
    }

    /// Same input, same model, same thread count: bit-identical logits.
    @Test func logitsAreDeterministic() throws {
        let transcriber = try Transcriber(modelDirectory: Fixtures.model("base-layout"))
        let samples = try transcriber.loadAudio(file: Fixtures.speech)
        let first = transcriber.emissions(samples: samples).logits
        for _ in 0..<3 {
            #expect(transcriber.emissions(samples: samples).logits.map(\.bitPattern) == first.map(\.bitPattern))
        }
    }
}
