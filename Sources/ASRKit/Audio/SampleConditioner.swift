import Foundation

/// Turns audio as a source delivers it — interleaved channels at the source's rate, in buffers of any size — into
/// what every model takes: mono samples at the model's rate. Files, standard input, live input and the server's
/// uploads all pass through this one type, so mixdown, the corrupt-sample check and resampling are written once.
///
/// Steps, per buffer: frames are completed across buffer boundaries (a buffer may end inside a frame), the channels
/// of each frame are averaged, a non-finite sample is refused, and the mono signal is resampled with a streaming
/// ``Resampler`` when the rates differ. The output of any split of the input into buffers is bit-identical to one
/// buffer holding all of it. The per-window normalisation a family needs (zero mean and unit variance for the
/// Wav2Vec2 family, the filterbank's own for w2v-BERT) is the model's first step, not this one's: it runs on the
/// windows the chunk driver cuts, as the Hugging Face feature extractors do.
public struct SampleConditioner: Sendable {
    /// Frames per second of the input.
    public let sourceRate: Int
    /// Interleaved channels per input frame.
    public let channels: Int
    /// Samples per second of the output (the model's rate).
    public let targetRate: Int
    /// How errors name the audio: a file's path or display name, "live audio", an upload's name.
    public let sourceName: String
    /// Complete input frames taken so far.
    public private(set) var framesIn = 0
    private var resampler: Resampler?
    /// The start of a frame whose other channels are in the next buffer.
    private var partialFrame: [Float] = []

    /// A conditioner from `channels` interleaved channels at `sourceRate` to mono at `targetRate`.
    ///
    /// - Precondition: both rates and `channels` are positive.
    public init(sourceRate: Int, channels: Int, targetRate: Int, sourceName: String) {
        precondition(sourceRate > 0 && targetRate > 0 && channels > 0, "rates and channels must be positive")
        self.sourceRate = sourceRate
        self.channels = channels
        self.targetRate = targetRate
        self.sourceName = sourceName
        resampler = sourceRate == targetRate ? nil : Resampler(inputRate: sourceRate, outputRate: targetRate)
    }

    /// Mono samples at `targetRate` for the next interleaved samples (possibly none yet: the resampler waits for
    /// the samples its filter needs).
    ///
    /// - Throws: ``ASRError/invalidAudio(file:reason:)`` naming ``sourceName`` and the time of a NaN or infinite
    ///   sample; nothing of that buffer is taken.
    public mutating func process(_ interleaved: [Float]) throws -> [Float] {
        var mono: [Float]
        if channels == 1 {
            mono = interleaved
        } else {
            let input = partialFrame.isEmpty ? interleaved : partialFrame + interleaved
            let frames = input.count / channels
            mono = Self.mixdown(input, frames: frames, channels: channels)
            partialFrame = Array(input[(frames * channels)...])
        }
        if let bad = mono.firstIndex(where: { !$0.isFinite }) {
            let seconds = Double(framesIn + bad) / Double(sourceRate)
            throw ASRError.invalidAudio(
                file: sourceName, reason: "sample at \(String(format: "%.3f", seconds)) s is \(mono[bad]); the audio is corrupt")
        }
        framesIn += mono.count
        if resampler != nil { mono = resampler!.process(mono) }
        return mono
    }

    /// The last samples: the resampler's tail (the end padded with silence). A partial last frame is dropped.
    public mutating func finish() -> [Float] {
        partialFrame = []
        return resampler?.finish() ?? []
    }

    /// The mean of each frame's channels: `frames` frames of `channels` interleaved samples from the start of
    /// `interleaved`.
    static func mixdown(_ interleaved: [Float], frames: Int, channels: Int) -> [Float] {
        if channels == 1 { return Array(interleaved.prefix(frames)) }
        let scale = 1 / Float(channels)
        var mono = [Float](repeating: 0, count: frames)
        interleaved.withUnsafeBufferPointer { src in
            for i in 0..<frames {
                var sum: Float = 0
                for c in 0..<channels { sum += src[i * channels + c] }
                mono[i] = sum * scale
            }
        }
        return mono
    }
}
