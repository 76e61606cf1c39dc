import Foundation

/// Band-limited sample-rate conversion between any two rates, streaming.
///
/// Design: polyphase windowed sinc. Output sample j sits at input time t = j · inRate / outRate; it is the dot
/// product of the input around t with a Kaiser-windowed sinc whose cutoff is 0.475 × the lower of the two rates
/// and whose transition band is 0.05 × that rate wide (so 0.45 × rate is in the passband and the Nyquist
/// frequency is in the stopband). Kaiser β and the length follow Kaiser's formulas for 90 dB of stopband
/// attenuation, leaving margin over the 80 dB we test. The ratio is reduced to L/M; the kernel is tabulated for each
/// of the L fractional positions (or, for very large L, for 4096 positions with linear interpolation between
/// neighbouring rows). The filter is symmetric around t, so the output has no delay: timestamps need no correction.
///
/// Streaming: input arrives in blocks of any size; the resampler keeps the input history the filter still needs
/// and emits each output sample as soon as its whole window has arrived. Every output sample is the same dot
/// product over the same values in the same order whatever the blocks, so streamed output is bit-identical to a
/// one-shot run. `finish()` pads the end with zeros and returns the remaining samples, so the total output is
/// ceil(inputCount · outRate / inRate) samples.
public struct Resampler: Sendable {
    /// Samples per second of the input.
    public let inputRate: Int
    /// Samples per second of the output.
    public let outputRate: Int
    /// Reduced ratio: output j is at input position j · step / phases.
    let phases: Int, step: Int
    /// Taps on each side of the centre (in input samples).
    let halfTaps: Int
    /// Kernel rows: `tableRows` rows of 2·halfTaps taps; row r is for fractional position r / tableRows.
    let table: [Float]
    let tableRows: Int

    // Streaming state.
    /// Input samples not yet discarded; `buffer[0]` is input sample `bufferStart`.
    private var buffer: [Float] = []
    private var bufferStart = 0
    private var inputCount = 0
    private var nextOutput = 0

    /// Stopband attenuation in dB that the Kaiser window is designed for.
    public static let stopbandAttenuation = 90.0
    /// Passband and stopband edges as fractions of the lower rate (0.45 and 0.5: Nyquist is in the stopband).
    public static let passbandEdge = 0.45, stopbandEdge = 0.5
    static let maxTableRows = 4096

    /// A converter from `inputRate` to `outputRate` samples per second; both must be positive.
    public init(inputRate: Int, outputRate: Int) {
        precondition(inputRate > 0 && outputRate > 0)
        self.inputRate = inputRate
        self.outputRate = outputRate
        let g = Self.gcd(inputRate, outputRate)
        phases = outputRate / g
        step = inputRate / g

        // Filter design in units of input samples.
        let lower = Double(min(inputRate, outputRate))
        let cutoff = (Self.passbandEdge + Self.stopbandEdge) / 2 * lower / Double(inputRate)   // cycles / input sample
        let transition = (Self.stopbandEdge - Self.passbandEdge) * lower / Double(inputRate)
        let a = Self.stopbandAttenuation
        let beta = 0.1102 * (a - 8.7)
        let length = (a - 7.95) / (2.285 * 2 * Double.pi * transition)
        halfTaps = max(2, Int((length / 2).rounded(.up)))
        let halfWidth = Double(halfTaps)

        tableRows = phases <= Self.maxTableRows ? phases : Self.maxTableRows
        let rowsToBuild = phases <= Self.maxTableRows ? tableRows : tableRows + 1  // +1: the row for fraction 1.0
        let taps = 2 * halfTaps
        var table = [Float](repeating: 0, count: rowsToBuild * taps)
        let i0Beta = Self.besselI0(beta)
        for row in 0..<rowsToBuild {
            let fraction = Double(row) / Double(tableRows)
            // Tap i multiplies input sample floor(t) - halfTaps + 1 + i, at distance τ = t - that sample.
            for i in 0..<taps {
                let tau = fraction + Double(halfTaps - 1 - i)
                let x = tau / halfWidth
                guard abs(x) < 1 else { continue }
                let window = Self.besselI0(beta * (1 - x * x).squareRoot()) / i0Beta
                let arg = 2 * cutoff * tau
                let sinc = arg == 0 ? 1 : sin(Double.pi * arg) / (Double.pi * arg)
                table[row * taps + i] = Float(2 * cutoff * sinc * window)
            }
        }
        self.table = table
    }

    /// Resamples a whole signal at once.
    public static func resample(_ samples: [Float], from inputRate: Int, to outputRate: Int) -> [Float] {
        if inputRate == outputRate { return samples }
        var resampler = Resampler(inputRate: inputRate, outputRate: outputRate)
        return resampler.process(samples) + resampler.finish()
    }

    /// Feeds input; returns every output sample whose window is now complete.
    public mutating func process(_ input: [Float]) -> [Float] {
        buffer += input
        inputCount += input.count
        return emit(available: inputCount)
    }

    /// Ends the stream: the input is taken as zero past its end. Returns the remaining output.
    public mutating func finish() -> [Float] {
        let total = (inputCount * phases + step - 1) / step   // ceil(inputCount · out / in)
        let needed = total > 0 ? Self.window(of: total - 1, step: step, phases: phases).upper(halfTaps) : 0
        if needed > inputCount {
            buffer += [Float](repeating: 0, count: needed - inputCount)
        }
        let out = emit(available: max(needed, inputCount), limit: total)
        buffer = []
        bufferStart = 0
        inputCount = 0
        nextOutput = 0
        return out
    }

    /// Output j needs input samples [floor(t) - halfTaps + 1, floor(t) + halfTaps] with t = j · step / phases.
    private static func window(of j: Int, step: Int, phases: Int) -> (base: Int, fraction: Int, upper: (Int) -> Int) {
        let position = j * step
        let base = position / phases
        return (base, position % phases, { base + $0 + 1 })
    }

    private mutating func emit(available: Int, limit: Int = .max) -> [Float] {
        var out: [Float] = []
        let taps = 2 * halfTaps
        buffer.withUnsafeBufferPointer { input in
            table.withUnsafeBufferPointer { kernel in
                while nextOutput < limit {
                    let (base, fraction, upper) = Self.window(of: nextOutput, step: step, phases: phases)
                    guard upper(halfTaps) <= available else { break }
                    let first = base - halfTaps + 1   // negative at the very start: those samples are zero
                    let skip = max(0, -first)
                    let x = input.baseAddress! + (first - bufferStart)
                    var sum: Float = 0
                    if phases == tableRows {
                        let row = kernel.baseAddress! + fraction * taps
                        sum = skip == 0 ? Self.dot(row, x, taps) : (skip..<taps).reduce(0) { $0 + row[$1] * x[$1] }
                    } else {
                        // Interpolate between the two table rows around the exact fraction.
                        let exact = Double(fraction) / Double(phases) * Double(tableRows)
                        let r = min(Int(exact), tableRows - 1)
                        let w = Float(exact - Double(r))
                        let row0 = kernel.baseAddress! + r * taps, row1 = row0 + taps
                        for i in skip..<taps { sum += (row0[i] + w * (row1[i] - row0[i])) * x[i] }
                    }
                    out.append(sum)
                    nextOutput += 1
                }
            }
        }
        // Drop history no future output can reach.
        let nextFirst = Self.window(of: nextOutput, step: step, phases: phases).base - halfTaps + 1
        let drop = min(buffer.count, max(0, nextFirst - bufferStart))
        if drop > 0 {
            buffer.removeFirst(drop)
            bufferStart += drop
        }
        return out
    }

    /// Σ a[i]·b[i] with four 8-wide accumulators, in a fixed order (so results never depend on the caller).
    @inline(__always)
    static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, _ count: Int) -> Float {
        let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
        var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>(), s3 = SIMD8<Float>()
        var i = 0
        let stride = MemoryLayout<Float>.stride
        while i + 32 <= count {
            s0 += ra.loadUnaligned(fromByteOffset: i * stride, as: SIMD8<Float>.self) * rb.loadUnaligned(fromByteOffset: i * stride, as: SIMD8<Float>.self)
            s1 += ra.loadUnaligned(fromByteOffset: (i + 8) * stride, as: SIMD8<Float>.self) * rb.loadUnaligned(fromByteOffset: (i + 8) * stride, as: SIMD8<Float>.self)
            s2 += ra.loadUnaligned(fromByteOffset: (i + 16) * stride, as: SIMD8<Float>.self) * rb.loadUnaligned(fromByteOffset: (i + 16) * stride, as: SIMD8<Float>.self)
            s3 += ra.loadUnaligned(fromByteOffset: (i + 24) * stride, as: SIMD8<Float>.self) * rb.loadUnaligned(fromByteOffset: (i + 24) * stride, as: SIMD8<Float>.self)
            i += 32
        }
        while i + 8 <= count {
            s0 += ra.loadUnaligned(fromByteOffset: i * stride, as: SIMD8<Float>.self) * rb.loadUnaligned(fromByteOffset: i * stride, as: SIMD8<Float>.self)
            i += 8
        }
        var sum = ((s0 + s1) + (s2 + s3)).sum()
        while i < count { sum += a[i] * b[i]; i += 1 }
        return sum
    }

    private static func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }

    /// Modified Bessel function of the first kind, order 0 (power series).
    static func besselI0(_ x: Double) -> Double {
        var sum = 1.0, term = 1.0, k = 1.0
        let half = x / 2
        while true {
            term *= (half / k) * (half / k)
            sum += term
            if term < sum * 1e-17 { return sum }
            k += 1
        }
    }
}
