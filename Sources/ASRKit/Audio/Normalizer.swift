import Foundation

/// Wav2Vec2FeatureExtractor's `do_normalize`: zero mean and unit variance over the whole utterance, with the
/// population variance and eps 1e-7 inside the square root.
public enum Normalizer {
    /// Added to the variance inside the square root (transformers' 1e-7).
    public static let epsilon = 1e-7

    /// `samples` shifted to zero mean and scaled to unit variance; an empty array is returned unchanged.
    public static func zeroMeanUnitVariance(_ samples: [Float]) -> [Float] {
        guard !samples.isEmpty else { return samples }
        // Double accumulation: an hour of audio has 57.6 M samples, too many for a Float running sum.
        var sum = 0.0
        for s in samples { sum += Double(s) }
        let mean = sum / Double(samples.count)
        var squares = 0.0
        for s in samples { let d = Double(s) - mean; squares += d * d }
        let inverseStd = 1 / (squares / Double(samples.count) + epsilon).squareRoot()
        return samples.map { Float((Double($0) - mean) * inverseStd) }
    }
}
