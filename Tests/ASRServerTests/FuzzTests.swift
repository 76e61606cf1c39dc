import Foundation
@testable import ASRServer
import Testing

/// Malformed requests over raw sockets (bad boundaries, huge headers, wrong lengths, garbage, slow bodies): the
/// server answers or closes, never crashes, leaves no temporary file, and still transcribes afterwards. Bounded:
/// a fixed seed and count.
@Suite(.serialized) struct FuzzTests {
    struct SplitMix: RandomNumberGenerator {
        var state: UInt64
        mutating func next() -> UInt64 {
            state &+= 0x9E37_79B9_7F4A_7C15
            var z = state
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
    }

    static let sample = Paths.fixture("audio/builtin/08.wav")

    /// One malformed request, chosen by `kind`, built from a valid one.
    static func malformed(_ kind: Int, valid: Multipart, _ random: inout SplitMix) -> Data {
        let body = valid.finished()
        func head(_ contentType: String, length: Int?, extra: String = "") -> String {
            "POST /v1/audio/transcriptions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Type: \(contentType)\r\n"
                + (length.map { "Content-Length: \($0)\r\n" } ?? "") + extra + "\r\n"
        }
        switch kind {
        case 0:  // wrong boundary
            return Data(head("multipart/form-data; boundary=nope", length: body.count).utf8) + body
        case 1:  // empty or overlong boundary
            let boundary = Bool.random(using: &random) ? "" : String(repeating: "b", count: 200)
            return Data(head("multipart/form-data; boundary=\(boundary)", length: body.count).utf8) + body
        case 2:  // body cut at a random place, Content-Length saying so
            let cut = Int.random(in: 0..<body.count, using: &random)
            return Data(head(valid.contentType, length: cut).utf8) + body.prefix(cut)
        case 3:  // Content-Length larger than what is sent (the client then stops)
            return Data(head(valid.contentType, length: body.count + 5000).utf8) + body
        case 4:  // Content-Length smaller: the rest is read as the next request
            return Data(head(valid.contentType, length: body.count / 2).utf8) + body
        case 5:  // random bytes flipped in the multipart framing
            var broken = body
            for _ in 0..<8 {
                let i = Int.random(in: 0..<min(broken.count, 400), using: &random)
                broken[broken.startIndex + i] = UInt8.random(in: 0...255, using: &random)
            }
            return Data(head(valid.contentType, length: broken.count).utf8) + broken
        case 6:  // a huge request header
            return Data(head(valid.contentType, length: body.count, extra: "X-Big: \(String(repeating: "a", count: 200_000))\r\n").utf8) + body
        case 7:  // a huge part header, then no end
            let part = "--\(valid.boundary)\r\nContent-Disposition: form-data; name=\"file\"; filename=\"\(String(repeating: "x", count: 600_000))\"\r\n\r\n"
            return Data(head(valid.contentType, length: part.utf8.count).utf8) + Data(part.utf8)
        case 8:  // garbage instead of HTTP
            return Data((0..<Int.random(in: 1...4000, using: &random)).map { _ in UInt8.random(in: 0...255, using: &random) })
        case 9:  // bad Content-Length and Transfer-Encoding values
            let values = ["-1", "abc", "99999999999999999999", "1, 2"]
            return Data(head(valid.contentType, length: nil, extra: "Content-Length: \(values.randomElement(using: &random)!)\r\n").utf8) + body
        case 10:  // broken chunked encoding
            return Data(head(valid.contentType, length: nil, extra: "Transfer-Encoding: chunked\r\n").utf8) + Data("zz\r\nhello\r\n".utf8) + body
        case 11:  // headers-only multipart with no parts, or parts without names
            let text = "--\(valid.boundary)\r\nContent-Type: text/plain\r\n\r\nhello\r\n--\(valid.boundary)--\r\n"
            return Data(head(valid.contentType, length: text.utf8.count).utf8) + Data(text.utf8)
        default:  // two file parts
            var twice = Multipart()
            twice.file(Data([1, 2, 3]))
            let first = twice.body
            let text = first + first + Data("--\(twice.boundary)--\r\n".utf8)
            return Data(head(twice.contentType, length: text.count).utf8) + text
        }
    }

    @Test func malformedRequestsNeverCrashTheServer() async throws {
        let running = try await RunningServer.start { options in
            options.maxUploadBytes = 2 * 1_048_576
            options.idleTimeout = .seconds(2)
            options.uploadTimeout = .seconds(3)
            options.queueSize = 64
        }
        defer { Task { await running.stop() } }
        let port = running.port
        var valid = Multipart()
        valid.field("response_format", "text")
        valid.file(try Data(contentsOf: URL(fileURLWithPath: Self.sample)))
        let template = valid
        let statuses = try await offPool { () -> [Int: Int] in
            var statuses: [Int: Int] = [:]
            var random = SplitMix(state: 17)
            for round in 0..<260 {
                let kind = round % 13
                let data = Self.malformed(kind, valid: template, &random)
                guard let connection = try? Connection(port: port) else { throw TestFailure("server gone after round \(round)") }
                connection.setReceiveTimeout(10)
                connection.send(data)
                if kind == 3 || kind == 7 { shutdown(connection.fd, Int32(SHUT_WR)) }
                let reply = try? connection.readReply()
                statuses[reply?.status ?? 0, default: 0] += 1
            }
            return statuses
        }
        // No 5xx for malformed input.
        #expect(statuses.keys.allSatisfy { $0 < 500 }, "\(statuses)")

        // Slowloris: a body trickling in is cut by the upload timeout; headers trickling in by the idle timeout.
        let started = Date()
        let cut = try await offPool { () -> (Bool, Bool) in
            let body = try Connection(port: port)
            body.send(Data("POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Type: \(template.contentType)\r\nContent-Length: 100000\r\n\r\n".utf8))
            var bodyCut = false
            for i in 0..<150 {
                Thread.sleep(forTimeInterval: 0.1)
                if !body.send(Data([UInt8(ascii: "a") + UInt8(i % 20)])) { bodyCut = true; break }
            }
            let headers = try Connection(port: port)
            headers.send(Data("GET /health HTTP/1.1\r\n".utf8))
            headers.setReceiveTimeout(8)
            let closed = headers.readAll().isEmpty
            return (bodyCut, closed)
        }
        #expect(cut.0)
        #expect(cut.1)
        #expect(Date().timeIntervalSince(started) < 30)

        // Still serving, nothing left behind.
        let reply = try await transcription(port: port, valid)
        #expect(reply.status == 200)
        #expect(reply.text == (try cliTranscript(Self.sample, format: "txt")))
        #expect(try await request(port: port, "GET", "/health").status == 200)
        try await Task.sleep(for: .milliseconds(200))
        #expect(running.leftovers.isEmpty)
        let metrics = try await request(port: port, "GET", "/metrics").text
        #expect(metrics.contains("asr_in_flight_requests 0"))
    }
}
