import Foundation

/// Decoded audio ready for a model: mono, at the model's rate.
public struct LoadedAudio: Sendable {
    public let samples: [Float]
    public let sampleRate: Int
    /// What the file was: rate, channels and format as stored.
    public let sourceRate: Int
    public let sourceChannels: Int
    public let formatDescription: String

    public var duration: Double { Double(samples.count) / Double(sampleRate) }
}

extension AudioFile {
    /// Decodes the rest of the file as mono at `sampleRate`, streaming: blocks are mixed down and resampled as they
    /// are read, so the original-rate signal is never held whole.
    ///
    /// Throws `invalidAudio` for a file without samples or with NaN/Inf samples (a float file with them is corrupt;
    /// we refuse it rather than guess), and `unreadableAudio` when decoding fails part-way.
    public func read(resampledTo targetRate: Int, blockFrames: Int = 1 << 16) throws -> LoadedAudio {
        var resampler = sampleRate == targetRate ? nil : Resampler(inputRate: sampleRate, outputRate: targetRate)
        var output: [Float] = []
        let expected = frameCount > 0 ? Int((Double(frameCount) * Double(targetRate) / Double(sampleRate)).rounded(.up)) : 0
        output.reserveCapacity(min(expected, 1 << 28))
        var framesRead = 0
        while true {
            let block = try readBlock(maxFrames: blockFrames)
            if block.isEmpty { break }
            if let bad = block.firstIndex(where: { !$0.isFinite }) {
                let seconds = Double(framesRead + bad) / Double(sampleRate)
                throw ASRError.invalidAudio(
                    file: path, reason: "sample at \(String(format: "%.3f", seconds)) s is \(block[bad]); the file is corrupt")
            }
            framesRead += block.count
            output += resampler?.process(block) ?? block
        }
        if var r = resampler { output += r.finish(); resampler = r }
        guard framesRead > 0 else { throw ASRError.invalidAudio(file: path, reason: "file holds no audio samples") }
        return LoadedAudio(samples: output, sampleRate: targetRate, sourceRate: sampleRate, sourceChannels: channels,
                           formatDescription: formatDescription)
    }
}
