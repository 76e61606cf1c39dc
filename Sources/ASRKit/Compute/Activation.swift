import Foundation

/// Element-wise activations, named as in transformers' `ACT2FN`.
enum Activation: Sendable, Equatable {
    case gelu          // exact: x · Φ(x) with erf
    case geluTanh      // "gelu_new" / "gelu_pytorch_tanh": the tanh approximation
    case geluFast      // "gelu_fast": the same approximation written differently
    case quickGelu     // x · σ(1.702 x)
    case relu
    case silu          // "silu" / "swish"
    case tanh
    case sigmoid
    case identity      // "linear"

    static let supportedNames = [
        "gelu", "gelu_new", "gelu_pytorch_tanh", "gelu_fast", "quick_gelu", "relu", "silu", "swish", "tanh", "sigmoid",
        "linear",
    ]

    init?(name: String) {
        switch name {
        case "gelu": self = .gelu
        case "gelu_new", "gelu_pytorch_tanh": self = .geluTanh
        case "gelu_fast": self = .geluFast
        case "quick_gelu": self = .quickGelu
        case "relu": self = .relu
        case "silu", "swish": self = .silu
        case "tanh": self = .tanh
        case "sigmoid": self = .sigmoid
        case "linear": self = .identity
        default: return nil
        }
    }

    /// σ(v) = 1 / (1 + e^−v), as torch.sigmoid: also the gate of GLU (Conformer) and of WavLM's position bias.
    @inline(__always) static func sigmoid(_ v: Float) -> Float { 1 / (1 + expf(-v)) }

    /// Applies the activation in place.
    func apply(_ x: UnsafeMutableBufferPointer<Float>) {
        switch self {
        case .gelu:
            VectorMath.gelu(x)
        case .geluTanh:
            let c: Float = 0.79788456080286536  // sqrt(2 / pi)
            for i in x.indices { let v = x[i]; x[i] = 0.5 * v * (1 + tanhf(c * (v + 0.044715 * v * v * v))) }
        case .geluFast:
            for i in x.indices { let v = x[i]; x[i] = 0.5 * v * (1 + tanhf(v * 0.7978845608 * (1 + 0.044715 * v * v))) }
        case .quickGelu:
            for i in x.indices { let v = x[i]; x[i] = v / (1 + expf(-1.702 * v)) }
        case .relu:
            for i in x.indices { x[i] = max(x[i], 0) }
        case .silu:
            for i in x.indices { let v = x[i]; x[i] = v / (1 + expf(-v)) }
        case .tanh:
            for i in x.indices { x[i] = tanhf(x[i]) }
        case .sigmoid:
            for i in x.indices { x[i] = Self.sigmoid(x[i]) }
        case .identity:
            break
        }
    }
}
