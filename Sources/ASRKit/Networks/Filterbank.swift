import CFFTW
import Foundation

/// w2v-BERT's front end, transformers' `SeamlessM4TFeatureExtractor`: 16 kHz samples → Kaldi-style log-mel
/// filterbank frames, each mel bin normalised over the utterance, two frames stacked into one model frame.
///
/// Per frame of 400 samples every 160 (25 ms / 10 ms, no centring): samples × 2¹⁵ (Kaldi's 16-bit scale), the
/// frame's mean removed, pre-emphasis 0.97 (the first sample × 0.03), the Povey window (Hann^0.85, symmetric), a
/// 512-point real FFT (FFTW), power spectrum, the mel filters (Kaldi's mel scale, triangles in mel space, 20 Hz to
/// 8 kHz), log with a floor of 2⁻²³. Then every bin minus its mean over the frames, over √(unbiased variance + 1e-7).
///
/// The arithmetic follows the extractor's: the frame in Double, the spectrum rounded to single precision (it stores
/// complex64), mel energies in Double, their log rounded to Float; the statistics in Float, summed frame after frame
/// as NumPy reduces a (frames, bins) array over its first axis.
struct Filterbank: Sendable {
    let bins: Int
    /// (257 frequency bins × `bins`) triangles, row-major by frequency.
    private let melFilters: [Double]
    /// The Povey window over one frame.
    private let window: [Double]

    static let sampleRate = 16000, fftLength = 512, window = Wav2Vec2Configuration.filterbankWindow
    static let hop = Wav2Vec2Configuration.filterbankHop, stacking = Wav2Vec2Configuration.filterbankStacking
    static let preemphasis = 0.97, melFloor = 1.192092955078125e-07, varianceFloor: Float = 1e-7

    init(bins: Int) {
        self.bins = bins
        let frequencies = Self.fftLength / 2 + 1
        // Kaldi's mel scale: 1127 · ln(1 + f / 700). Filter edges evenly spaced in mel from 20 Hz to Nyquist, each
        // FFT bin's centre in mel, triangles rising from edge m to m + 1 and falling to m + 2.
        func mel(_ hertz: Double) -> Double { 1127.0 * log(1.0 + hertz / 700.0) }
        let low = mel(20), high = mel(Double(Self.sampleRate / 2))
        let step = (high - low) / Double(bins + 1)
        var edges = (0..<(bins + 2)).map { low + Double($0) * step }   // numpy.linspace: i · step + start, last exact
        edges[bins + 1] = high
        let binWidth = Double(Self.sampleRate) / Double((frequencies - 1) * 2)
        var filters = [Double](repeating: 0, count: frequencies * bins)
        for f in 0..<frequencies {
            let centre = mel(binWidth * Double(f))
            for m in 0..<bins {
                let down = -(edges[m] - centre) / (edges[m + 1] - edges[m])
                let up = (edges[m + 2] - centre) / (edges[m + 2] - edges[m + 1])
                filters[f * bins + m] = max(0, min(down, up))
            }
        }
        melFilters = filters
        // numpy.hanning(400) ** 0.85: 0.5 − 0.5·cos(2πn / 399).
        window = (0..<Self.window).map { n in pow(0.5 - 0.5 * cos(2 * Double.pi * Double(n) / Double(Self.window - 1)), 0.85) }
    }

    /// One plan for every transform of 512 points: FFTW's planner is not thread-safe, its execution on new arrays is.
    private nonisolated(unsafe) static let plan: fftw_plan = {
        let input = fftw_alloc_real(fftLength)!, output = fftw_alloc_complex(fftLength / 2 + 1)!
        defer { fftw_free(input); fftw_free(output) }
        return fftw_plan_dft_r2c_1d(Int32(fftLength), input, output, asr_fftw_flags)!
    }()

    /// (stacked frames, 2 · bins): row s holds frames 2s and 2s + 1. An odd count of frames leaves the second half of
    /// the last row zero (the extractor pads there and masks that row).
    func callAsFunction(_ samples: [Float], frames: Int) -> Matrix {
        let stacked = (frames + Self.stacking - 1) / Self.stacking
        var logMel = [Float](repeating: 0, count: frames * bins)
        let frequencies = Self.fftLength / 2 + 1
        var buffer = [Double](repeating: 0, count: Self.fftLength)
        var spectrum = [(Double, Double)](repeating: (0, 0), count: frequencies)
        var power = [Double](repeating: 0, count: frequencies)
        var energies = [Double](repeating: 0, count: bins)
        for frame in 0..<frames {
            let start = frame * Self.hop
            var sum = 0.0
            for i in 0..<Self.window {
                buffer[i] = Double(samples[start + i] * 32768)
                sum += buffer[i]
            }
            let mean = sum / Double(Self.window)
            for i in 0..<Self.window { buffer[i] -= mean }
            for i in stride(from: Self.window - 1, through: 1, by: -1) { buffer[i] -= Self.preemphasis * buffer[i - 1] }
            buffer[0] *= 1 - Self.preemphasis
            for i in 0..<Self.window { buffer[i] *= window[i] }
            for i in Self.window..<Self.fftLength { buffer[i] = 0 }
            buffer.withUnsafeMutableBufferPointer { input in
                spectrum.withUnsafeMutableBufferPointer { output in
                    fftw_execute_dft_r2c(Self.plan, input.baseAddress!, output.baseAddress!)
                }
            }
            for f in 0..<frequencies {
                let re = Double(Float(spectrum[f].0)), im = Double(Float(spectrum[f].1))  // complex64, as stored there
                power[f] = re * re + im * im
            }
            for m in 0..<bins { energies[m] = 0 }
            melFilters.withUnsafeBufferPointer { filters in
                for f in 0..<frequencies where power[f] != 0 {
                    let row = filters.baseAddress! + f * bins, p = power[f]
                    for m in 0..<bins { energies[m] += row[m] * p }
                }
            }
            for m in 0..<bins { logMel[frame * bins + m] = Float(log(max(Self.melFloor, energies[m]))) }
        }
        normalizeBins(&logMel, frames: frames)

        var out = Matrix(rows: stacked, cols: Self.stacking * bins)
        logMel.withUnsafeBufferPointer { source in
            out.storage.withUnsafeMutableBufferPointer { target in
                target.baseAddress!.update(from: source.baseAddress!, count: frames * bins)
            }
        }
        return out
    }

    /// Each bin minus its mean over the frames, over √(var + 1e-7) with the unbiased variance, in Float.
    private func normalizeBins(_ x: inout [Float], frames: Int) {
        var mean = [Float](repeating: 0, count: bins), variance = [Float](repeating: 0, count: bins)
        for f in 0..<frames { for m in 0..<bins { mean[m] += x[f * bins + m] } }
        for m in 0..<bins { mean[m] /= Float(frames) }
        for f in 0..<frames {
            for m in 0..<bins {
                let d = x[f * bins + m] - mean[m]
                variance[m] += d * d
            }
        }
        let scale = (0..<bins).map { m in (variance[m] / Float(frames - 1) + Self.varianceFloor).squareRoot() }
        for f in 0..<frames { for m in 0..<bins { x[f * bins + m] = (x[f * bins + m] - mean[m]) / scale[m] } }
    }
}
