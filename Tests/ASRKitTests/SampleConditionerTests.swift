import Foundation
import Testing
@testable import ASRKit

/// The one sample conditioner every source goes through (files, standard input, live input, uploads): mixdown,
/// the corrupt-sample check and resampling, at buffer boundaries especially.
@Suite struct SampleConditionerTests {
    /// Deterministic noise in [-0.5, 0.5).
    static func interleaved(frames: Int, channels: Int) -> [Float] {
        var state: UInt32 = 12345
        return (0..<(frames * channels)).map { _ in
            state = state &* 1_664_525 &+ 1_013_904_223
            return Float(Int32(bitPattern: state >> 8) - (1 << 23)) / Float(1 << 24)
        }
    }

    static func run(_ input: [Float], splits: [Int], channels: Int, from: Int, to: Int) throws -> [Float] {
        var conditioner = SampleConditioner(sourceRate: from, channels: channels, targetRate: to, sourceName: "test")
        var output: [Float] = []
        var start = 0
        for end in splits + [input.count] {
            output += try conditioner.process(Array(input[start..<end]))
            start = end
        }
        return output + conditioner.finish()
    }

    @Test(arguments: [(1, 16000), (3, 16000), (2, 44100), (3, 8000)])
    func anySplitGivesTheSameSamplesAsOneBuffer(channels: Int, rate: Int) throws {
        let input = Self.interleaved(frames: 20_000, channels: channels)
        let whole = try Self.run(input, splits: [], channels: channels, from: rate, to: 16000)
        // Splits inside frames (odd offsets for 2 and 3 channels), single samples, an empty buffer.
        let splits = [1, 2, 7, 7, 1000, 1001, 12_345, 30_001].filter { $0 < input.count }
        let pieces = try Self.run(input, splits: splits, channels: channels, from: rate, to: 16000)
        #expect(pieces == whole)
        let expected = Int((Double(20_000) * 16000 / Double(rate)).rounded(.up))
        #expect(whole.count == expected)
    }

    @Test func channelsAreAveraged() throws {
        var conditioner = SampleConditioner(sourceRate: 16000, channels: 2, targetRate: 16000, sourceName: "test")
        // The second frame is split across buffers.
        #expect(try conditioner.process([1, 0, 0.5]) == [0.5])
        #expect(try conditioner.process([0.25, -1, -1]) == [0.375, -1])
        #expect(conditioner.framesIn == 3)
        #expect(conditioner.finish().isEmpty)
    }

    @Test func aNonFiniteSampleNamesTheSourceAndItsTime() throws {
        var conditioner = SampleConditioner(sourceRate: 1000, channels: 1, targetRate: 16000, sourceName: "talk.wav")
        _ = try conditioner.process([Float](repeating: 0, count: 1500))
        #expect {
            _ = try conditioner.process([0, .infinity])
        } throws: { error in
            "\(error)".contains("talk.wav") && "\(error)".contains("1.501 s")
        }
    }

    /// A file's stream and a live source fed the same interleaved samples give the model the same samples.
    @Test func aFileStreamsThroughTheConditioner() throws {
        let url = Fixtures.root.appendingPathComponent("audio/stereo_44100_24bit.flac")
        let file = try AudioFile(path: url.path, name: "shown.flac")
        #expect(file.name == "shown.flac" && file.channels == 2)
        let streamed = try AudioFile(path: url.path).read(resampledTo: 16000).samples
        var raw: [Float] = []
        while true {
            let block = try file.readInterleavedBlock(maxFrames: 777)
            if block.isEmpty { break }
            raw += block
        }
        let conditioned = try Self.run(raw, splits: [5, 999, 4001], channels: 2, from: 44100, to: 16000)
        #expect(conditioned == streamed)
    }
}
