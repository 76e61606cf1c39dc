import CKernels
import Foundation

/// Anything that can hand out named tensors: a safetensors file today; PyTorch files and shards can join later.
protocol TensorSource: Sendable {
    /// Names and shapes of every tensor the source holds.
    var shapes: [String: [Int]] { get }
    /// The tensor as Float.
    func floats(_ name: String) throws -> [Float]
    /// Storage types of the tensors ("F32", "F16", ...), for display.
    var storageTypes: [String] { get }
    /// The tensor as Float storage: read in place where the file allows it, else a converted copy.
    func storage(_ name: String) throws -> FloatStorage
}

extension TensorSource {
    func storage(_ name: String) throws -> FloatStorage { FloatStorage(copying: try floats(name)) }
}

extension SafeTensorsFile: TensorSource {
    var shapes: [String: [Int]] { tensors.mapValues(\.shape) }

    func storage(_ name: String) throws -> FloatStorage {
        guard let info = tensors[name] else { throw ASRError.missingTensor(name: name) }
        if let mapped = mappedFloats(info) { return mapped }
        return FloatStorage(copying: try floats(name))
    }
    var storageTypes: [String] { Array(Set(tensors.values.map(\.dtype.rawValue))).sorted() }
}

/// Reads tensors by checkpoint key, checks each shape against what the configuration implies, and at the end
/// refuses tensors nobody asked for. All layout fixes (weight-norm folding, reordering conv kernels) happen here.
struct CheckpointLoader {
    let source: TensorSource
    /// "wav2vec2." for Wav2Vec2ForCTC checkpoints.
    let prefix: String
    private(set) var used = Set<String>()
    /// Problems worth telling the user that do not stop loading (NaN or infinite weights).
    private(set) var warnings: [String] = []
    /// Tensors training leaves behind that inference never reads.
    static let ignorable: Set<String> = ["masked_spec_embed"]

    init(source: TensorSource, prefix: String) {
        self.source = source
        self.prefix = prefix
    }

    /// The tensor stored under `prefix + key`, which must have exactly `shape`.
    mutating func tensor(_ key: String, shape: [Int], prefixed: Bool = true) throws -> [Float] {
        let name = try claim(key, shape: shape, prefixed: prefixed)
        let values = try source.floats(name)
        values.withUnsafeBufferPointer { checkFinite($0, name) }
        return values
    }

    /// Like `tensor`, but read in place when the checkpoint stores it as aligned little-endian F32.
    mutating func storage(_ key: String, shape: [Int], prefixed: Bool = true) throws -> FloatStorage {
        let name = try claim(key, shape: shape, prefixed: prefixed)
        let values = try source.storage(name)
        checkFinite(values.buffer, name)
        return values
    }

    /// Checks the tensor exists with `shape`, marks it used, and returns its full name.
    private mutating func claim(_ key: String, shape: [Int], prefixed: Bool) throws -> String {
        let name = prefixed ? prefix + key : key
        guard let found = source.shapes[name] else { throw ASRError.missingTensor(name: name) }
        guard found == shape else { throw ASRError.tensorShapeMismatch(name: name, expected: shape, found: found) }
        used.insert(name)
        return name
    }

    /// Every weight is read once here; for a memory-mapped checkpoint this is also what brings it into memory.
    private mutating func checkFinite(_ values: UnsafeBufferPointer<Float>, _ name: String) {
        let nonFinite = Self.countNonFinite(values)
        if nonFinite > 0 { warnings.append("tensor '\(name)' has \(nonFinite) NaN or infinite values") }
    }

    /// NaN and infinite values in `values`; large tensors are scanned in parallel.
    static func countNonFinite(_ values: UnsafeBufferPointer<Float>) -> Int {
        guard let base = values.baseAddress else { return 0 }
        let shared = SharedPointer(base: UnsafeMutablePointer(mutating: base))
        return Parallel.sum(values.count, minimumPerPart: 1 << 18, alignment: 16) { part in
            asr_count_nonfinite(shared.base + part.lowerBound, part.count)
        }
    }

    func has(_ key: String) -> Bool { source.shapes[prefix + key] != nil }

    mutating func linear(_ key: String, inFeatures: Int, outFeatures: Int, bias: Bool = true, prefixed: Bool = true) throws -> Linear {
        Linear(
            weight: try storage(key + ".weight", shape: [outFeatures, inFeatures], prefixed: prefixed),
            bias: bias ? try tensor(key + ".bias", shape: [outFeatures], prefixed: prefixed) : nil,
            inFeatures: inFeatures, outFeatures: outFeatures)
    }

    mutating func norm(_ key: String, channels: Int, eps: Float) throws -> NormParameters {
        NormParameters(
            weight: try tensor(key + ".weight", shape: [channels]),
            bias: try tensor(key + ".bias", shape: [channels]),
            eps: eps)
    }

    /// PyTorch Conv1d weight (out, in, kernel) → (out, kernel · in) with element [o][k][c] = W[o][c][k], the
    /// order in which a time-major input window lies in memory.
    static func reorderConvKernel(_ w: [Float], out: Int, in channels: Int, kernel: Int) -> [Float] {
        var reordered = [Float](repeating: 0, count: w.count)
        reordered.withUnsafeMutableBufferPointer { reordered in
            w.withUnsafeBufferPointer { w in
                for o in 0..<out {
                    for c in 0..<channels {
                        for k in 0..<kernel {
                            reordered[(o * kernel + k) * channels + c] = w[(o * channels + c) * kernel + k]
                        }
                    }
                }
            }
        }
        return reordered
    }

    /// The positional convolution's weight-normed kernel W = g · v / ‖v‖ (weight_norm with dim=2: one norm per
    /// kernel tap, over the output and input channels). Found under the hub's `weight_g`/`weight_v` or
    /// transformers 5's `parametrizations.weight.original0`/`original1`.
    mutating func weightNormedConv(_ key: String, out: Int, in channels: Int, kernel: Int) throws -> [Float] {
        let (gKey, vKey): (String, String)
        if has(key + ".weight_g") || has(key + ".weight_v") {
            (gKey, vKey) = (key + ".weight_g", key + ".weight_v")
        } else if has(key + ".parametrizations.weight.original0") || has(key + ".parametrizations.weight.original1") {
            (gKey, vKey) = (key + ".parametrizations.weight.original0", key + ".parametrizations.weight.original1")
        } else if has(key + ".weight") {
            // Already folded (a checkpoint exported without weight norm).
            return try tensor(key + ".weight", shape: [out, channels, kernel])
        } else {
            throw ASRError.missingTensor(name: prefix + key + ".weight_g")
        }
        let g = try tensor(gKey, shape: [1, 1, kernel])
        let v = try tensor(vKey, shape: [out, channels, kernel])
        // w = g · v / ‖v‖ with the norm over all dims but the kernel position (dim=2). One sequential pass for the
        // norms and one for the scaling (a pass per kernel position would stride through all of v 128 times).
        var norms = [Double](repeating: 0, count: kernel)
        var w = v
        w.withUnsafeMutableBufferPointer { values in
            norms.withUnsafeMutableBufferPointer { norms in
                for i in 0..<(out * channels) {
                    for k in 0..<kernel { let x = Double(values[i * kernel + k]); norms[k] += x * x }
                }
            }
            let scales = (0..<kernel).map { Float(Double(g[$0]) / norms[$0].squareRoot()) }
            scales.withUnsafeBufferPointer { scales in
                for i in 0..<(out * channels) {
                    for k in 0..<kernel { values[i * kernel + k] *= scales[k] }
                }
            }
        }
        return w
    }

    /// Throws when the checkpoint holds tensors that were never read: a sign of a different architecture, which we
    /// would otherwise run silently wrong.
    func checkAllUsed() throws {
        let unused = source.shapes.keys.filter { name in
            !used.contains(name) && !Self.ignorable.contains(String(name.dropFirst(name.hasPrefix(prefix) ? prefix.count : 0)))
        }
        if !unused.isEmpty { throw ASRError.unexpectedTensors(names: unused.sorted()) }
    }
}
