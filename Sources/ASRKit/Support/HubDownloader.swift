import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// Downloads a model's files from the Hugging Face hub into the local cache, in huggingface_hub's layout
/// (`models--ORG--NAME/{blobs,snapshots,refs}`), so that `--model ORG/NAME` and huggingface_hub itself find them.
///
/// For each file: a HEAD request (redirects not followed) gives the commit, the ETag (SHA-256 of LFS files, git blob
/// SHA-1 of others) and the size; the content goes to `blobs/ETAG.incomplete`, resumed with a Range request when a
/// partial file exists; it is checked against the size and the ETag before it is renamed to `blobs/ETAG` and linked
/// from `snapshots/COMMIT/FILE`. The endpoint comes from `HF_ENDPOINT` (default https://huggingface.co) and the
/// token from `HF_TOKEN`.
public struct HubDownloader {
    /// The hub's base URL.
    public let endpoint: URL
    /// The access token sent as a bearer token, or nil for anonymous access.
    public let token: String?
    /// The huggingface_hub cache directory files are stored in.
    public let cache: URL
    /// Called with (file, bytes so far, total bytes) while downloading.
    public var progress: ((String, Int64, Int64) -> Void)?

    /// The files that describe a CTC model besides its weights; the first two are required.
    static let configurationFiles = ["config.json", "vocab.json", "preprocessor_config.json", "tokenizer_config.json",
                                     "special_tokens_map.json", "added_tokens.json"]

    /// A downloader set up from `HF_ENDPOINT`, `HF_TOKEN` and the cache variables (`HF_HUB_CACHE`, `HF_HOME`).
    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        endpoint = URL(string: environment["HF_ENDPOINT"].flatMap { $0.isEmpty ? nil : $0 } ?? "https://huggingface.co")
            ?? URL(string: "https://huggingface.co")!
        token = environment["HF_TOKEN"].flatMap { $0.isEmpty ? nil : $0 }
        cache = ModelLocator.cacheDirectory(environment: environment)
    }

    /// A downloader for `endpoint` storing into `cache`, with `token` if given.
    public init(endpoint: URL, cache: URL, token: String? = nil) {
        self.endpoint = endpoint
        self.cache = cache
        self.token = token
    }

    /// Downloads what `asr` needs of `id` at `revision` and returns the snapshot directory.
    ///
    /// For a multilingual (MMS) repository (a `vocab.json` with one vocabulary per language), the languages'
    /// `adapter.<lang>.safetensors` files come too: those of `languages` (each must exist), or with nil every one the
    /// repository holds (mms-1b-all: 1,162 files, ~11 GB; ask for a few with `languages`).
    @discardableResult
    public func download(_ id: String, revision: String = "main", languages: [String]? = nil) throws -> URL {
        guard ModelLocator.isModelID(id) else {
            throw ASRError.downloadFailed(file: id, reason: "not a model id of the form ORG/NAME")
        }
        var commit: String?
        var snapshot: URL?
        func fetch(_ file: String, required: Bool) throws -> Bool {
            guard let result = try fetchFile(id, file: file, revision: revision) else {
                if required { throw ASRError.downloadFailed(file: "\(id)/\(file)", reason: "not found on the hub") }
                return false
            }
            if commit == nil { commit = result.commit }
            snapshot = result.snapshot
            return true
        }
        for (index, file) in Self.configurationFiles.enumerated() { _ = try fetch(file, required: index < 2) }
        if try fetch("model.safetensors", required: false) {
        } else if try fetch("model.safetensors.index.json", required: false), let snapshot {
            for shard in try shardFiles(snapshot.appendingPathComponent("model.safetensors.index.json")) { _ = try fetch(shard, required: true) }
        } else if try fetch("pytorch_model.bin", required: false) {
        } else if try fetch("pytorch_model.bin.index.json", required: false), let snapshot {
            for shard in try shardFiles(snapshot.appendingPathComponent("pytorch_model.bin.index.json")) { _ = try fetch(shard, required: true) }
        } else {
            throw ASRError.downloadFailed(file: id, reason: "the repository has no model.safetensors or pytorch_model.bin (sharded or not)")
        }
        guard let snapshot else { throw ASRError.downloadFailed(file: id, reason: "nothing was downloaded") }
        if let available = try Vocabulary.languages(.directory(snapshot))?.languages {
            if let unknown = languages?.first(where: { !available.contains($0) }) {
                throw ASRError.invalidLanguage(language: unknown, reason: "not in \(id)'s vocab.json", available: available)
            }
            for language in languages ?? available {
                _ = try fetch("adapter.\(language).safetensors", required: languages != nil)
            }
        } else if let languages, let first = languages.first {
            throw ASRError.invalidLanguage(language: first, reason: "\(id) has one vocabulary, not one per language", available: [])
        }
        return snapshot
    }

    private func shardFiles(_ index: URL) throws -> [String] {
        let json = try JSONValue.parse(try Data(contentsOf: index))
        guard let map = json.objectMembers?.first(where: { $0.0 == "weight_map" })?.1.objectMembers else {
            throw ASRError.invalidCheckpoint(file: index.lastPathComponent, reason: "no weight_map object")
        }
        let files = Set(map.compactMap { $0.1.stringValue })
        guard files.allSatisfy({ !$0.contains("/") && !$0.hasPrefix(".") }) else {
            throw ASRError.invalidCheckpoint(file: index.lastPathComponent, reason: "shard names must be plain file names")
        }
        return files.sorted()
    }

    // MARK: One file

    struct Metadata {
        let commit: String
        let etag: String
        let size: Int64?
    }

    /// Downloads one file into the cache; nil when the hub has no such file (404).
    func fetchFile(_ id: String, file: String, revision: String) throws -> (commit: String, snapshot: URL)? {
        let url = endpoint.appendingPathComponent(id).appendingPathComponent("resolve")
            .appendingPathComponent(revision).appendingPathComponent(file)
        guard let meta = try head(url, file: file) else { return nil }
        let folder = ModelLocator.repositoryFolder(id, cache: cache)
        let blobs = folder.appendingPathComponent("blobs")
        let snapshot = folder.appendingPathComponent("snapshots").appendingPathComponent(meta.commit)
        try FileManager.default.createDirectory(at: blobs, withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: snapshot, withIntermediateDirectories: true)
        let blob = blobs.appendingPathComponent(meta.etag)

        if !FileManager.default.fileExists(atPath: blob.path) {
            let partial = URL(fileURLWithPath: blob.path + ".incomplete")
            try get(url, to: partial, file: file, expectedSize: meta.size)
            try verify(partial, etag: meta.etag, size: meta.size, file: file)
            if rename(partial.path, blob.path) != 0 {
                throw ASRError.downloadFailed(file: file, reason: "cannot move into the cache: \(String(cString: strerror(errno)))")
            }
        }
        // snapshots/COMMIT/FILE → ../../blobs/ETAG (relative, as huggingface_hub links them).
        let link = snapshot.appendingPathComponent(file)
        try? FileManager.default.removeItem(at: link)
        try FileManager.default.createSymbolicLink(atPath: link.path, withDestinationPath: "../../blobs/" + meta.etag)
        if revision != meta.commit {
            let refs = folder.appendingPathComponent("refs")
            try FileManager.default.createDirectory(at: refs, withIntermediateDirectories: true)
            try AtomicFile.write(Data(meta.commit.utf8), to: refs.appendingPathComponent(revision))
        }
        return (meta.commit, snapshot)
    }

    private func request(_ url: URL, method: String) -> URLRequest {
        var request = URLRequest(url: url)
        request.httpMethod = method
        request.timeoutInterval = 60
        request.setValue("asr/\(ASRKitVersion.string)", forHTTPHeaderField: "User-Agent")
        if let token { request.setValue("Bearer \(token)", forHTTPHeaderField: "Authorization") }
        return request
    }

    private func head(_ url: URL, file: String) throws -> Metadata? {
        let delegate = TransferDelegate(destination: nil, followRedirects: false)
        let response = try delegate.run(request(url, method: "HEAD"), file: file)
        if response.statusCode == 404 { return nil }
        guard (200..<400).contains(response.statusCode) else {
            let hint = response.statusCode == 401 || response.statusCode == 403 ? " (a gated or private model needs HF_TOKEN)" : ""
            throw ASRError.downloadFailed(file: file, reason: "HTTP \(response.statusCode)\(hint)")
        }
        func header(_ name: String) -> String? {
            response.value(forHTTPHeaderField: name)?.trimmingCharacters(in: .whitespaces)
        }
        guard let commit = header("X-Repo-Commit"), commit.allSatisfy({ $0.isHexDigit }), !commit.isEmpty else {
            throw ASRError.downloadFailed(file: file, reason: "the server sent no X-Repo-Commit header")
        }
        var etag = header("X-Linked-Etag") ?? header("ETag") ?? ""
        if etag.hasPrefix("W/") { etag.removeFirst(2) }
        etag = etag.trimmingCharacters(in: CharacterSet(charactersIn: "\""))
        guard !etag.isEmpty, etag.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "-" }) else {
            throw ASRError.downloadFailed(file: file, reason: "the server sent no usable ETag")
        }
        let size = (header("X-Linked-Size") ?? header("Content-Length")).flatMap { Int64($0) }
        return Metadata(commit: commit, etag: etag, size: size)
    }

    private func get(_ url: URL, to partial: URL, file: String, expectedSize: Int64?) throws {
        var request = request(url, method: "GET")
        let existing = (try? FileManager.default.attributesOfItem(atPath: partial.path)[.size] as? Int64) ?? 0
        if existing > 0 { request.setValue("bytes=\(existing)-", forHTTPHeaderField: "Range") }
        let delegate = TransferDelegate(destination: partial, followRedirects: true, resumeFrom: existing)
        delegate.progress = { done in progress?(file, done, expectedSize ?? -1) }
        let response = try delegate.run(request, file: file)
        guard response.statusCode == 200 || response.statusCode == 206 else {
            throw ASRError.downloadFailed(file: file, reason: "HTTP \(response.statusCode)")
        }
        if let error = delegate.writeError { throw error }
    }

    private func verify(_ partial: URL, etag: String, size: Int64?, file: String) throws {
        let attributes = try FileManager.default.attributesOfItem(atPath: partial.path)
        let actual = attributes[.size] as? Int64 ?? -1
        if let size, actual != size {
            throw ASRError.downloadFailed(file: file, reason: "got \(actual) of \(size) bytes; run the download again to resume")
        }
        let isSHA256 = etag.count == 64 && etag.allSatisfy(\.isHexDigit)
        let isSHA1 = etag.count == 40 && etag.allSatisfy(\.isHexDigit)
        guard isSHA256 || isSHA1 else { return }  // an opaque ETag: the size check is all we can do
        guard let handle = FileHandle(forReadingAtPath: partial.path) else {
            throw ASRError.downloadFailed(file: file, reason: "cannot read the downloaded file")
        }
        defer { try? handle.close() }
        var sha256 = SHA256(), sha1 = SHA1()
        if isSHA1 { sha1.update(Data("blob \(actual)\0".utf8)) }
        while true {
            let chunk = handle.readData(ofLength: 1 << 22)
            if chunk.isEmpty { break }
            if isSHA256 { sha256.update(chunk) } else { sha1.update(chunk) }
        }
        let digest = isSHA256 ? sha256.finish() : sha1.finish()
        guard digest == etag.lowercased() else {
            try? FileManager.default.removeItem(at: partial)
            throw ASRError.downloadFailed(file: file, reason: "checksum mismatch: content hashes to \(digest), the hub says \(etag)")
        }
    }
}

/// Runs one request synchronously, streaming the body to a file (appending when resuming).
private final class TransferDelegate: NSObject, URLSessionDataDelegate, @unchecked Sendable {  // used by one request
    let destination: URL?
    let followRedirects: Bool
    let resumeFrom: Int64
    var progress: ((Int64) -> Void)?
    var writeError: ASRError?
    private var handle: FileHandle?
    private var received: Int64 = 0
    private var response: HTTPURLResponse?
    private var failure: Error?
    private let done = DispatchSemaphore(value: 0)

    init(destination: URL?, followRedirects: Bool, resumeFrom: Int64 = 0) {
        self.destination = destination
        self.followRedirects = followRedirects
        self.resumeFrom = resumeFrom
    }

    func run(_ request: URLRequest, file: String) throws -> HTTPURLResponse {
        let session = URLSession(configuration: .ephemeral, delegate: self, delegateQueue: nil)
        defer { session.finishTasksAndInvalidate() }
        session.dataTask(with: request).resume()
        done.wait()
        try? handle?.close()
        if let failure { throw ASRError.downloadFailed(file: file, reason: failure.localizedDescription) }
        guard let response else { throw ASRError.downloadFailed(file: file, reason: "no response") }
        return response
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, willPerformHTTPRedirection response: HTTPURLResponse,
                    newRequest request: URLRequest, completionHandler: @escaping (URLRequest?) -> Void) {
        completionHandler(followRedirects ? request : nil)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive response: URLResponse,
                    completionHandler: @escaping (URLSession.ResponseDisposition) -> Void) {
        self.response = response as? HTTPURLResponse
        if let destination, let status = self.response?.statusCode, status == 200 || status == 206 {
            if status == 200 || !FileManager.default.fileExists(atPath: destination.path) {
                _ = FileManager.default.createFile(atPath: destination.path, contents: nil)  // start over
            }
            handle = FileHandle(forWritingAtPath: destination.path)
            received = status == 206 ? resumeFrom : 0
            if let handle { _ = try? handle.seekToEnd() } else {
                writeError = .downloadFailed(file: destination.lastPathComponent, reason: "cannot write into the cache")
            }
        }
        completionHandler(.allow)
    }

    func urlSession(_ session: URLSession, dataTask: URLSessionDataTask, didReceive data: Data) {
        guard let handle else { return }
        do {
            try handle.write(contentsOf: data)
            received += Int64(data.count)
            progress?(received)
        } catch {
            writeError = .downloadFailed(file: destination?.lastPathComponent ?? "", reason: "cannot write: \(error.localizedDescription)")
        }
    }

    func urlSession(_ session: URLSession, task: URLSessionTask, didCompleteWithError error: Error?) {
        if let error { failure = error }
        if response == nil, let http = task.response as? HTTPURLResponse { response = http }
        done.signal()
    }
}

/// The library's version, sent as the User-Agent.
public enum ASRKitVersion {
    /// The version string, e.g. "0.2.0".
    public static let string = "0.2.0"
}
