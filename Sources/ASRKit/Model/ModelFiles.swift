import Foundation

/// Where a model's files come from: a checkpoint directory on disk, or the model built into the binary.
/// Every loader reads through this, so the two kinds of model are loaded by the same code.
struct ModelFiles: Sendable {
    /// A directory path, or "built-in model".
    let location: String
    private let readFile: @Sendable (String) throws -> Data?
    private let openWeights: @Sendable () throws -> SafeTensorsFile?

    /// Files of a Hugging Face checkpoint directory.
    static func directory(_ url: URL) -> ModelFiles {
        ModelFiles(
            location: url.path,
            readFile: { name in
                let file = url.appendingPathComponent(name)
                guard FileManager.default.fileExists(atPath: file.path) else { return nil }
                return try readModelFile(file)
            },
            openWeights: {
                let file = url.appendingPathComponent("model.safetensors")
                guard FileManager.default.fileExists(atPath: file.path) else { return nil }
                return try SafeTensorsFile(path: file.path)
            })
    }

    /// Files linked into the binary (see BuiltinModel).
    static func embedded(location: String, file: @escaping @Sendable (String) -> UnsafeRawBufferPointer?) -> ModelFiles {
        ModelFiles(
            location: location,
            readFile: { name in file(name).map { Data($0) } },
            openWeights: {
                guard let bytes = file("model.safetensors") else { return nil }
                return try SafeTensorsFile(file: MappedFile(staticBytes: bytes, name: "model.safetensors"))
            })
    }

    /// The file's bytes, or nil when the model has no such file.
    func data(_ name: String) throws -> Data? { try readFile(name) }

    /// The file's bytes; a missing file is an error naming it.
    func required(_ name: String) throws -> Data {
        guard let data = try readFile(name) else { throw ASRError.missingModelFile(directory: location, file: name) }
        return data
    }

    /// The checkpoint's weights.
    func weights() throws -> SafeTensorsFile {
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
