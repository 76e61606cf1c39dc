import Foundation
import Testing
@testable import ASRKit

@Suite struct VectorMathTests {
    @Test func expMatchesLibm() {
        var values = stride(from: Float(-87), through: 88, by: 0.0137).map { $0 }
        let reference = values.map { Double(expf($0)) }
        values.withUnsafeMutableBufferPointer { VectorMath.exp($0) }
        let worst = zip(values, reference).map { abs(Double($0) - $1) / $1 }.max()!
        #expect(worst < 3e-7, "relative error \(worst)")
    }

    @Test func geluMatchesTheErfDefinition() {
        var values = stride(from: Float(-12), through: 12, by: 0.0011).map { $0 }
        let reference = values.map { v in 0.5 * Double(v) * (1 + Foundation.erf(Double(v) / 2.0.squareRoot())) }
        values.withUnsafeMutableBufferPointer { VectorMath.gelu($0) }
        let worst = zip(values, reference).map { abs(Double($0) - $1) }.max()!
        #expect(worst < 2e-6, "absolute error \(worst)")
        // Odd tails (not a multiple of 16) get the same treatment.
        var tail: [Float] = [1, -1, 0.5]
        tail.withUnsafeMutableBufferPointer { VectorMath.gelu($0) }
        #expect(abs(tail[0] - 0.841_344_7) < 1e-6 && abs(tail[1] + 0.158_655_25) < 1e-6)
    }

    @Test(arguments: [1, 15, 16, 17, 499])
    func softmaxMatchesTheDefinition(cols: Int) {
        let rows = 3
        // Wide range (large scores must not overflow), rows differ in scale, ties included.
        var values = (0..<(rows * cols)).map { i in Float((i * 7919) % 1013) / 1013 * 60 - 20 + Float(i / cols) * 40 }
        if cols > 2 { values[1] = values[0] }
        var reference = [Double]()
        for r in 0..<rows {
            let row = values[(r * cols)..<((r + 1) * cols)].map(Double.init)
            let top = row.max()!
            let exps = row.map { Foundation.exp($0 - top) }
            let sum = exps.reduce(0, +)
            reference += exps.map { $0 / sum }
        }
        values.withUnsafeMutableBufferPointer { VectorMath.softmaxRows($0, rows: rows, cols: cols) }
        let worst = zip(values, reference).map { abs(Double($0) - $1) }.max()!
        #expect(worst < 1e-6, "absolute error \(worst)")
        for r in 0..<rows {
            let sum = values[(r * cols)..<((r + 1) * cols)].reduce(Float(0), +)
            #expect(abs(sum - 1) < 1e-5)
        }
    }

    /// LayerNorm rows (the C kernel with 16-lane float sums) against the definition in Double, including rows whose
    /// mean is large next to their spread (the residual stream of deep models), where one-pass formulas lose digits;
    /// in place and out of place alike. 1024 rows of 768 take both threads' split.
    @Test(arguments: [(3, 768, Float(0)), (5, 7, Float(3)), (2, 33, Float(-50)), (4, 1024, Float(1000)), (1024, 768, Float(1))])
    func layerNormMatchesTheDefinition(rows: Int, cols: Int, offset: Float) {
        var values = (0..<(rows * cols)).map { i in offset + Float((i * 7919) % 1013) / 1013 * 4 - 2 + Float(i / cols) }
        let weight = (0..<cols).map { Float($0 % 5) * 0.3 + 0.5 }, bias = (0..<cols).map { Float($0 % 3) - 1 }
        var reference = [Double]()
        for r in 0..<rows {
            let row = values[(r * cols)..<((r + 1) * cols)].map(Double.init)
            let mean = row.reduce(0, +) / Double(cols)
            let variance = row.map { ($0 - mean) * ($0 - mean) }.reduce(0, +) / Double(cols)
            reference += row.enumerated().map { j, v in (v - mean) / (variance + 1e-5).squareRoot() * Double(weight[j]) + Double(bias[j]) }
        }
        let input = Matrix(rows: rows, cols: cols, storage: values)
        var matrix = input
        let norm = NormParameters(weight: weight, bias: bias, eps: 1e-5)
        norm.layerNorm(&matrix)
        // The out-of-place form (pre-LN layers) gives the same floats and leaves its input as it was.
        let normalized = norm.normalized(input)
        #expect(normalized.storage == matrix.storage && input.storage == values)
        values = matrix.storage
        let worst = zip(values, reference).map { abs(Double($0) - $1) }.max()!
        print("layer norm \(rows)×\(cols), offset \(offset): max |Δ| \(worst)")
        // Rows whose mean is in the hundreds or more keep float's relative precision, not an absolute 1e-5.
        let largestMean = abs(offset) + Float(rows)
        #expect(worst < (largestMean >= 500 ? 1e-4 : 1e-5), "\(rows)×\(cols), offset \(offset): max |Δ| \(worst)")
    }

    /// The residual additions, split across threads, against the same sums element by element (sizes on both sides
    /// of the split, and an odd tail).
    @Test(arguments: [7, 1 << 15, (1 << 16) + 3, 499 * 768])
    func residualAdditionsMatchElementwiseSums(count: Int) {
        let a = (0..<count).map { Float(($0 * 7919) % 1013) / 100 - 5 }, b = (0..<count).map { Float(($0 * 104_729) % 997) / 50 - 10 }
        var sum = Matrix(rows: 1, cols: count, storage: a)
        sum.add(Matrix(rows: 1, cols: count, storage: b))
        #expect(sum.storage == zip(a, b).map { $0 + $1 })
        var scaled = Matrix(rows: 1, cols: count, storage: a)
        scaled.add(Matrix(rows: 1, cols: count, storage: b), scaledBy: 0.5)
        #expect(scaled.storage == zip(a, b).map { $1 * 0.5 + $0 })
    }

    /// The load-time weight scan: NaN and ±inf anywhere (first, last, both sides of the parallel split) are counted;
    /// the largest finite values, subnormals and zeros are not.
    @Test func nonFiniteWeightsAreCountedWherever() {
        var values = (0..<((1 << 20) + 13)).map { Float($0 % 97) - 48 }
        values[5] = .greatestFiniteMagnitude
        values[6] = -.greatestFiniteMagnitude
        values[7] = .leastNonzeroMagnitude
        values[8] = -0.0
        #expect(values.withUnsafeBufferPointer { CheckpointLoader.countNonFinite($0) } == 0)
        let half = values.count / 2
        for (i, v) in [(0, Float.nan), (half - 1, .infinity), (half, -.infinity), (half + 1, .signalingNaN),
                       (values.count - 1, -.nan)] {
            values[i] = v
        }
        #expect(values.withUnsafeBufferPointer { CheckpointLoader.countNonFinite($0) } == 5)
        #expect(values.withUnsafeBufferPointer { CheckpointLoader.countNonFinite(UnsafeBufferPointer(rebasing: $0[1..<2])) } == 0)
    }
}
