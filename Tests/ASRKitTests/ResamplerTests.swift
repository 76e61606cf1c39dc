import Foundation
import Testing
@testable import ASRKit

/// The resampler's quality, measured on synthetic tones.
@Suite struct ResamplerTests {
    static func tone(_ frequency: Double, rate: Int, seconds: Double, amplitude: Double = 0.5) -> [Float] {
        (0..<Int(Double(rate) * seconds)).map { Float(amplitude * sin(2 * .pi * frequency * Double($0) / Double(rate))) }
    }

    /// Amplitude of the `frequency` component of `x` (least squares on sin and cos), away from the edges.
    static func amplitude(of frequency: Double, in x: [Float], rate: Int, margin: Int) -> Double {
        var ss = 0.0, sc = 0.0, cc = 0.0, xs = 0.0, xc = 0.0
        for n in margin..<(x.count - margin) {
            let phase = 2 * .pi * frequency * Double(n) / Double(rate)
            let s = sin(phase), c = cos(phase), v = Double(x[n])
            ss += s * s; cc += c * c; sc += s * c; xs += v * s; xc += v * c
        }
        let det = ss * cc - sc * sc
        let a = (xs * cc - xc * sc) / det, b = (xc * ss - xs * sc) / det
        return (a * a + b * b).squareRoot()
    }

    static func rms(_ x: ArraySlice<Float>) -> Double {
        (x.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(x.count)).squareRoot()
    }

    static let rates = [8000, 11025, 22050, 32000, 44100, 48000, 96000, 12345]

    @Test(arguments: rates)
    func passbandIsFlatWithinATenthOfADecibel(inputRate: Int) {
        let limit = 0.45 * Double(min(inputRate, 16000))
        for frequency in [100, 1000, 3000, limit * 0.8, limit] {
            let x = Self.tone(frequency, rate: inputRate, seconds: 0.5)
            let y = Resampler.resample(x, from: inputRate, to: 16000)
            let gain = Self.amplitude(of: frequency, in: y, rate: 16000, margin: 1000) / 0.5
            let dB = 20 * log10(gain)
            #expect(abs(dB) <= 0.1, "\(inputRate) Hz → 16 kHz, \(frequency) Hz: \(dB) dB")
        }
    }

    @Test(arguments: rates.filter { $0 > 16000 })
    func tonesAboveTheOutputNyquistAreAttenuatedBy80dB(inputRate: Int) {
        for frequency in stride(from: 8000.0, to: Double(inputRate) / 2, by: Double(inputRate) / 2 / 9) {
            let x = Self.tone(frequency, rate: inputRate, seconds: 0.5)
            let y = Resampler.resample(x, from: inputRate, to: 16000)
            let level = 20 * log10(Self.rms(y[1000..<(y.count - 1000)]) / (0.5 / 2.0.squareRoot()))
            #expect(level <= -80, "\(inputRate) Hz → 16 kHz, \(frequency) Hz tone: \(level) dB")
        }
    }

    @Test func toneFrom44100HasSNROver80dB() {
        let x = Self.tone(1000, rate: 44100, seconds: 1)
        let y = Resampler.resample(x, from: 44100, to: 16000)
        #expect(y.count == 16000)
        let expected = Self.tone(1000, rate: 16000, seconds: 1)
        var signal = 0.0, noise = 0.0
        for n in 500..<(y.count - 500) {
            signal += Double(expected[n]) * Double(expected[n])
            noise += (Double(y[n]) - Double(expected[n])) * (Double(y[n]) - Double(expected[n]))
        }
        let snr = 10 * log10(signal / noise)
        #expect(snr >= 80, "SNR \(snr) dB")
    }

    @Test func upsamplingKeepsTheTone() {
        let x = Self.tone(440, rate: 8000, seconds: 0.5)
        let y = Resampler.resample(x, from: 8000, to: 16000)
        #expect(y.count == 8000)
        let expected = Self.tone(440, rate: 16000, seconds: 0.5)
        let error = (300..<7700).map { abs(y[$0] - expected[$0]) }.max()!
        #expect(error < 1e-3)
    }

    @Test(arguments: [44100, 12345, 8000, 96000])
    func streamingIsBitIdenticalToOneShot(inputRate: Int) {
        var generator = SystemRandomNumberGenerator()
        let x = (0..<(inputRate / 2)).map { _ in Float.random(in: -1...1, using: &generator) }
        let oneShot = Resampler.resample(x, from: inputRate, to: 16000)
        #expect(oneShot.count == Int((Double(x.count) * 16000 / Double(inputRate)).rounded(.up)))
        for blockSize in [1, 7, 100, 4096, 65536] {
            var r = Resampler(inputRate: inputRate, outputRate: 16000)
            var streamed: [Float] = []
            var start = 0
            while start < x.count {
                let end = min(x.count, start + blockSize)
                streamed += r.process(Array(x[start..<end]))
                start = end
            }
            streamed += r.finish()
            #expect(streamed == oneShot, "block size \(blockSize)")
        }
    }

    @Test func unusualRatioWithInterpolatedKernelStillMeetsTheBar() {
        // 44101 and 16000 are coprime: 16000 phases, more than the table holds, so rows are interpolated.
        let r = Resampler(inputRate: 44101, outputRate: 16000)
        #expect(r.tableRows < r.phases)
        let x = Self.tone(1000, rate: 44101, seconds: 0.5)
        let y = Resampler.resample(x, from: 44101, to: 16000)
        let dB = 20 * log10(Self.amplitude(of: 1000, in: y, rate: 16000, margin: 1000) / 0.5)
        #expect(abs(dB) <= 0.1)
        let alias = Resampler.resample(Self.tone(12000, rate: 44101, seconds: 0.5), from: 44101, to: 16000)
        #expect(20 * log10(Self.rms(alias[1000..<(alias.count - 1000)]) / (0.5 / 2.0.squareRoot())) <= -80)
    }

    @Test func sameRateIsTheIdentity() {
        let x: [Float] = [1, 2, 3]
        #expect(Resampler.resample(x, from: 16000, to: 16000) == x)
    }
}
