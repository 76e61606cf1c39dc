import Foundation

/// Element-wise exp and GELU over Float buffers, 16 lanes at a time.
///
/// The forward pass calls these tens of millions of times per audio minute (every conv activation and every
/// attention score), where libm's scalar `expf`/`erff` cost more than the matrix products around them.
/// Accuracy (checked in VectorMathTests against libm): exp within 2 ulp-ish (relative error < 3e-7 on [-87, 88]),
/// erf within 3e-7 absolute — far below the 1e-4 the model is held to.
enum VectorMath {
    typealias V = SIMD16<Float>

    /// e^x: x = n·ln2 + r with |r| ≤ ln2/2, e^r by a degree-6 polynomial, 2^n through the exponent bits.
    @inline(__always)
    static func exp(_ x: V) -> V {
        let clamped = x.clamped(lowerBound: V(repeating: -87.33), upperBound: V(repeating: 88.72))
        let n = (clamped * 1.442_695_04).rounded(.toNearestOrEven)
        // Cody–Waite: ln2 split in a part exact in Float and a correction.
        let r = clamped - n * 0.693_145_75 - n * 1.428_606_8e-6
        var p = V(repeating: 1.0 / 720)
        p = p * r + 1.0 / 120
        p = p * r + 1.0 / 24
        p = p * r + 1.0 / 6
        p = p * r + 0.5
        p = p * r + 1
        p = p * r + 1
        let exponent = (SIMD16<Int32>(n, rounding: .towardZero) &+ 127) &<< 23
        return p * unsafeBitCast(exponent, to: V.self)
    }

    /// erf(x), Abramowitz & Stegun 7.1.26 (absolute error ≤ 1.5e-7).
    @inline(__always)
    static func erf(_ x: V) -> V {
        let signMask = SIMD16<UInt32>(repeating: 0x8000_0000)
        let bits = unsafeBitCast(x, to: SIMD16<UInt32>.self)
        let a = unsafeBitCast(bits & ~signMask, to: V.self)
        let one = V(repeating: 1)
        let t: V = one / (one + 0.327_591_1 * a)
        var poly = V(repeating: 1.061_405_429)
        poly = poly * t - 1.453_152_027
        poly = poly * t + 1.421_413_741
        poly = poly * t - 0.284_496_736
        poly = poly * t + 0.254_829_592
        poly = poly * t
        let square: V = a * a
        let y: V = one - poly * VectorMath.exp(-square)
        return unsafeBitCast(unsafeBitCast(y, to: SIMD16<UInt32>.self) | (bits & signMask), to: V.self)
    }

    /// In place: x · Φ(x) = 0.5 · x · (1 + erf(x / √2)), the exact (erf) GELU.
    static func gelu(_ buffer: UnsafeMutableBufferPointer<Float>) {
        apply(buffer) { x in 0.5 * x * (1 + erf(x * 0.707_106_781_186_547_5)) }
    }

    /// In place: e^x.
    static func exp(_ buffer: UnsafeMutableBufferPointer<Float>) {
        apply(buffer) { exp($0) }
    }

    @inline(__always)
    static func apply(_ buffer: UnsafeMutableBufferPointer<Float>, _ vector: (V) -> V) {
        guard let base = buffer.baseAddress else { return }
        let raw = UnsafeMutableRawPointer(base)
        var i = 0
        while i + 16 <= buffer.count {
            let v = raw.loadUnaligned(fromByteOffset: i * 4, as: V.self)
            raw.storeBytes(of: vector(v), toByteOffset: i * 4, as: V.self)
            i += 16
        }
        // The tail goes through the vector path too (padded), so every element gets the same arithmetic.
        if i < buffer.count {
            var tail = V()
            for j in i..<buffer.count { tail[j - i] = base[j] }
            let out = vector(tail)
            for j in i..<buffer.count { base[j] = out[j - i] }
        }
    }
}
