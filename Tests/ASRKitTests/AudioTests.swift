import Foundation
import Testing
@testable import ASRKit

enum AudioFixtures {
    static let directory = Fixtures.root.appendingPathComponent("audio")
    static func path(_ name: String) -> String { directory.appendingPathComponent(name).path }

    /// The good fixtures and what their headers must say.
    static let good: [(file: String, rate: Int, channels: Int)] = [
        ("reference_16k_mono.wav", 16000, 1), ("phone_8k_ulaw.wav", 8000, 1), ("phone_8k_alaw.wav", 8000, 1),
        ("mono_22050.aiff", 22050, 1), ("stereo_44100_24bit.flac", 44100, 2), ("stereo_48k.wav", 48000, 2),
        ("float_96k.wav", 96000, 1), ("vorbis_32k.ogg", 32000, 1), ("mp3_44100.mp3", 44100, 1),
        ("pcm8_11025.wav", 11025, 1), ("odd_rate_12345.wav", 12345, 1), ("caf_16k.caf", 16000, 1),
        ("w64_16k.w64", 16000, 1), ("double_16k.wav", 16000, 1), ("six_channel_16k.wav", 16000, 6),
        ("opus_48k.opus", 48000, 1), ("rf64_16k.rf64", 16000, 1),
    ]

    /// Largest normalised cross-correlation of `a` against `b` over lags in ±maxLag.
    static func bestCorrelation(_ a: [Float], _ b: [Float], maxLag: Int) -> (value: Double, lag: Int) {
        var best = (value: -2.0, lag: 0)
        for lag in -maxLag...maxLag {
            var dot = 0.0, na = 0.0, nb = 0.0
            for i in 0..<a.count {
                let j = i + lag
                guard j >= 0, j < b.count else { continue }
                let x = Double(a[i]), y = Double(b[j])
                dot += x * y; na += x * x; nb += y * y
            }
            let c = na > 0 && nb > 0 ? dot / (na * nb).squareRoot() : 0
            if c > best.value { best = (c, lag) }
        }
        return best
    }
}

@Suite struct AudioFileTests {
    @Test(arguments: AudioFixtures.good.map(\.file))
    func decodesTo16kMonoMatchingTheReference(file: String) throws {
        let reference = try AudioFile(path: AudioFixtures.path("reference_16k_mono.wav")).read(resampledTo: 16000).samples
        let audio = try AudioFile(path: AudioFixtures.path(file))
        let expected = AudioFixtures.good.first { $0.file == file }!
        #expect(audio.sampleRate == expected.rate)
        #expect(audio.channels == expected.channels)
        let loaded = try audio.read(resampledTo: 16000)
        #expect(loaded.sampleRate == 16000)
        // Same length within the codecs' padding (lossy encoders add a few ms).
        #expect(abs(loaded.samples.count - reference.count) < 1600, "\(loaded.samples.count) vs \(reference.count)")
        let (correlation, lag) = AudioFixtures.bestCorrelation(loaded.samples, reference, maxLag: 800)
        print("audio fixture \(file): \(audio.formatDescription), \(audio.sampleRate) Hz × \(audio.channels) → 16 kHz mono, correlation \(String(format: "%.5f", correlation)) at lag \(lag)")
        #expect(correlation >= 0.99, "correlation \(correlation) at lag \(lag)")
    }

    @Test func headerIsReadWithoutDecoding() throws {
        let audio = try AudioFile(path: AudioFixtures.path("stereo_44100_24bit.flac"))
        #expect(audio.frameCount > 0)
        #expect(abs(audio.duration - Double(audio.frameCount) / 44100) < 1e-12)
        #expect(audio.formatDescription.contains("FLAC"))
    }

    @Test func brokenFilesGiveTheirOwnErrors() throws {
        func error(_ name: String) -> ASRError? {
            do {
                _ = try AudioFile(path: AudioFixtures.path(name)).read(resampledTo: 16000)
                return nil
            } catch let e as ASRError {
                return e
            } catch {
                return nil
            }
        }
        let path = AudioFixtures.path
        #expect(error("broken_empty.wav") == .invalidAudio(file: path("broken_empty.wav"), reason: "file is empty"))
        if case .unreadableAudio(let file, let reason)? = error("broken_text.wav") {
            #expect(file == path("broken_text.wav") && reason.hasPrefix("not a supported audio file"))
        } else { Issue.record("text file: \(String(describing: error("broken_text.wav")))") }
        if case .unreadableAudio(_, let reason)? = error("broken_truncated_header.wav") {
            #expect(reason.hasPrefix("not a supported audio file"))
        } else { Issue.record("truncated header: \(String(describing: error("broken_truncated_header.wav")))") }
        #expect(error("broken_no_samples.wav") == .invalidAudio(file: path("broken_no_samples.wav"), reason: "file holds no audio samples"))
        if case .invalidAudio(_, let reason)? = error("broken_nan.wav") {
            #expect(reason.contains("0.250 s") && reason.contains("nan"))
        } else { Issue.record("NaN: \(String(describing: error("broken_nan.wav")))") }
        if case .invalidAudio(_, let reason)? = error("broken_truncated.wav") {
            #expect(reason.contains("truncated"))
        } else { Issue.record("truncated: \(String(describing: error("broken_truncated.wav")))") }
        #expect(error("does_not_exist.wav") == .unreadableAudio(file: path("does_not_exist.wav"), reason: "no such file"))
        #expect(error("") != nil)
        do {
            _ = try AudioFile(path: AudioFixtures.directory.path)
            Issue.record("a directory opened as audio")
        } catch let e as ASRError {
            #expect(e == .unreadableAudio(file: AudioFixtures.directory.path, reason: "is a directory"))
        }
    }

    @Test func audioShorterThanTheReceptiveFieldTranscribesToNothing() throws {
        let transcriber = try Transcriber(modelDirectory: Fixtures.model("base-layout"))
        let result = try transcriber.transcribe(file: AudioFixtures.directory.appendingPathComponent("short_100_samples.wav"))
        #expect(result.text == "")
    }
}

@Suite struct NormalizerTests {
    @Test func zeroMeanUnitVariance() {
        let x: [Float] = (0..<1000).map { Float(sin(Double($0) * 0.1)) * 3 + 2 }
        let y = Normalizer.zeroMeanUnitVariance(x)
        let mean = y.reduce(0.0) { $0 + Double($1) } / Double(y.count)
        let variance = y.reduce(0.0) { $0 + (Double($1) - mean) * (Double($1) - mean) } / Double(y.count)
        #expect(abs(mean) < 1e-6)
        #expect(abs(variance - 1) < 1e-5)
    }

    @Test func silenceStaysFinite() {
        #expect(Normalizer.zeroMeanUnitVariance([Float](repeating: 0.5, count: 100)).allSatisfy { $0 == 0 })
    }
}
