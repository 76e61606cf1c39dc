import CLowPrecision
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The `asr_int8` checkpoint format that `asr quantize --precision int8` writes (documented in the README):
///
/// - the Linear weights that `--precision int8` runs in int8 (`feature_projection.projection` and, in every encoder
///   layer, `attention.{q,k,v,out}_proj` and `feed_forward.{intermediate,output}_dense`; in a Conformer's and
///   w2v-BERT's, `self_attn.linear_{q,k,v,out,pos}` and `ffn{1,2}.{intermediate,output}_dense`) are stored as I8
///   `<module>.weight` (n × k, PyTorch's layout), quantized per output channel, symmetric: codes in ±127, and an F32
///   `<module>.weight_scale` (n), one scale per output row, so that weight ≈ code · scale;
/// - every other tensor is stored as in the source checkpoint;
/// - config.json has `"quantization_config": {"quant_method": "asr_int8", "bits": 8, "scheme": "per-output-channel
///   symmetric", "modules": [...]}`.
///
/// The codes are exactly those a load of the source with `precision: .int8` computes (same function, same 127), so
/// the two give the same logits.
enum Int8Checkpoint {
    static let quantMethod = "asr_int8"
    static let scheme = "per-output-channel symmetric"
    /// `<module>.weight` → `<module>.weight_scale`.
    static let scaleSuffix = "_scale"
    static let maxCode: Int32 = 127

    /// The Linear modules stored as int8 (names after the model prefix), in checkpoint order.
    static func modules(_ c: Wav2Vec2Configuration) -> [String] {
        let perLayer = c.family == .conformer || c.family == .wav2vec2Bert
            ? ["ffn1.intermediate_dense", "ffn1.output_dense", "self_attn.linear_q", "self_attn.linear_k", "self_attn.linear_v",
               "self_attn.linear_out"] + (c.conformerPositions == .relative ? ["self_attn.linear_pos"] : [])
               + ["ffn2.intermediate_dense", "ffn2.output_dense"]
            : ["attention.q_proj", "attention.k_proj", "attention.v_proj", "attention.out_proj",
               "feed_forward.intermediate_dense", "feed_forward.output_dense"]
        return ["feature_projection.projection"]
            + (0..<c.numHiddenLayers).flatMap { n in perLayer.map { "encoder.layers.\(n).\($0)" } }
    }

    /// The `quant_method` of config.json's `quantization_config`, nil when there is none.
    static func method(in config: JSONValue) throws -> String? {
        guard let value = config.objectMembers?.first(where: { $0.0 == "quantization_config" })?.1, value != .null else { return nil }
        guard let members = value.objectMembers else {
            throw ASRError.invalidConfiguration(field: "quantization_config", reason: "expected an object")
        }
        guard let method = members.first(where: { $0.0 == "quant_method" })?.1.stringValue else {
            throw ASRError.invalidConfiguration(field: "quantization_config.quant_method", reason: "expected a string")
        }
        return method
    }

    /// Refuses a config.json whose `quantization_config` this engine cannot load (only `asr_int8`, 8 bits).
    static func checkLoadable(_ config: JSONValue?) throws {
        guard let config, let method = try method(in: config) else { return }
        guard method == quantMethod else {
            throw ASRError.unsupportedConfiguration(field: "quantization_config.quant_method", value: "\"\(method)\" (supported: \(quantMethod))")
        }
        let members = config.objectMembers?.first { $0.0 == "quantization_config" }?.1.objectMembers ?? []
        if let bits = members.first(where: { $0.0 == "bits" })?.1, bits != .integer(8) {
            throw ASRError.unsupportedConfiguration(field: "quantization_config.bits", value: "\(bits.compactDescription) (supported: 8)")
        }
    }

    /// code · scale for each element of the (n × k) codes.
    static func dequantize(_ codes: UnsafeRawBufferPointer, scales: [Float], n: Int, k: Int, name: String) throws -> [Float] {
        precondition(codes.count == n * k && scales.count == n)
        let q = codes.assumingMemoryBound(to: Int8.self)
        if let bad = q.firstIndex(of: Int8.min) {
            throw ASRError.invalidQuantizedTensor(name: name, reason: "code -128 at element \(bad); codes must lie within ±127")
        }
        return [Float](unsafeUninitializedCapacity: n * k) { out, initialized in
            for r in 0..<n {
                let s = scales[r]
                for j in 0..<k { out[r * k + j] = Float(q[r * k + j]) * s }
            }
            initialized = n * k
        }
    }
}

extension WeightMatrix {
    /// bf16 weights as stored (n × k bit patterns).
    init(bf16Bits bits: OwnedBuffer<UInt16>, n: Int, k: Int) {
        precondition(bits.count == n * k)
        let packed = Self.packs(.bf16) ? Self.packed(bits.pointer, bf16: true, n: n, k: k) : nil
        self.init(n: n, k: k, storage: packed ?? .bf16(bits))
    }

    /// int8 codes as an `asr_int8` checkpoint stores them (n × k, ±127) with one scale per row, with the row sums
    /// the products need computed here; no trip through Float. Codes in a memory-mapped file (`mapping`) are read
    /// in place, as fp32 weights are, so an int8 load costs what an fp32 load does; others are copied.
    static func int8(codes bytes: UnsafeRawBufferPointer, mapping: MappedFile? = nil, scales: [Float], n: Int, k: Int,
                     name: String) throws -> WeightMatrix {
        precondition(bytes.count == n * k && scales.count == n)
        let source = bytes.assumingMemoryBound(to: Int8.self)
        var sums = [Int32](repeating: 0, count: n)
        var rowLargest = [Int32](repeating: 0, count: n)
        // Codes packed for the matmul (VNNI) or read in place from a mapped file are only read here (for the sums);
        // others are copied on the way.
        let packs = Self.packs(.int8) && asr_packed_weights_bytes(2, Int32(n), Int32(k)) > 0
        let codes = mapping.map { OwnedBuffer(mapped: source.baseAddress!, count: n * k, mapping: $0) }
            ?? OwnedBuffer(count: packs ? 0 : n * k)
        asr_copy_weights_s8(Int32(n), Int32(k), source.baseAddress!, mapping == nil && !packs ? codes.pointer : nil, &sums,
                            &rowLargest)
        let largest = rowLargest.max() ?? 0
        if largest > Int8Checkpoint.maxCode {
            throw ASRError.invalidQuantizedTensor(name: name, reason: "holds code -128; codes must lie within ±127")
        }
        if !ReducedPrecisionKernels.int8VNNI && largest > 63 {
            // Without VNNI oneDNN sums pairs of u8×s8 products in int16 (VPMADDUBSW), which saturates for weights
            // beyond ±63 (see `ReducedPrecisionKernels.int8VNNI`): the stored 8-bit codes are requantized to 7 bits
            // here, by dequantizing them (code · scale) and quantizing the result with the same function (and 63) as
            // a load from Float. That is one rounding more than quantizing the original weights to 7 bits, so only on
            // such CPUs does this checkpoint's output differ slightly from a load of the fp32 source at int8.
            let values = try Int8Checkpoint.dequantize(bytes, scales: scales, n: n, k: k, name: name)
            return WeightMatrix(FloatStorage(copying: values), n: n, k: k, precision: .int8)
        }
        if packs, let packed = packedInt8(source.baseAddress!, scales: scales, rowSums: sums, n: n, k: k) {
            if mapping != nil { releaseMappedMemory(bytes) }  // packed: the file's codes are not read again
            return WeightMatrix(n: n, k: k, storage: packed)
        }
        precondition(!packs, "int8 codes could not be packed")
        return WeightMatrix(n: n, k: k, storage: .int8(codes, scales: scales, rowSums: sums))
    }

    /// Whether the int8 codes are read in place from a mapped checkpoint (its pages must then stay).
    var readsMappedCodes: Bool {
        if case .int8(let codes, _, _) = storage { return codes.mapping != nil }
        return false
    }

    /// Whether the weights were packed at load for oneDNN's matmul.
    var isPacked: Bool {
        switch storage {
        case .packed, .int8Packed: true
        case .fp32, .bf16, .int8: false
        }
    }

    private init(n: Int, k: Int, storage: Storage) {
        self.n = n
        self.k = k
        self.storage = storage
    }
}

/// Writes reduced-precision copies of a checkpoint directory (`asr quantize`).
///
/// - bf16: every floating-point tensor stored as BF16 in one `model.safetensors`, and config.json's `torch_dtype`
///   set to "bfloat16": what `model.to(torch.bfloat16).save_pretrained(...)` writes, so transformers loads it too.
/// - int8: the `asr_int8` format (see `Int8Checkpoint`); only this engine loads it.
///
/// The small files a model directory needs (`copiedFiles`) are copied; everything is written to a temporary
/// directory beside the output, which is renamed into place at the end.
public enum ModelQuantizer {
    /// What was written, with the sizes of the weights before and after.
    public struct Report: Sendable {
        /// The directory written.
        public let output: URL
        /// The precision the weights were stored in.
        public let precision: Precision
        /// Bytes of the source's weight files (model.safetensors, its shards, or pytorch_model.bin).
        public let inputWeightBytes: Int
        /// Bytes of the written model.safetensors.
        public let outputWeightBytes: Int
        /// The source's weight dtypes (e.g. "F32"), sorted.
        public let inputWeightTypes: [String]
        /// The written weight dtypes, sorted.
        public let outputWeightTypes: [String]
        /// Tensors written (for int8, each quantized weight's scale counts too).
        public let tensorCount: Int
        /// int8: the Linear weights stored as codes; bf16: the tensors converted to BF16.
        public let convertedCount: Int
        /// The other files copied from the source (config.json is rewritten).
        public let copiedFiles: [String]
    }

    /// Files copied beside the weights when the source has them.
    public static let copiedFiles = [
        "vocab.json", "preprocessor_config.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
    ]

    /// Quantizes the checkpoint in `input` (any layout this engine loads) into the directory `output`.
    ///
    /// Refuses an already-quantized model (an `asr_int8` or other `quantization_config`, I8 tensors, or for bf16 a
    /// checkpoint that is all BF16 already); an `output` that is `input`, contains it or lies inside it (checked
    /// before anything is read); and an `output` that exists with files in it unless `overwrite`.
    ///
    /// A new `output` appears whole (written beside it, then renamed). With `overwrite`, only the files this writes
    /// (`model.safetensors`, `config.json` and the copied files) are replaced in an existing `output`, each by an
    /// atomic rename, `config.json` last; nothing else there is ever deleted. An `output` holding files of another
    /// model that the new one would not replace (other weight files, a tokenizer file the source lacks) is refused,
    /// since the result would mix two models.
    public static func quantize(modelDirectory input: URL, to output: URL, precision: Precision, overwrite: Bool = false) throws -> Report {
        func refuse(_ reason: String) -> ASRError { .quantizationRefused(directory: input.path, reason: reason) }
        guard precision != .fp32 else { throw refuse("fp32 is not a reduced precision (choose bf16 or int8)") }
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: input.path, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw ASRError.missingModelFile(directory: input.path, file: "(the directory itself)")
        }
        // Before anything is read or written: the output must be apart from the input (a replaced output must never
        // take the input with it).
        let inputPath = canonicalPath(input), outputPath = canonicalPath(output)
        if outputPath == inputPath { throw refuse("the output directory is the input directory") }
        if isInside(inputPath, outputPath) {
            throw refuse("the output directory \(output.path) contains the input directory; choose an output outside it")
        }
        if isInside(outputPath, inputPath) {
            throw refuse("the output directory \(output.path) is inside the input directory; choose an output outside it")
        }
        let files = ModelFiles.directory(input)
        let configuration = try Wav2Vec2Configuration.decode(try files.required("config.json"))
        guard let config = try files.json("config.json"), config.objectMembers != nil else {
            throw ASRError.malformedJSON(file: "config.json", reason: "not a JSON object")
        }
        if let method = try Int8Checkpoint.method(in: config) {
            throw refuse("it is already quantized (config.json has quantization_config with quant_method \"\(method)\")")
        }
        let source = try files.weights()
        let names = source.shapes.keys.sorted()
        if let quantized = names.first(where: { source.raw($0)?.dtype == .i8 }) {
            throw refuse("it is already quantized (tensor '\(quantized)' is I8)")
        }
        if precision == .bf16, source.storageTypes == [SafeTensorsDType.bf16.rawValue] {
            throw refuse("all its weights are already BF16")
        }

        try checkOutput(output, overwrite: overwrite, writing: writtenFiles(files))

        // The tensors to write, in safetensors' order: by alignment (F32 before BF16 before I8), then by name, so
        // every F32 tensor stays 4-byte aligned and can be read in place.
        var plan: [PlannedTensor] = []
        var converted = 0
        switch precision {
        case .int8:
            let prefix = names.contains { $0.hasPrefix(configuration.weightPrefix) } ? configuration.weightPrefix : ""
            let modules = Int8Checkpoint.modules(configuration).map { prefix + $0 }
            var quantized = Set<String>()
            for module in modules {
                let name = module + ".weight"
                guard let shape = source.shapes[name] else { throw ASRError.missingTensor(name: name) }
                guard shape.count == 2 else {
                    throw ASRError.tensorShapeMismatch(name: name, expected: [shape.first ?? 0, -1], found: shape)
                }
                if source.shapes[name + Int8Checkpoint.scaleSuffix] != nil {
                    throw refuse("it already has a scale tensor '\(name + Int8Checkpoint.scaleSuffix)'")
                }
                quantized.insert(name)
            }
            let cache = QuantizedCache(source: source)
            for name in names {
                guard quantized.contains(name), let shape = source.shapes[name] else {
                    plan.append(keep(name, source)); continue
                }
                plan.append(PlannedTensor(name: name, dtype: .i8, shape: shape) { sink in
                    try sink.write(cache.take(name).codes)
                })
                plan.append(PlannedTensor(name: name + Int8Checkpoint.scaleSuffix, dtype: .f32, shape: [shape[0]]) { sink in
                    try sink.write(cache.scales(name))
                })
                converted += 1
            }
            var members = config.objectMembers!
            JSONValue.setMember(&members, "quantization_config", .object([
                ("quant_method", .string(Int8Checkpoint.quantMethod)),
                ("bits", .integer(8)),
                ("scheme", .string(Int8Checkpoint.scheme)),
                ("modules", .array(modules.map { .string($0) })),
            ]))
            plan.sort()
            return try write(plan, config: .object(members), files: files, source: source, input: input, output: output,
                             precision: precision, converted: converted)
        case .bf16:
            for name in names {
                let raw = source.raw(name)
                if let raw, raw.dtype == .bf16 || !raw.dtype.isFloatingPoint {
                    plan.append(keep(name, source)); continue
                }
                let shape = source.shapes[name]!
                plan.append(PlannedTensor(name: name, dtype: .bf16, shape: shape) { sink in
                    let values = try source.floats(name)
                    var bits = [UInt16](repeating: 0, count: values.count)
                    asr_f32_to_bf16(values.count, values, &bits)
                    try sink.write(bits)
                })
                converted += 1
            }
            var members = config.objectMembers!
            JSONValue.setMember(&members, "torch_dtype", .string("bfloat16"))
            // transformers 5 writes (and reads first) "dtype".
            if members.contains(where: { $0.0 == "dtype" }) { JSONValue.setMember(&members, "dtype", .string("bfloat16")) }
            plan.sort()
            return try write(plan, config: .object(members), files: files, source: source, input: input, output: output,
                             precision: precision, converted: converted)
        case .fp32:
            fatalError("refused above")
        }
    }

    /// A tensor written as the source stores it (its bytes copied), or as F32 where the source has no raw bytes
    /// (PyTorch checkpoints).
    private static func keep(_ name: String, _ source: TensorSource) -> PlannedTensor {
        let shape = source.shapes[name]!
        if let raw = source.raw(name) {
            return PlannedTensor(name: name, dtype: raw.dtype, shape: raw.shape) { sink in try sink.write(raw.bytes) }
        }
        return PlannedTensor(name: name, dtype: .f32, shape: shape) { sink in try sink.write(try source.floats(name)) }
    }

    /// The absolute path `url` names with every symbolic link resolved, for a path that may not exist yet (its
    /// deepest existing ancestor is resolved and the rest appended).
    static func canonicalPath(_ url: URL) -> String {
        var existing = url.standardizedFileURL.path
        var rest: [String] = []
        while !existing.isEmpty && existing != "/" && !FileManager.default.fileExists(atPath: existing) {
            rest.insert((existing as NSString).lastPathComponent, at: 0)
            existing = (existing as NSString).deletingLastPathComponent
        }
        let resolved = realpath(existing, nil).map { pointer -> String in
            defer { free(pointer) }
            return String(cString: pointer)
        } ?? existing
        return rest.reduce(resolved) { ($0 as NSString).appendingPathComponent($1) }
    }

    /// Whether `path` lies strictly inside `directory` (both canonical).
    static func isInside(_ path: String, _ directory: String) -> Bool {
        let base = directory.hasSuffix("/") ? directory : directory + "/"
        return path.hasPrefix(base)
    }

    /// The names this writes for a source: the weights, config.json and the copied files the source has.
    private static func writtenFiles(_ files: ModelFiles) -> Set<String> {
        Set(["model.safetensors", "config.json"] + copiedFiles.filter { (try? files.data($0)) != nil } + adapterFiles(files))
    }

    /// An MMS checkpoint's per-language adapter files: carried over as they are (they run in fp32 whatever the
    /// precision: a few megabytes per language, swapped at load).
    private static func adapterFiles(_ files: ModelFiles) -> [String] {
        files.fileNames.filter { $0.hasPrefix("adapter.") && ($0.hasSuffix(".safetensors") || $0.hasSuffix(".bin")) }.sorted()
    }

    /// Weight files of another layout: left beside a new `model.safetensors` they would make two models in one folder.
    private static let otherWeightFiles = ["model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"]

    /// Fails early when `output` cannot be written without losing files or mixing two models.
    private static func checkOutput(_ output: URL, overwrite: Bool, writing: Set<String>) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: output.path, isDirectory: &isDirectory) else { return }
        guard isDirectory.boolValue else { throw ASRError.writeFailed(file: output.path, reason: "exists and is not a directory") }
        removeStaleTemporaries(in: output)
        let contents = (try? FileManager.default.contentsOfDirectory(atPath: output.path)) ?? []
        if !contents.isEmpty && !overwrite { throw ASRError.outputNotEmpty(directory: output.path) }
        let foreign = contents.filter { name in
            !writing.contains(name) && (otherWeightFiles.contains(name) || copiedFiles.contains(name)
                || (name.hasSuffix(".safetensors") && !name.hasPrefix(".")))
        }.sorted()
        if !foreign.isEmpty {
            throw ASRError.writeFailed(
                file: output.path,
                reason: "it holds files of another model that this would not replace (\(foreign.joined(separator: ", "))); "
                    + "remove them or choose another output directory (--overwrite never deletes files it does not write)")
        }
    }

    /// Temporary folders a killed run left inside an output directory (their writer is gone).
    private static func removeStaleTemporaries(in directory: URL) {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return }
        for name in names where name.hasPrefix(temporaryPrefix) && name.hasSuffix(AtomicFile.temporarySuffix) {
            guard let pid = Int32(name.dropFirst(temporaryPrefix.count).dropLast(AtomicFile.temporarySuffix.count)),
                  pid != getpid(), kill(pid, 0) != 0 && errno == ESRCH else { continue }
            try? FileManager.default.removeItem(at: directory.appendingPathComponent(name))
        }
    }

    private static let temporaryPrefix = ".asr-quantize."

    private static func write(_ plan: [PlannedTensor], config: JSONValue, files: ModelFiles, source: TensorSource, input: URL,
                              output: URL, precision: Precision, converted: Int) throws -> Report {
        let fm = FileManager.default
        // Measured before anything is written.
        let inputWeightBytes = weightFiles(in: input).reduce(0) { $0 + fileSize($1) }
        // A new output is written beside it and renamed into place whole; an existing one gets the files in a
        // temporary folder inside it, each renamed over its old version.
        let exists = fm.fileExists(atPath: output.path)
        let parent = output.deletingLastPathComponent()
        let temporary = exists
            ? output.appendingPathComponent("\(temporaryPrefix)\(getpid())\(AtomicFile.temporarySuffix)")
            : parent.appendingPathComponent(".\(output.lastPathComponent).\(getpid())\(AtomicFile.temporarySuffix)")
        func fail(_ url: URL, _ error: Error) -> ASRError {
            (error as? ASRError) ?? .writeFailed(file: url.path, reason: "\(error.localizedDescription)")
        }
        do {
            if !exists { try fm.createDirectory(at: parent, withIntermediateDirectories: true) }
            try? fm.removeItem(at: temporary)
            try fm.createDirectory(at: temporary, withIntermediateDirectories: false)
        } catch {
            throw fail(temporary, error)
        }
        var committed = false
        defer { if !committed || exists { try? fm.removeItem(at: temporary) } }

        let weights = temporary.appendingPathComponent("model.safetensors")
        try writeSafeTensors(plan, to: weights)
        var copied: [String] = []
        let configText = config.prettyPrinted() + "\n"
        try writeFile(Data(configText.utf8), to: temporary.appendingPathComponent("config.json"))
        for name in copiedFiles {
            guard let data = try files.data(name) else { continue }
            try writeFile(data, to: temporary.appendingPathComponent(name))
            copied.append(name)
        }
        // Adapter files (mms-1b-all has 1,162, ~11 GB in all) are hard-linked where the file system allows it (the
        // weights are never written in place, by this tool or transformers), else copied.
        for name in adapterFiles(files) {
            let (from, to) = (input.appendingPathComponent(name), temporary.appendingPathComponent(name))
            if link(from.path, to.path) != 0 {
                do { try fm.copyItem(at: from, to: to) } catch { throw fail(to, error) }
            }
            copied.append(name)
        }

        if exists {
            // Each file is replaced whole; config.json goes last, so a run killed in between leaves the old
            // config.json (a rerun with --overwrite completes the folder).
            for name in ["model.safetensors"] + copied + ["config.json"] {
                guard rename(temporary.appendingPathComponent(name).path, output.appendingPathComponent(name).path) == 0 else {
                    throw ASRError.writeFailed(file: output.appendingPathComponent(name).path, reason: String(cString: strerror(errno)))
                }
            }
        } else {
            guard rename(temporary.path, output.path) == 0 else {
                throw ASRError.writeFailed(file: output.path, reason: String(cString: strerror(errno)))
            }
        }
        committed = true

        return Report(
            output: output, precision: precision,
            inputWeightBytes: inputWeightBytes,
            outputWeightBytes: fileSize(output.appendingPathComponent("model.safetensors")),
            inputWeightTypes: source.storageTypes,
            outputWeightTypes: Array(Set(plan.map(\.dtype.rawValue))).sorted(),
            tensorCount: plan.count, convertedCount: converted, copiedFiles: copied)
    }

    /// Streams a safetensors file: the header (with `{"format": "pt"}` metadata, as transformers writes and expects),
    /// padded with spaces to a multiple of 8 bytes, then each tensor's bytes back to back.
    private static func writeSafeTensors(_ plan: [PlannedTensor], to url: URL) throws {
        var offset = 0
        var entries = ["\"__metadata__\":{\"format\":\"pt\"}"]
        for tensor in plan {
            let bytes = tensor.shape.reduce(1, *) * tensor.dtype.byteSize
            entries.append("\(JSONValue.string(tensor.name).compactDescription):{\"dtype\":\"\(tensor.dtype.rawValue)\","
                           + "\"shape\":[\(tensor.shape.map(String.init).joined(separator: ","))],\"data_offsets\":[\(offset),\(offset + bytes)]}")
            offset += bytes
        }
        var header = Array(("{" + entries.joined(separator: ",") + "}").utf8)
        while header.count % 8 != 0 { header.append(0x20) }
        let sink = try FileSink(url)
        do {
            try sink.write(withUnsafeBytes(of: UInt64(header.count).littleEndian) { Array($0) })
            try sink.write(header)
            for tensor in plan {
                let before = sink.written
                try tensor.write(sink)
                let expected = tensor.shape.reduce(1, *) * tensor.dtype.byteSize
                guard sink.written - before == expected else {
                    throw ASRError.invalidCheckpoint(file: url.lastPathComponent,
                                                     reason: "tensor '\(tensor.name)' produced \(sink.written - before) bytes, expected \(expected)")
                }
            }
            try sink.close()
        } catch {
            sink.abandon()
            throw error
        }
    }

    private static func writeFile(_ data: Data, to url: URL) throws {
        let sink = try FileSink(url)
        do {
            try data.withUnsafeBytes { try sink.write($0) }
            try sink.close()
        } catch {
            sink.abandon()
            throw error
        }
    }

    /// The files a directory's weights are read from, as `openCheckpoint` chooses them.
    static func weightFiles(in directory: URL) -> [URL] {
        let fm = FileManager.default
        for name in ["model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json"] {
            let file = directory.appendingPathComponent(name)
            guard fm.fileExists(atPath: file.path) else { continue }
            return name.hasSuffix(".index.json") ? shards(file) : [file]
        }
        return []
    }

    private static func shards(_ index: URL) -> [URL] {
        guard let data = try? readModelFile(index), let json = try? JSONValue.parse(data),
              let map = json.objectMembers?.first(where: { $0.0 == "weight_map" })?.1.objectMembers else { return [index] }
        let names = Set(map.compactMap { $0.1.stringValue })
        return [index] + names.sorted().map { index.deletingLastPathComponent().appendingPathComponent($0) }
    }

    /// Size of the file `url` names, following symbolic links (the hub cache links snapshots to blobs).
    static func fileSize(_ url: URL) -> Int {
        var info = stat()
        return stat(url.path, &info) == 0 ? Int(info.st_size) : 0
    }
}

/// One tensor of the file being written: its header entry and how to produce its bytes.
private struct PlannedTensor: Comparable {
    let name: String
    let dtype: SafeTensorsDType
    let shape: [Int]
    let write: (FileSink) throws -> Void

    static func < (a: PlannedTensor, b: PlannedTensor) -> Bool {
        (-a.dtype.byteSize, a.name) < (-b.dtype.byteSize, b.name)
    }

    static func == (a: PlannedTensor, b: PlannedTensor) -> Bool { a.name == b.name }
}

/// int8 codes and scales of each quantized weight, computed once when the first of the two is written (the scales
/// come first in the file) and dropped once both are.
private final class QuantizedCache {
    private let source: TensorSource
    private var entries: [String: (codes: [Int8], scales: [Float])] = [:]

    init(source: TensorSource) { self.source = source }

    private func quantize(_ name: String) throws -> (codes: [Int8], scales: [Float]) {
        if let entry = entries[name] { return entry }
        let shape = source.shapes[name]!
        let (n, k) = (shape[0], shape[1])
        let values = try source.floats(name)
        let nonFinite = values.withUnsafeBufferPointer { CheckpointLoader.countNonFinite($0) }
        guard nonFinite == 0 else {
            throw ASRError.invalidQuantizedTensor(name: name, reason: "has \(nonFinite) NaN or infinite values; it cannot be quantized")
        }
        var codes = [Int8](repeating: 0, count: n * k)
        var scales = [Float](repeating: 0, count: n)
        var sums = [Int32](repeating: 0, count: n)
        // The function and limit a load of this weight with precision int8 uses (WeightMatrix, on VNNI).
        asr_quantize_weights_s8(Int32(n), Int32(k), values, Int32(Int8Checkpoint.maxCode), &codes, &scales, &sums)
        entries[name] = (codes, scales)
        return (codes, scales)
    }

    func scales(_ name: String) throws -> [Float] { try quantize(name).scales }

    func take(_ name: String) throws -> (codes: [Int8], scales: [Float]) {
        let entry = try quantize(name)
        entries[name] = nil
        return entry
    }
}

/// A file written sequentially with write(2), flushed to disk on close.
private final class FileSink {
    let url: URL
    private let fd: Int32
    private(set) var written = 0

    init(_ url: URL) throws {
        self.url = url
        fd = open(url.path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
        guard fd >= 0 else { throw ASRError.writeFailed(file: url.path, reason: String(cString: strerror(errno))) }
    }

    func write(_ raw: UnsafeRawBufferPointer) throws {
        var offset = 0
        while offset < raw.count {
            let n = systemWrite(fd, raw.baseAddress! + offset, raw.count - offset)
            if n < 0 {
                if errno == EINTR { continue }
                throw ASRError.writeFailed(file: url.path, reason: String(cString: strerror(errno)))
            }
            offset += n
        }
        written += raw.count
    }

    /// The elements' bytes as they lie in memory (little-endian hosts, as safetensors is).
    func write<T>(_ values: [T]) throws {
        try values.withUnsafeBytes { try write($0) }
    }

    func close() throws {
        defer { systemClose(fd) }
        guard fsync(fd) == 0 else { throw ASRError.writeFailed(file: url.path, reason: String(cString: strerror(errno))) }
    }

    func abandon() { systemClose(fd) }
}

private func systemWrite(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int { write(fd, bytes, count) }
private func systemClose(_ fd: Int32) { close(fd) }

extension SafeTensorsDType {
    var isFloatingPoint: Bool {
        switch self {
        case .f16, .bf16, .f32, .f64, .f8e4m3, .f8e5m2: true
        default: false
        }
    }
}

extension JSONValue {
    /// Replaces the member `key` of `members`, or inserts it before the first member whose key sorts after it
    /// (config.json files are written with sorted keys).
    static func setMember(_ members: inout [(String, JSONValue)], _ key: String, _ value: JSONValue) {
        if let i = members.firstIndex(where: { $0.0 == key }) {
            members[i].1 = value
        } else {
            members.insert((key, value), at: members.firstIndex { $0.0 > key } ?? members.endIndex)
        }
    }

    /// JSON text on one line.
    var compactDescription: String {
        switch self {
        case .null: return "null"
        case .bool(let b): return b ? "true" : "false"
        case .integer(let i): return String(i)
        case .number(let d): return d.description  // shortest text that reads back as the same Double
        case .string(let s): return Self.quoted(s)
        case .array(let items): return "[" + items.map(\.compactDescription).joined(separator: ", ") + "]"
        case .object(let members):
            return "{" + members.map { Self.quoted($0.0) + ": " + $0.1.compactDescription }.joined(separator: ", ") + "}"
        }
    }

    /// JSON text indented by two spaces per level, as Python's `json.dumps(indent=2)` (and so transformers) writes it.
    func prettyPrinted(indent: Int = 0) -> String {
        let pad = String(repeating: " ", count: indent + 2), end = String(repeating: " ", count: indent)
        switch self {
        case .array(let items) where !items.isEmpty:
            return "[\n" + items.map { pad + $0.prettyPrinted(indent: indent + 2) }.joined(separator: ",\n") + "\n" + end + "]"
        case .object(let members) where !members.isEmpty:
            return "{\n" + members.map { pad + Self.quoted($0.0) + ": " + $0.1.prettyPrinted(indent: indent + 2) }
                .joined(separator: ",\n") + "\n" + end + "}"
        case .array: return "[]"
        case .object: return "{}"
        default: return compactDescription
        }
    }

    static func quoted(_ s: String) -> String { OutputFormat.quote(s) }
}
