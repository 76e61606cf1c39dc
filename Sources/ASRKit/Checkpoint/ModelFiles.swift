import Foundation

/// Where a model's files come from: a checkpoint directory on disk, or the model built into the binary.
/// Every loader reads through this, so the two kinds of model are loaded by the same code.
struct ModelFiles: Sendable {
    /// A directory path, or "built-in model".
    let location: String
    private let readFile: @Sendable (String) throws -> Data?
    private let openWeights: @Sendable () throws -> TensorSource?
    private let openTensors: @Sendable (String) throws -> TensorSource?
    private let listFiles: @Sendable () -> [String]

    /// Files of a Hugging Face checkpoint directory.
    static func directory(_ url: URL) -> ModelFiles {
        ModelFiles(
            location: url.path,
            readFile: { name in
                let file = url.appendingPathComponent(name)
                guard FileManager.default.fileExists(atPath: file.path) else { return nil }
                return try readModelFile(file)
            },
            openWeights: { try openCheckpoint(in: url) },
            openTensors: { name in
                let file = url.appendingPathComponent(name)
                guard FileManager.default.fileExists(atPath: file.path) else { return nil }
                return name.hasSuffix(".safetensors") ? try SafeTensorsFile(path: file.path) : try PyTorchCheckpoint(path: file.path)
            },
            listFiles: { (try? FileManager.default.contentsOfDirectory(atPath: url.path)) ?? [] })
    }

    /// Files linked into the binary (see BuiltinModel).
    static func embedded(location: String, file: @escaping @Sendable (String) -> UnsafeRawBufferPointer?) -> ModelFiles {
        ModelFiles(
            location: location,
            readFile: { name in file(name).map { Data($0) } },
            openWeights: {
                guard let bytes = file("model.safetensors") else { return nil }
                return try SafeTensorsFile(file: MappedFile(staticBytes: bytes, name: "model.safetensors"))
            },
            openTensors: { name in
                guard name.hasSuffix(".safetensors"), let bytes = file(name) else { return nil }
                return try SafeTensorsFile(file: MappedFile(staticBytes: bytes, name: name))
            },
            listFiles: { [] })
    }

    /// The names of the files the model has (a directory's entries; nothing for a built-in model).
    var fileNames: [String] { listFiles() }

    /// A tensor file other than the main weights (an MMS `adapter.<lang>.safetensors` or `.bin`), nil when absent.
    func tensors(_ name: String) throws -> TensorSource? { try openTensors(name) }

    /// The file's bytes, or nil when the model has no such file.
    func data(_ name: String) throws -> Data? { try readFile(name) }

    /// The file's bytes; a missing file is an error naming it.
    func required(_ name: String) throws -> Data {
        guard let data = try readFile(name) else { throw ASRError.missingModelFile(directory: location, file: name) }
        return data
    }

    /// The checkpoint's weights.
    func weights() throws -> TensorSource {
        guard let weights = try openWeights() else {
            throw ASRError.missingModelFile(directory: location, file: "model.safetensors")
        }
        return weights
    }

    /// Parses a JSON file with the strict parser (duplicate keys refused).
    func json(_ name: String) throws -> JSONValue? {
        guard let data = try readFile(name) else { return nil }
        do {
            return try JSONValue.parse(data)
        } catch {
            throw ASRError.malformedJSON(file: name, reason: "\(error)")
        }
    }
}

/// Opens a directory's weights, in order of preference: `model.safetensors`, a sharded safetensors checkpoint
/// (`model.safetensors.index.json`), `pytorch_model.bin`, a sharded PyTorch checkpoint
/// (`pytorch_model.bin.index.json`). Nil when there are none.
func openCheckpoint(in directory: URL) throws -> TensorSource? {
    func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: directory.appendingPathComponent(name).path) }
    if exists("model.safetensors") { return try SafeTensorsFile(path: directory.appendingPathComponent("model.safetensors").path) }
    if exists("model.safetensors.index.json") {
        return try ShardedCheckpoint(directory: directory, index: "model.safetensors.index.json") { try SafeTensorsFile(path: $0) }
    }
    if exists("pytorch_model.bin") { return try PyTorchCheckpoint(path: directory.appendingPathComponent("pytorch_model.bin").path) }
    if exists("pytorch_model.bin.index.json") {
        return try ShardedCheckpoint(directory: directory, index: "pytorch_model.bin.index.json") { try PyTorchCheckpoint(path: $0) }
    }
    return nil
}

/// A checkpoint split over several files, with an index `{"weight_map": {tensor: file}}`.
struct ShardedCheckpoint: TensorSource {
    let shapes: [String: [Int]]
    let storageTypes: [String]
    private let owner: [String: TensorSource]

    init(directory: URL, index: String, open: (String) throws -> TensorSource) throws {
        let data = try readModelFile(directory.appendingPathComponent(index))
        let json: JSONValue
        do { json = try JSONValue.parse(data) } catch { throw ASRError.malformedJSON(file: index, reason: "\(error)") }
        guard let map = json.objectMembers?.first(where: { $0.0 == "weight_map" })?.1.objectMembers else {
            throw ASRError.invalidCheckpoint(file: index, reason: "no weight_map object")
        }
        var shards: [String: TensorSource] = [:]
        var owner: [String: TensorSource] = [:]
        var shapes: [String: [Int]] = [:]
        for (tensor, value) in map {
            guard let file = value.stringValue, !file.contains("/"), !file.hasPrefix(".") else {
                throw ASRError.invalidCheckpoint(file: index, reason: "tensor '\(tensor)' maps to an invalid file name")
            }
            if shards[file] == nil {
                let path = directory.appendingPathComponent(file).path
                guard FileManager.default.fileExists(atPath: path) else {
                    throw ASRError.missingModelFile(directory: directory.path, file: file)
                }
                shards[file] = try open(path)
            }
            guard let shard = shards[file], let shape = shard.shapes[tensor] else {
                throw ASRError.invalidCheckpoint(file: index, reason: "tensor '\(tensor)' is not in \(file)")
            }
            owner[tensor] = shard
            shapes[tensor] = shape
        }
        self.owner = owner
        self.shapes = shapes
        storageTypes = Array(Set(shards.values.flatMap(\.storageTypes))).sorted()
    }

    func floats(_ name: String) throws -> [Float] {
        guard let shard = owner[name] else { throw ASRError.missingTensor(name: name) }
        return try shard.floats(name)
    }

    func raw(_ name: String) -> RawTensor? { owner[name]?.raw(name) }
    func release(_ name: String) { owner[name]?.release(name) }
}

/// Files whose bytes stay valid and unchanged for the whole process (linked into the binary).
struct StaticFileTable: @unchecked Sendable {  // read-only memory that is never freed
    let files: [String: UnsafeRawBufferPointer]
}

/// Reads a small JSON file of a model directory, refusing absurd sizes before reading.
func readModelFile(_ url: URL, maxBytes: Int = 64 << 20) throws -> Data {
    let path = url.path
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
        throw ASRError.missingModelFile(directory: url.deletingLastPathComponent().path, file: url.lastPathComponent)
    }
    if isDirectory.boolValue {
        throw ASRError.malformedJSON(file: url.lastPathComponent, reason: "is a directory")
    }
    if let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int, size > maxBytes {
        throw ASRError.malformedJSON(file: url.lastPathComponent, reason: "file is \(size) bytes, larger than any real one")
    }
    do {
        return try Data(contentsOf: url)
    } catch {
        throw ASRError.malformedJSON(file: url.lastPathComponent, reason: "cannot read: \(error.localizedDescription)")
    }
}
