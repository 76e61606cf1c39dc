import CKernels
import Foundation

/// How a `Transcriber`'s forward passes run: how many threads share each pass and which attention implementation
/// is used. A property of each `Transcriber` (two loaded side by side may differ), not of the process.
public struct ExecutionOptions: Sendable, Equatable {
    /// Which attention implementation runs.
    public enum Attention: String, Sendable, CaseIterable {
        /// The fused kernel where the CPU has AVX-512, else BLAS products and a softmax per head.
        case automatic
        /// The fused C kernel (scores kept per block of 32 queries; correct everywhere, fast with AVX-512).
        case fused
        /// Two BLAS products and a softmax per head.
        case blas
    }

    /// Threads that share one forward pass (nil: every core). Products, norms and activations are split across
    /// them; results do not depend on the count beyond rounding (parity tests hold for any).
    public var threads: Int?
    /// The attention implementation (both are exact to 1e-4 against transformers).
    public var attention: Attention

    /// Options with `threads` (raised to at least 1; nil: every core) and the `attention` path.
    public init(threads: Int? = nil, attention: Attention = .automatic) {
        self.threads = threads.map { max(1, $0) }
        self.attention = attention
    }

    /// Whether this runs the fused attention kernel.
    var fusedAttention: Bool {
        switch attention {
        case .automatic: asr_attention_is_fast() != 0
        case .fused: true
        case .blas: false
        }
    }
}

/// The thread count of the forward pass running on this thread or task, read where work is split (`BLAS.threads`).
/// Bound by `Transcriber` around each pass, so the count travels with the call instead of living in a global.
enum ThreadBudget {
    @TaskLocal static var current: Int?
}
