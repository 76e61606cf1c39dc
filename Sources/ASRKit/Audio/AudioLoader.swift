import Foundation

/// Decoded audio ready for a model: mono, at the model's rate.
public struct LoadedAudio: Sendable {
    /// Mono samples at `sampleRate`.
    public let samples: [Float]
    /// Samples per second of `samples` (the model's rate).
    public let sampleRate: Int
    /// What the file was: rate, channels and format as stored.
    public let sourceRate: Int
    /// Channels in the file before they were mixed down to mono.
    public let sourceChannels: Int
    /// libsndfile's description of the container and encoding, e.g. "WAV (Microsoft) / Signed 16 bit PCM".
    public let formatDescription: String

    /// Length of the audio in seconds.
    public var duration: Double { Double(samples.count) / Double(sampleRate) }
}

/// Mono samples at a target rate, pulled from a file block by block: each block is mixed down and resampled as it
/// is read, so neither the original-rate signal nor (for the chunked transcriber) the whole converted signal is
/// ever held at once.
///
/// Throws `invalidAudio` for NaN/Inf samples (a float file with them is corrupt; we refuse it rather than guess)
/// and for a file without samples, and `unreadableAudio` when decoding fails part-way.
public final class AudioStream {
    /// The file the samples are read from.
    public let file: AudioFile
    /// The rate (samples per second) of the samples `next()` returns.
    public let sampleRate: Int
    private var conditioner: SampleConditioner
    private var finished = false
    /// Frames read from the file so far (at its own rate).
    public private(set) var framesRead = 0
    private let blockFrames: Int

    /// Streams `file` at `sampleRate`, reading at most `blockFrames` frames from the file at a time; resamples only
    /// when the file's rate differs.
    public init(file: AudioFile, sampleRate: Int, blockFrames: Int = 1 << 16) {
        self.file = file
        self.sampleRate = sampleRate
        self.blockFrames = blockFrames
        conditioner = SampleConditioner(sourceRate: file.sampleRate, channels: file.channels, targetRate: sampleRate, sourceName: file.name)
    }

    /// The next samples at `sampleRate`, or nil once the file is exhausted.
    public func next() throws -> [Float]? {
        while !finished {
            let block = try file.readInterleavedBlock(maxFrames: blockFrames)
            if block.isEmpty {
                finished = true
                guard framesRead > 0 else { throw ASRError.invalidAudio(file: file.name, reason: "file holds no audio samples") }
                // As a cut WAV/AIFF is refused when opened: a FLAC file states its exact length.
                if file.hasExactLength && framesRead < file.frameCount {
                    throw ASRError.invalidAudio(
                        file: file.name, reason: "file is truncated: its header announces \(file.frameCount) frames of audio, \(framesRead) could be decoded")
                }
                let tail = conditioner.finish()
                return tail.isEmpty ? nil : tail
            }
            let out = try conditioner.process(block)
            framesRead = conditioner.framesIn
            if !out.isEmpty { return out }
        }
        return nil
    }
}

extension AudioFile {
    /// Decodes the rest of the file as mono at `sampleRate`.
    public func read(resampledTo targetRate: Int) throws -> LoadedAudio {
        let stream = AudioStream(file: self, sampleRate: targetRate)
        var output: [Float] = []
        let expected = frameCount > 0 ? Int((Double(frameCount) * Double(targetRate) / Double(sampleRate)).rounded(.up)) : 0
        output.reserveCapacity(min(expected, 1 << 28))
        while let block = try stream.next() { output += block }
        return LoadedAudio(samples: output, sampleRate: targetRate, sourceRate: sampleRate, sourceChannels: channels,
                           formatDescription: formatDescription)
    }
}
