import Foundation
@testable import ASRKit
#if canImport(Glibc)
import Glibc
#endif

/// A tiny HTTP/1.1 server on 127.0.0.1 that serves a model the way the hub does:
/// `/ORG/NAME/resolve/REVISION/FILE`, with X-Repo-Commit, ETag / X-Linked-Etag and X-Linked-Size headers, HEAD,
/// and Range requests. It can cut a transfer part-way and can serve corrupted bytes, to test resume and checks.
final class HubServer: @unchecked Sendable {  // state guarded by `lock`
    struct File {
        let content: Data
        let lfs: Bool
        var etag: String { lfs ? SHA256.hex(content) : SHA1.gitBlobID(content) }
    }

    let id: String
    let commit = "1234567890abcdef1234567890abcdef12345678"
    let files: [String: File]
    private(set) var port: UInt16 = 0
    private let listener: Int32
    private let lock = NSLock()
    private var _cutAfter: [String: Int] = [:]
    private var _corrupt: Set<String> = []
    private var _rangeRequests: [String] = []
    private var running = true

    /// Serve `file`'s body only up to `bytes` bytes, then drop the connection (once).
    func cut(_ file: String, after bytes: Int) { lock.withLock { _cutAfter[file] = bytes } }
    /// Serve `file` with one byte flipped.
    func corrupt(_ file: String) { lock.withLock { _ = _corrupt.insert(file) } }
    var rangeRequests: [String] { lock.withLock { _rangeRequests } }

    init(id: String, files: [String: File]) throws {
        self.id = id
        self.files = files
        listener = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = 0
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(listener, $0, length) } }
        guard bound == 0, listen(listener, 16) == 0 else { throw ASRError.downloadFailed(file: "server", reason: "cannot listen") }
        _ = withUnsafeMutablePointer(to: &address) { $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(listener, $0, &length) } }
        port = UInt16(bigEndian: address.sin_port)
        Thread.detachNewThread { [self] in acceptLoop() }
    }

    deinit { stop() }

    func stop() {
        let wasRunning = lock.withLock { () -> Bool in
            defer { running = false }
            return running
        }
        if wasRunning { shutdown(listener, Int32(SHUT_RDWR)); close(listener) }
    }

    var endpoint: URL { URL(string: "http://127.0.0.1:\(port)")! }

    private func acceptLoop() {
        while lock.withLock({ running }) {
            let client = accept(listener, nil, nil)
            if client < 0 { return }
            Thread.detachNewThread { [self] in handle(client) }
        }
    }

    private func handle(_ client: Int32) {
        defer { close(client) }
        var request = [UInt8]()
        var buffer = [UInt8](repeating: 0, count: 4096)
        while !request.suffix(4).elementsEqual([13, 10, 13, 10]) {
            let n = recv(client, &buffer, buffer.count, 0)
            if n <= 0 { return }
            request += buffer[0..<n]
        }
        let lines = String(decoding: request, as: UTF8.self).components(separatedBy: "\r\n")
        let parts = lines[0].split(separator: " ")
        guard parts.count >= 2 else { return }
        let method = String(parts[0]), path = String(parts[1])
        let headers = Dictionary(lines.dropFirst().compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (line[..<colon].lowercased(), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }, uniquingKeysWith: { a, _ in a })

        let prefix = "/\(id)/resolve/"
        guard path.hasPrefix(prefix) else { return respond(client, 404, [:], Data()) }
        let rest = path.dropFirst(prefix.count).split(separator: "/", maxSplits: 1)
        guard rest.count == 2, rest[0] == "main" || rest[0] == commit, let file = files[String(rest[1])] else {
            return respond(client, 404, ["X-Error-Code": "EntryNotFound"], Data())
        }
        let name = String(rest[1])
        var body = file.content
        if lock.withLock({ _corrupt.contains(name) }), !body.isEmpty { body[body.count / 2] ^= 0xFF }
        var meta = ["X-Repo-Commit": commit, "ETag": "\"\(file.lfs ? SHA1.gitBlobID(Data("pointer \(name)".utf8)) : file.etag)\""]
        if file.lfs { meta["X-Linked-Etag"] = "\"\(file.etag)\""; meta["X-Linked-Size"] = "\(body.count)" }
        if method == "HEAD" {
            meta["Content-Length"] = "\(body.count)"
            return respond(client, 200, meta, Data(), headOnly: true)
        }
        var status = 200
        if let range = headers["range"], range.hasPrefix("bytes="), let start = Int(range.dropFirst(6).split(separator: "-").first ?? "") {
            lock.withLock { _rangeRequests.append("\(name) \(range)") }
            if start < body.count {
                body = body.subdata(in: start..<body.count)
                status = 206
                meta["Content-Range"] = "bytes \(start)-\(file.content.count - 1)/\(file.content.count)"
            }
        }
        let cut = lock.withLock { () -> Int? in
            defer { _cutAfter[name] = nil }
            return _cutAfter[name]
        }
        meta["Content-Length"] = "\(body.count)"
        respond(client, status, meta, cut.map { body.prefix($0) } ?? body)
    }

    private func respond(_ client: Int32, _ status: Int, _ headers: [String: String], _ body: Data, headOnly: Bool = false) {
        var head = "HTTP/1.1 \(status) \(status == 200 ? "OK" : status == 206 ? "Partial Content" : "Not Found")\r\n"
        var all = headers
        if all["Content-Length"] == nil { all["Content-Length"] = "\(body.count)" }
        all["Connection"] = "close"
        for (k, v) in all { head += "\(k): \(v)\r\n" }
        head += "\r\n"
        var out = Data(head.utf8)
        if !headOnly { out += body }
        out.withUnsafeBytes { raw in
            var sent = 0
            while sent < raw.count {
                let n = send(client, raw.baseAddress! + sent, raw.count - sent, Int32(MSG_NOSIGNAL))
                if n <= 0 { return }
                sent += n
            }
        }
    }
}
