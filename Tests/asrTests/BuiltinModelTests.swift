import ASRBuiltinModel
import ASRKit
import Foundation
import Testing

@Suite struct BuiltinModelTests {
    @Test func loadsFromTheBinaryAndDescribesItself() throws {
        let transcriber = try BuiltinModel.load()
        #expect(transcriber.location == "built-in model")
        #expect(transcriber.configuration.featExtractNorm == .group && !transcriber.configuration.doStableLayerNorm)
        #expect(transcriber.configuration.samplesPerFrame == 320)
        #expect(BuiltinModel.summary.contains("synthetic speech"))
        #expect(BuiltinModel.trainingRecord.contains("audio_hours_seen"))
    }

    /// ~69 s of speech: chunked (30 s chunks, 5 s strides) and in one pass give the same transcript, and word times
    /// within one frame.
    @Test func chunkedEqualsOnePassOnAMinuteOfSpeech() throws {
        let transcriber = try BuiltinModel.load()
        let file = CLI.fixtures.appendingPathComponent("audio/long_speech_60s.ogg")
        let samples = try transcriber.loadAudio(file: file)
        #expect(samples.count > 60 * 16000)
        let chunked = try transcriber.transcribe(file: file, chunking: .default) as Transcription
        let onePass = transcriber.decode(transcriber.emissions(samples: samples), duration: Double(samples.count) / 16000)
        #expect(chunked.text == onePass.text)
        #expect(chunked.words.count == onePass.words.count)
        for (a, b) in zip(chunked.words, onePass.words) {
            #expect(abs(a.start - b.start) <= 0.02 + 1e-9 && abs(a.end - b.end) <= 0.02 + 1e-9, "\(a) vs \(b)")
        }
        #expect(chunked.words.allSatisfy { $0.end <= chunked.duration })
    }
}
