import CKernels

/// Element-wise exp, exact GELU and row softmax over Float buffers, through the vectorised C kernels (Sources/CKernels).
///
/// The forward pass calls these tens of millions of times per audio minute (every conv activation and every
/// attention score), where libm's scalar `expf`/`erff` cost more than the matrix products around them.
/// Accuracy (checked in VectorMathTests against libm): exp relative error < 3e-7 on [-87, 88], erf absolute
/// error < 3e-7 — far below the 1e-4 the model is held to.
enum VectorMath {
    /// In place: e^x.
    static func exp(_ buffer: UnsafeMutableBufferPointer<Float>) {
        guard let base = buffer.baseAddress else { return }
        asr_exp(base, buffer.count)
    }

    /// In place: x · Φ(x) = 0.5 · x · (1 + erf(x / √2)).
    static func gelu(_ buffer: UnsafeMutableBufferPointer<Float>) {
        guard let base = buffer.baseAddress else { return }
        asr_gelu(base, buffer.count)
    }

    /// In place: the softmax of each of `rows` rows of `cols` floats (max subtracted first).
    static func softmaxRows(_ buffer: UnsafeMutableBufferPointer<Float>, rows: Int, cols: Int) {
        precondition(buffer.count >= rows * cols)
        guard let base = buffer.baseAddress, rows > 0, cols > 0 else { return }
        asr_softmax_rows(base, rows, cols)
    }
}
