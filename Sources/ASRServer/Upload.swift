import Foundation
import Hummingbird

import NIOCore

/// A private temporary file for one upload: created by mkstemp (mode 0600, a random name under the temporary
/// directory, never a name taken from the request) and removed when closed. On Linux the name is unlinked at once and
/// the file is read back through /proc/self/fd, so nothing is left behind even if the process is killed.
final class TemporaryFile {
    private(set) var descriptor: Int32
    private let createdPath: String
    /// The path the audio decoder opens.
    let path: String
    private(set) var size = 0

    init(directory: String) throws {
        var template = Array((directory.hasSuffix("/") ? directory : directory + "/").utf8CString.dropLast())
        template += Array("asr-upload-XXXXXX".utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else {
            throw APIError(.internalServerError, "Cannot create a temporary file for the upload: \(String(cString: strerror(errno)))")
        }
        descriptor = fd
        createdPath = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        #if os(Linux)
        unlink(createdPath)
        path = "/proc/self/fd/\(fd)"
        #else
        path = createdPath
        #endif
    }

    /// Appends `buffer`.
    func append(_ buffer: ByteBuffer) throws {
        try buffer.withUnsafeReadableBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    throw APIError(.internalServerError, "Cannot store the upload: \(String(cString: strerror(errno)))")
                }
                offset += written
            }
        }
        size += buffer.readableBytes
    }

    /// Closes and removes the file (idempotent).
    func remove() {
        guard descriptor >= 0 else { return }
        #if !os(Linux)
        unlink(createdPath)
        #endif
        close(descriptor)
        descriptor = -1
    }

    deinit { remove() }
}

/// The fields of a transcription request and its audio, streamed to a temporary file.
struct UploadedForm {
    var fields: [String: [String]] = [:]
    var filename: String?
    var file: TemporaryFile?

    func value(_ name: String) -> String? { fields[name]?.last }

    /// The field `name` as one of `T`'s cases (`normalize` applied to what was sent; `default` when it is absent),
    /// else a 400 that lists the choices.
    func choice<T: RawRepresentable & CaseIterable>(
        _ name: String, default fallback: T, normalize: (String) -> String = { $0 }
    ) throws -> T where T.RawValue == String {
        let sent = value(name) ?? fallback.rawValue
        guard let chosen = T(rawValue: normalize(sent)) else {
            throw APIError.badRequest(
                "\(name) '\(sent)' is not one of \(T.allCases.map(\.rawValue).joined(separator: ", ")).", param: name)
        }
        return chosen
    }
}

/// Limits on what a multipart body may hold besides the file.
enum FormLimits {
    static let maxFieldBytes = 64 * 1024
    static let maxParts = 64
    /// The parser keeps part headers in memory until their line ends; this many bytes without a header or body
    /// callback means headers (or a preamble) far larger than any real client sends.
    static let maxBytesWithoutProgress = 256 * 1024
}

/// Streams a multipart/form-data body through MultipartKit's parser: the `file` part goes to `file` as it arrives,
/// the other parts (small) are kept. Stops with 413 as soon as more than `maxBytes` have been received.
func readMultipartForm(
    _ body: RequestBody, boundary: String, maxBytes: Int, into file: TemporaryFile
) async throws -> UploadedForm {
    final class Collector {
        var form = UploadedForm()
        var headers: [(String, String)] = []
        var partName: String?
        var isFile = false
        var value: [UInt8] = []
        var parts = 0
        var completedFile = false
        var error: APIError?
        var progressed = false
        let file: TemporaryFile
        init(file: TemporaryFile) { self.file = file }

        func startBodyIfNeeded() {
            guard partName == nil, error == nil else { return }
            let disposition = headers.last { $0.0.lowercased() == "content-disposition" }?.1 ?? ""
            let parameters = HeaderParameters.parse(disposition)
            guard parameters.value.lowercased() == "form-data", let name = parameters["name"] else {
                error = .badRequest("A multipart part has no 'Content-Disposition: form-data; name=...' header.")
                return
            }
            partName = name
            isFile = name == "file"
            if isFile {
                guard form.file == nil else {
                    error = .badRequest("More than one 'file' part.", param: "file")
                    return
                }
                form.file = file
                form.filename = parameters["filename"]
            }
        }
    }
    let collector = Collector(file: file)
    let parser = MultipartParser(boundary: boundary)
    parser.onHeader = { name, value in
        collector.progressed = true
        collector.headers.append((name, value))
        if collector.headers.count > 32 { collector.error = .badRequest("A multipart part has too many headers.") }
    }
    parser.onBody = { buffer in
        collector.progressed = true
        collector.startBodyIfNeeded()
        guard collector.error == nil else { return }
        if collector.isFile {
            do { try collector.file.append(buffer) } catch { collector.error = error as? APIError ?? .badRequest("\(error)") }
        } else {
            collector.value += buffer.readableBytesView
            if collector.value.count > FormLimits.maxFieldBytes {
                collector.error = .badRequest("The field '\(collector.partName ?? "")' is longer than \(FormLimits.maxFieldBytes) bytes.",
                                              param: collector.partName)
            }
        }
    }
    parser.onPartComplete = {
        collector.progressed = true
        collector.startBodyIfNeeded()  // a part with an empty body
        guard collector.error == nil, let name = collector.partName else { return }
        collector.parts += 1
        if collector.parts > FormLimits.maxParts { collector.error = .badRequest("Too many multipart parts.") }
        if collector.isFile {
            collector.completedFile = true
        } else {
            collector.form.fields[name, default: []].append(String(decoding: collector.value, as: UTF8.self))
        }
        collector.headers = []
        collector.partName = nil
        collector.isFile = false
        collector.value = []
    }

    var received = 0
    var sinceProgress = 0
    for try await buffer in body {
        received += buffer.readableBytes
        if received > maxBytes { throw APIError.tooLarge(limit: maxBytes) }
        collector.progressed = false
        do {
            try parser.execute(buffer)
        } catch {
            throw APIError.badRequest("The multipart/form-data body is malformed.", code: "malformed_multipart")
        }
        if let error = collector.error { throw error }
        sinceProgress = collector.progressed ? 0 : sinceProgress + buffer.readableBytes
        if sinceProgress > FormLimits.maxBytesWithoutProgress {
            throw APIError.badRequest("The multipart/form-data body has an oversized preamble or part header.", code: "malformed_multipart")
        }
    }
    if collector.form.file != nil && !collector.completedFile {
        throw APIError.badRequest("The multipart/form-data body ends inside the 'file' part (no closing boundary).",
                                  param: "file", code: "malformed_multipart")
    }
    return collector.form
}

/// A header value with `; key=value` parameters (Content-Type, Content-Disposition), values optionally quoted.
struct HeaderParameters {
    var value = ""
    var parameters: [String: String] = [:]

    subscript(key: String) -> String? { parameters[key.lowercased()] }

    static func parse(_ header: String) -> HeaderParameters {
        var result = HeaderParameters()
        var scalars = Substring(header).unicodeScalars[...]
        func skipSpaces() { while let c = scalars.first, c == " " || c == "\t" { scalars.removeFirst() } }
        func token(until stops: Set<Unicode.Scalar>) -> String {
            var out = String.UnicodeScalarView()
            while let c = scalars.first, !stops.contains(c) { out.append(c); scalars.removeFirst() }
            return String(out).trimmingCharacters(in: .whitespaces)
        }
        result.value = token(until: [";"])
        while scalars.first == ";" {
            scalars.removeFirst()
            skipSpaces()
            let key = token(until: ["=", ";"]).lowercased()
            guard scalars.first == "=" else { continue }
            scalars.removeFirst()
            skipSpaces()
            var value = ""
            if scalars.first == "\"" {
                scalars.removeFirst()
                var out = String.UnicodeScalarView()
                while let c = scalars.first, c != "\"" {
                    scalars.removeFirst()
                    if c == "\\", let next = scalars.first { out.append(next); scalars.removeFirst() } else { out.append(c) }
                }
                if !scalars.isEmpty { scalars.removeFirst() }
                value = String(out)
                _ = token(until: [";"])
            } else {
                value = token(until: [";"])
            }
            if !key.isEmpty && result.parameters[key] == nil { result.parameters[key] = value }
        }
        return result
    }
}

/// The boundary of a multipart/form-data request (415 for any other content type).
func multipartBoundary(_ contentType: String?) throws -> String {
    guard let contentType else { throw APIError.notMultipart }
    let parsed = HeaderParameters.parse(contentType)
    guard parsed.value.lowercased() == "multipart/form-data" else { throw APIError.notMultipart }
    // RFC 2046: 1 to 70 characters.
    guard let boundary = parsed["boundary"], (1...70).contains(boundary.utf8.count) else {
        throw APIError.badRequest("The multipart/form-data content type has no valid boundary parameter.", code: "malformed_multipart")
    }
    return boundary
}
