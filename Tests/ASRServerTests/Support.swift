import ASRBuiltinModel
import ASRKit
@testable import ASRServer
import Foundation
import Hummingbird
import Logging

/// Paths and the `asr` binary built with the tests.
enum Paths {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = root.appendingPathComponent("fixtures")
    static func fixture(_ path: String) -> String { fixtures.appendingPathComponent(path).path }

    static var executable: URL {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("asr")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("asr")
    }
}

/// Runs a program to completion.
func runProgram(_ executable: URL, _ arguments: [String], in directory: String? = nil) throws -> (status: Int32, stdout: Data, stderr: String) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    if let directory { process.currentDirectoryURL = URL(fileURLWithPath: directory) }
    let out = Pipe(), err = Pipe()
    process.standardOutput = out
    process.standardError = err
    try process.run()
    let outData = out.fileHandleForReading.readDataToEndOfFile()
    let errData = err.fileHandleForReading.readDataToEndOfFile()
    process.waitUntilExit()
    return (process.terminationStatus, outData, String(decoding: errData, as: UTF8.self))
}

/// What the CLI prints for `asr transcribe FILE --format FORMAT ARGS...`.
func cliTranscript(_ file: String, format: String, _ extra: [String] = []) throws -> String {
    let result = try runProgram(Paths.executable, ["transcribe", file, "--format", format] + extra)
    guard result.status == 0 else { throw TestFailure("asr transcribe failed: \(result.stderr)") }
    return String(decoding: result.stdout, as: UTF8.self)
}

struct TestFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Blocking work (sockets, processes) on a thread of its own, not on the cooperative pool the in-process server uses.
func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        Thread.detachNewThread { continuation.resume(with: Result { try body() }) }
    }
}

/// A multipart/form-data body, built by hand as a client would.
struct Multipart {
    let boundary = "asr-test-\(UUID().uuidString)"
    private(set) var body = Data()

    var contentType: String { "multipart/form-data; boundary=\(boundary)" }

    mutating func field(_ name: String, _ value: String) {
        body += Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"\r\n\r\n\(value)\r\n".utf8)
    }

    mutating func file(_ data: Data, filename: String = "audio.wav", name: String = "file") {
        body += Data("--\(boundary)\r\nContent-Disposition: form-data; name=\"\(name)\"; filename=\"\(filename)\"\r\nContent-Type: application/octet-stream\r\n\r\n".utf8)
        body += data
        body += Data("\r\n".utf8)
    }

    func finished() -> Data { body + Data("--\(boundary)--\r\n".utf8) }
}

/// An HTTP exchange over a plain loopback socket (so that tests control every byte, malformed ones included).
struct Reply: Sendable {
    let status: Int
    let headers: [String: String]
    let body: Data
    var text: String { String(decoding: body, as: UTF8.self) }
    var json: [String: Any] { (try? JSONSerialization.jsonObject(with: body)) as? [String: Any] ?? [:] }
    var errorCode: String? { (json["error"] as? [String: Any])?["code"] as? String }
}

final class Connection: @unchecked Sendable {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        guard fd >= 0 else { throw TestFailure("socket") }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { systemConnect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard result == 0 else { close(fd); throw TestFailure("connect to 127.0.0.1:\(port) failed: errno \(errno)") }
        var timeout = timeval(tv_sec: 60, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        var one: Int32 = 1
        setsockopt(fd, Int32(IPPROTO_TCP), TCP_NODELAY, &one, socklen_t(MemoryLayout<Int32>.size))
    }

    deinit { close(fd) }

    /// Sends bytes; false if the server has closed the connection.
    @discardableResult
    func send(_ data: Data) -> Bool {
        data.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let n = systemSend(fd, bytes.baseAddress! + offset, bytes.count - offset)
                if n <= 0 { return false }
                offset += n
            }
            return true
        }
    }

    func setReceiveTimeout(_ seconds: Int) {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    /// Everything until the server closes (or the receive timeout).
    func readAll() -> Data {
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 65536)
        while true {
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { break }
            data.append(contentsOf: buffer[0..<n])
        }
        return data
    }

    /// The response (requests are sent with Connection: close, so it ends at EOF).
    func readReply() throws -> Reply {
        let data = readAll()
        guard let split = data.range(of: Data("\r\n\r\n".utf8)) else { throw TestFailure("no HTTP response (\(data.count) bytes)") }
        let head = String(decoding: data[..<split.lowerBound], as: UTF8.self).components(separatedBy: "\r\n")
        let statusLine = head[0].split(separator: " ")
        guard statusLine.count >= 2, let status = Int(statusLine[1]) else { throw TestFailure("bad status line \(head[0])") }
        var headers: [String: String] = [:]
        for line in head.dropFirst() {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers[line[..<colon].lowercased()] = line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)
        }
        return Reply(status: status, headers: headers, body: Data(data[split.upperBound...]))
    }
}

/// One request with a body on its own connection.
func request(
    port: Int, _ method: String, _ path: String, headers: [String: String] = [:], body: Data = Data()
) async throws -> Reply {
    try await offPool {
        let connection = try Connection(port: port)
        var head = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        for (name, value) in headers { head += "\(name): \(value)\r\n" }
        if method != "GET" { head += "Content-Length: \(body.count)\r\n" }
        connection.send(Data((head + "\r\n").utf8) + body)
        return try connection.readReply()
    }
}

func transcription(port: Int, _ form: Multipart, headers: [String: String] = [:]) async throws -> Reply {
    var all = headers
    all["Content-Type"] = form.contentType
    return try await request(port: port, "POST", "/v1/audio/transcriptions", headers: all, body: form.finished())
}

func form(file path: String, _ fields: [(String, String)] = []) throws -> Multipart {
    var form = Multipart()
    for (name, value) in fields { form.field(name, value) }
    form.file(try Data(contentsOf: URL(fileURLWithPath: path)), filename: (path as NSString).lastPathComponent)
    return form
}

/// An in-process server on an ephemeral loopback port, stopped by `stop()`.
final class RunningServer: @unchecked Sendable {
    let server: TranscriptionServer
    let port: Int
    let temporaryDirectory: String
    private let task: Task<Void, any Error>

    static let builtin: Transcriber = {
        BLAS.setThreads(0)
        return try! BuiltinModel.load()
    }()

    static func start(
        models: [ServedModel]? = nil, configure: (inout ServerOptions) -> Void = { _ in }
    ) async throws -> RunningServer {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("asr-serve-test-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var options = ServerOptions()
        options.port = 0
        options.temporaryDirectory = directory
        configure(&options)
        var logger = Logger(label: "asr.serve.test")
        logger.logLevel = .critical
        let server = TranscriptionServer(
            models: models ?? [ServedModel(name: "builtin", transcriber: builtin, languageModel: nil)], options: options, logger: logger)
        let (ports, continuation) = AsyncStream.makeStream(of: Int.self)
        let app = server.makeApplication { port in continuation.yield(port) }
        let task = Task { try await app.runService(gracefulShutdownSignals: []) }
        var iterator = ports.makeAsyncIterator()
        guard let port = await iterator.next() else { throw TestFailure("server did not start") }
        return RunningServer(server: server, port: port, temporaryDirectory: directory, task: task)
    }

    private init(server: TranscriptionServer, port: Int, temporaryDirectory: String, task: Task<Void, any Error>) {
        self.server = server
        self.port = port
        self.temporaryDirectory = temporaryDirectory
        self.task = task
    }

    /// Files left in the server's temporary directory.
    var leftovers: [String] { (try? FileManager.default.contentsOfDirectory(atPath: temporaryDirectory)) ?? [] }

    func stop() async {
        task.cancel()
        _ = try? await task.value
        try? FileManager.default.removeItem(atPath: temporaryDirectory)
    }
}

// The C socket calls, under names that Connection's methods do not shadow.
private func systemConnect(_ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32 {
    connect(fd, address, length)
}

private func systemSend(_ fd: Int32, _ bytes: UnsafeRawPointer, _ count: Int) -> Int {
    #if os(Linux)
    send(fd, bytes, count, Int32(MSG_NOSIGNAL))
    #else
    send(fd, bytes, count, 0)
    #endif
}

/// Minutes of noise as a 16 kHz 16-bit WAV in a temporary folder (removed with the value): a long upload that keeps
/// the built-in model busy for about a second per minute.
final class NoiseRecording: @unchecked Sendable {
    let directory: URL
    let url: URL

    init(seconds: Int) throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("asr-noise-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        url = directory.appendingPathComponent("long.wav")
        let rate = 16000, count = rate * seconds
        var wav = Data()
        func u32(_ v: Int) { withUnsafeBytes(of: UInt32(v).littleEndian) { wav.append(contentsOf: $0) } }
        func u16(_ v: Int) { withUnsafeBytes(of: UInt16(v).littleEndian) { wav.append(contentsOf: $0) } }
        wav.append(contentsOf: Array("RIFF".utf8)); u32(36 + 2 * count); wav.append(contentsOf: Array("WAVEfmt ".utf8))
        u32(16); u16(1); u16(1); u32(rate); u32(2 * rate); u16(2); u16(16)
        wav.append(contentsOf: Array("data".utf8)); u32(2 * count)
        var state: UInt32 = 7
        var samples = [Int16](repeating: 0, count: count)
        for i in samples.indices {
            state = state &* 1_664_525 &+ 1_013_904_223
            samples[i] = Int16(truncatingIfNeeded: Int32(state >> 18) - 8192)
        }
        samples.withUnsafeBytes { wav.append(contentsOf: $0) }
        try wav.write(to: url)
    }

    /// A whole transcription request for it (head and multipart body), ready to send on a connection.
    func request() throws -> Data {
        let body = try form(file: url.path)
        let payload = body.finished()
        let head = "POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: \(body.contentType)\r\n"
            + "Content-Length: \(payload.count)\r\n\r\n"
        return Data(head.utf8) + payload
    }

    deinit { try? FileManager.default.removeItem(at: directory) }
}
