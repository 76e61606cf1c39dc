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
    /// The tensor's bytes as stored (little-endian, row-major) and their type, where the source holds it that way
    /// (safetensors); nil otherwise. The bytes stay valid as long as the source. This is how int8 codes and BF16
    /// weights are read without a trip through Float.
    func raw(_ name: String) -> RawTensor?
    /// Called once a tensor has been copied or converted and its stored bytes will not be read again: a
    /// memory-mapped source lets their pages go (nothing else does anything).
    func release(_ name: String)
}

/// A tensor's stored bytes, read in place.
struct RawTensor {
    let dtype: SafeTensorsDType
    let shape: [Int]
    let bytes: UnsafeRawBufferPointer
    /// The mapping `bytes` lie in, when they are a memory-mapped file's: holding it keeps them valid, so they can
    /// be used in place (an int8 checkpoint's codes) rather than copied.
    var mapping: MappedFile? = nil
}

extension TensorSource {
    func storage(_ name: String) throws -> FloatStorage { FloatStorage(copying: try floats(name)) }
    func raw(_ name: String) -> RawTensor? { nil }
    func release(_ name: String) {}
}

extension SafeTensorsFile: TensorSource {
    var shapes: [String: [Int]] { tensors.mapValues(\.shape) }

    func storage(_ name: String) throws -> FloatStorage {
        guard let info = tensors[name] else { throw ASRError.missingTensor(name: name) }
        if let mapped = mappedFloats(info) { return mapped }
        return FloatStorage(copying: try floats(name))
    }
    var storageTypes: [String] { Array(Set(tensors.values.map(\.dtype.rawValue))).sorted() }

    func raw(_ name: String) -> RawTensor? {
        #if _endian(little)
        guard let info = tensors[name] else { return nil }
        return RawTensor(dtype: info.dtype, shape: info.shape, bytes: rawBytes(info), mapping: mapping)
        #else
        return nil
        #endif
    }
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
    /// Tensors read alongside a weight (int8 scales): used, but not counted as parameters.
    private(set) var auxiliary = Set<String>()
    private var warnedDequantized = false
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
        source.release(name)  // a copy: the stored bytes are not read again
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

    /// A Linear layer with its weight in `precision` (see `weightMatrix`); the bias stays Float.
    mutating func linear(_ key: String, inFeatures: Int, outFeatures: Int, bias: Bool = true, prefixed: Bool = true,
                         precision: Precision = .fp32) throws -> Linear {
        Linear(
            weight: try weightMatrix(key + ".weight", n: outFeatures, k: inFeatures, prefixed: prefixed, precision: precision),
            bias: bias ? try tensor(key + ".bias", shape: [outFeatures], prefixed: prefixed) : nil)
    }

    /// The (n × k) weight stored under `key`, in `precision`:
    /// - int8 codes of an `asr_int8` checkpoint (I8 `key` + F32 `key_scale`, see `Int8Checkpoint`) are used as stored
    ///   for int8, and dequantized (code · scale) for fp32 or bf16, with a warning;
    /// - BF16 weights are used as stored for bf16 (their Float values round back to the same bits anyway);
    /// - anything else is read as Float (in place when the file allows it) and converted once.
    mutating func weightMatrix(_ key: String, n: Int, k: Int, prefixed: Bool = true, precision: Precision) throws -> WeightMatrix {
        let name = prefixed ? prefix + key : key
        if let raw = source.raw(name), raw.dtype == .i8 {
            _ = try claim(key, shape: [n, k], prefixed: prefixed)
            let scaleName = name + Int8Checkpoint.scaleSuffix
            guard let scaleShape = source.shapes[scaleName] else {
                throw ASRError.invalidQuantizedTensor(name: name, reason: "I8 weight without its scale tensor '\(scaleName)'")
            }
            guard scaleShape == [n] else { throw ASRError.tensorShapeMismatch(name: scaleName, expected: [n], found: scaleShape) }
            let scales = try source.floats(scaleName)
            if let bad = scales.firstIndex(where: { !($0.isFinite && $0 > 0) }) {
                throw ASRError.invalidQuantizedTensor(name: scaleName, reason: "scale \(scales[bad]) of row \(bad) is not a positive finite number")
            }
            auxiliary.insert(scaleName)
            if precision == .int8 {
                let weight = try WeightMatrix.int8(codes: raw.bytes, mapping: raw.mapping, scales: scales, n: n, k: k, name: name)
                // Codes read in place keep their pages; copied ones let them go.
                if !weight.readsMappedCodes { source.release(name) }
                return weight
            }
            defer { source.release(name) }
            if !warnedDequantized {
                warnedDequantized = true
                warnings.append("the checkpoint's weights are quantized to int8 (\(Int8Checkpoint.quantMethod)); they are "
                                + "dequantized for \(precision.rawValue) products, so results are those of the int8 weights, not of the original model")
            }
            let values = try Int8Checkpoint.dequantize(raw.bytes, scales: scales, n: n, k: k, name: name)
            return WeightMatrix(FloatStorage(copying: values), n: n, k: k, precision: precision)
        }
        if precision == .bf16, let raw = source.raw(name), raw.dtype == .bf16 {
            _ = try claim(key, shape: [n, k], prefixed: prefixed)
            let bits = OwnedBuffer<UInt16>(count: n * k)
            UnsafeMutableRawPointer(bits.pointer).copyMemory(from: raw.bytes.baseAddress!, byteCount: 2 * n * k)
            source.release(name)
            // NaN or infinity: all exponent bits set.
            var nonFinite = 0
            for i in 0..<(n * k) where bits.pointer[i] & 0x7F80 == 0x7F80 { nonFinite += 1 }
            if nonFinite > 0 { warnings.append("tensor '\(name)' has \(nonFinite) NaN or infinite values") }
            return WeightMatrix(bf16Bits: bits, n: n, k: k)
        }
        let matrix = WeightMatrix(try storage(key, shape: [n, k], prefixed: prefixed), n: n, k: k, precision: precision)
        // fp32 reads the weights in place; bf16 and int8 made their own copy.
        if precision != .fp32 { source.release(name) }
        return matrix
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
    /// Marks a tensor that the network does not use as expected (e.g. BatchNorm's `num_batches_tracked`), so that
    /// `checkAllUsed` does not refuse it; absent is fine too.
    mutating func ignore(_ key: String) {
        let name = prefix + key
        if source.shapes[name] != nil { auxiliary.insert(name) }
    }

    func checkAllUsed() throws {
        let unused = source.shapes.keys.filter { name in
            !used.contains(name) && !auxiliary.contains(name) && !Self.ignorable.contains(String(name.dropFirst(name.hasPrefix(prefix) ? prefix.count : 0)))
        }
        if !unused.isEmpty { throw ASRError.unexpectedTensors(names: unused.sorted()) }
    }
}
