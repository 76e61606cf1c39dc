import Foundation
import Testing
@testable import ASRKit

/// The bad-input matrix: each case gives its own typed error (or a documented harmless result), never a crash.
@Suite struct BadInputTests {
    /// A canonical 44-byte PCM WAV header followed by `data`, with any field overridable.
    static func wav(rate: UInt32 = 16000, channels: UInt16 = 1, bits: UInt16 = 16, dataBytes: UInt32? = nil, data: [UInt8]) -> Data {
        var out = Data()
        func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        func u16(_ v: UInt16) { withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) } }
        let declared = dataBytes ?? UInt32(data.count)
        out.append(contentsOf: Array("RIFF".utf8)); u32(36 &+ declared); out.append(contentsOf: Array("WAVE".utf8))
        out.append(contentsOf: Array("fmt ".utf8)); u32(16); u16(1); u16(channels); u32(rate)
        u32(rate &* UInt32(channels) &* UInt32(bits / 8)); u16(channels &* (bits / 8)); u16(bits)
        out.append(contentsOf: Array("data".utf8)); u32(declared)
        out.append(contentsOf: data)
        return out
    }

    func load(_ data: Data) throws -> Result<LoadedAudio, ASRError> {
        let url = try Fixtures.temporaryDirectory().appendingPathComponent("input.wav")
        try data.write(to: url)
        return Result { try AudioFile(path: url.path).read(resampledTo: 16000) }.mapError { $0 as? ASRError ?? .invalidAudio(file: "", reason: "\($0)") }
    }

    func reason(_ data: Data) throws -> String? {
        switch try load(data) {
        case .success: return nil
        case .failure(.invalidAudio(_, let reason)), .failure(.unreadableAudio(_, let reason)): return reason
        case .failure(let other): return "\(other)"
        }
    }

    static let second = [UInt8](repeating: 0, count: 32000)

    @Test func zeroAndAbsurdRatesAndChannels() throws {
        #expect(try reason(Self.wav(rate: 0, data: Self.second)) != nil)
        #expect(try reason(Self.wav(rate: 4_000_000_000, data: Self.second)) != nil)
        #expect(try reason(Self.wav(rate: 3, data: Self.second))?.contains("sample rate 3 Hz") == true)
        #expect(try reason(Self.wav(channels: 0, data: Self.second)) != nil)
        #expect(try reason(Self.wav(channels: 1000, data: Self.second)) != nil)
    }

    @Test func headerClaimingHoursWithoutTheDataIsTruncated() throws {
        let hours = UInt32(2 * 3600 * 32000)
        #expect(try reason(Self.wav(dataBytes: hours, data: Array(Self.second[0..<3200])))?.contains("truncated") == true)
    }

    @Test func streamingWriterLengthsAreNotTruncation() throws {
        // Writers that stream (pipes) put 0xFFFFFFFF in the data size; the audio is whole.
        let result = try load(Self.wav(dataBytes: 0xFFFF_FFFF, data: Self.second))
        if case .success(let audio) = result { #expect(audio.samples.count == 16000) } else { Issue.record("\(result)") }
    }

    @Test func silenceOneSampleAndTenMillisecondsGiveEmptyTranscripts() throws {
        let transcriber = try Transcriber(modelDirectory: Fixtures.model("base-layout"))
        for samples in [0, 1, 160] {
            #expect(transcriber.transcribe(samples: [Float](repeating: 0.1, count: samples)).text == "")
        }
        // All-silence of a normal length: normalisation keeps it finite; the transcript is whatever the model says.
        let silent = transcriber.emissions(samples: [Float](repeating: 0, count: 16000))
        let finite = silent.logits.allSatisfy { $0.isFinite }
        #expect(finite)
    }

    @Test func nonFiniteWeightsAreReportedAsWarnings() throws {
        let dir = try Fixtures.copyModel("base-layout")
        try SafeTensorsWriter.rewrite(dir.appendingPathComponent("model.safetensors")) { entries in
            let i = entries.firstIndex { $0.name == "lm_head.bias" }!
            entries[i].bytes.replaceSubrange(0..<4, with: SafeTensorsWriter.floatBytes([.nan]))
        }
        let transcriber = try Transcriber(modelDirectory: dir)
        #expect(transcriber.warnings == ["tensor 'lm_head.bias' has 1 NaN or infinite values"])
        let clean = try Transcriber(modelDirectory: Fixtures.model("base-layout"))
        #expect(clean.warnings.isEmpty)
    }

    @Test func gigantDimensionsAreRefusedBeforeAllocating() throws {
        let dir = try Fixtures.copyModel("base-layout")
        let url = dir.appendingPathComponent("config.json")
        let text = try String(contentsOf: url, encoding: .utf8).replacingOccurrences(of: "\"hidden_size\": 32", with: "\"hidden_size\": 60000")
        try text.write(to: url, atomically: true, encoding: .utf8)
        // Shapes come from the config: the first mismatch is reported, nothing of the config's size is allocated.
        #expect(throws: ASRError.self) { try Transcriber(modelDirectory: dir) }
    }
}
