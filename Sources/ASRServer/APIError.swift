import Foundation
import Hummingbird

/// An error answered in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}` with its HTTP status.
package struct APIError: Error, Sendable, CustomStringConvertible {
    package var status: HTTPResponse.Status
    package var message: String
    package var type: String
    package var param: String?
    package var code: String?
    /// Extra response headers (Retry-After).
    package var headers: HTTPFields = [:]

    package init(_ status: HTTPResponse.Status, _ message: String, type: String? = nil, param: String? = nil, code: String? = nil) {
        self.status = status
        self.message = message
        self.type = type ?? (status.code >= 500 ? "server_error" : "invalid_request_error")
        self.param = param
        self.code = code
    }

    package var description: String { "\(status.code) \(message)" }

    struct Body: Encodable {
        struct Inner: Encodable {
            let message: String
            let type: String
            let param: String?
            let code: String?

            enum CodingKeys: String, CodingKey { case message, type, param, code }

            // `param` and `code` are written as null when absent, as OpenAI does.
            func encode(to encoder: any Encoder) throws {
                var container = encoder.container(keyedBy: CodingKeys.self)
                try container.encode(message, forKey: .message)
                try container.encode(type, forKey: .type)
                try container.encode(param, forKey: .param)
                try container.encode(code, forKey: .code)
            }
        }
        let error: Inner
    }

    /// `{"error": {...}}`, OpenAI's error object.
    var body: Body { Body(error: .init(message: message, type: type, param: param, code: code)) }

    package var response: Response {
        var fields = headers
        fields[.contentType] = "application/json"
        return Response(status: status, headers: fields, body: .init(byteBuffer: JSON.encode(body)))
    }

    // MARK: The errors the server answers

    static func badRequest(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(.badRequest, message, param: param, code: code)
    }

    static let unauthorized = APIError(
        .unauthorized, "Missing or incorrect API key: send it as 'Authorization: Bearer KEY'.", code: "invalid_api_key")

    static func notFound(_ message: String, param: String? = nil, code: String? = nil) -> APIError {
        APIError(.notFound, message, param: param, code: code)
    }

    static func tooLarge(limit: Int) -> APIError {
        APIError(.contentTooLarge, "The upload is larger than this server's limit of \(limit / 1_048_576) MB (--max-upload-mb).",
                 param: "file", code: "upload_too_large")
    }

    static let notMultipart = APIError(
        .unsupportedMediaType, "Send the request as multipart/form-data with the audio in a 'file' field.", code: "unsupported_media_type")

    static func audioTooLong(limit: Double) -> APIError {
        APIError(.unprocessableContent, "The audio is longer than this server's limit of \(JSON.number(limit)) seconds (--max-audio-seconds).",
                 param: "file", code: "audio_too_long")
    }

    static func queueFull(retryAfter: Int) -> APIError {
        var error = APIError(.tooManyRequests, "The server is busy: its queue of waiting requests is full. Retry after \(retryAfter) s.",
                             type: "rate_limit_error", code: "queue_full")
        error.headers[.retryAfter] = "\(retryAfter)"
        return error
    }

    /// A request's work ran past the compute-time limit (--max-compute-seconds) and was stopped.
    static func computeTimeExceeded(limit: Double) -> APIError {
        APIError(.serviceUnavailable, "The request needed more than this server's limit of \(JSON.number(limit)) seconds of compute (--max-compute-seconds) and was stopped; send shorter audio or a smaller beam.",
                 code: "compute_time_exceeded")
    }

    static let shuttingDown = APIError(.serviceUnavailable, "The server is shutting down.", code: "shutting_down")
}

/// JSON encoding for responses.
enum JSON {
    static func encode(_ value: some Encodable) -> ByteBuffer {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        // Encoding our own plain structs cannot fail.
        let data = (try? encoder.encode(value)) ?? Data("{}".utf8)
        return ByteBuffer(bytes: data)
    }

    /// A number without trailing zeros ("3600", "0.5").
    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }
}
