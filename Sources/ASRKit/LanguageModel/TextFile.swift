import CZlib
import Foundation

/// Reads a text file line by line in large blocks, plain or gzip-compressed (zlib's gzread passes plain files
/// through unchanged, so one path serves both). Lines are handed out as byte slices of the block buffer, without
/// copies or String allocation: an ARPA file of hundreds of megabytes is parsed at the speed of the disk.
final class TextFile {
    let path: String
    private let file: gzFile
    private var buffer: UnsafeMutablePointer<UInt8>
    private var capacity: Int
    private var start = 0          // first unread byte in buffer
    private var end = 0            // one past the last valid byte
    private var atEOF = false
    /// 1-based number of the line last returned (for error messages).
    private(set) var lineNumber = 0
    /// An upper bound on the bytes this file can yield: its size, or 64× that when gzip-compressed (ARPA text
    /// compresses about 3×), for sanity checks on counts announced in headers.
    let byteBudget: Int

    init(path: String, blockSize: Int = 4 << 20) throws {
        self.path = path
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ASRError.invalidLanguageModel(file: path, reason: "no such file")
        }
        guard !isDirectory.boolValue else { throw ASRError.invalidLanguageModel(file: path, reason: "is a directory") }
        let size = ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? Int.max / 128
        guard let file = gzopen(path, "rb") else {
            throw ASRError.invalidLanguageModel(file: path, reason: "cannot open: \(String(cString: strerror(errno)))")
        }
        self.file = file
        gzbuffer(file, 1 << 20)
        byteBudget = gzdirect(file) == 1 ? size : size.multipliedReportingOverflow(by: 64).partialValue
        capacity = blockSize
        buffer = .allocate(capacity: capacity + 1)
    }

    deinit {
        gzclose(file)
        buffer.deallocate()
    }

    /// The next line without its line terminator ("\n" or "\r\n"), or nil at the end of the file. The slice is
    /// valid until the next call. A NUL byte follows the slice so C number parsers stop there.
    func nextLine() throws -> UnsafeMutableBufferPointer<UInt8>? {
        while true {
            if let newline = memchr(buffer + start, 0x0A, end - start) {
                let lineEnd = newline.assumingMemoryBound(to: UInt8.self) - buffer
                return take(upTo: lineEnd, skip: 1)
            }
            if atEOF {
                guard end > start else { return nil }
                return take(upTo: end, skip: 0)
            }
            try refill()
        }
    }

    private func take(upTo lineEnd: Int, skip: Int) -> UnsafeMutableBufferPointer<UInt8> {
        var stop = lineEnd
        if stop > start, buffer[stop - 1] == 0x0D { stop -= 1 }
        let line = UnsafeMutableBufferPointer(start: buffer + start, count: stop - start)
        buffer[stop] = 0      // overwrites the terminator, already consumed
        start = lineEnd + skip
        lineNumber += 1
        return line
    }

    private func refill() throws {
        // Keep the partial line; grow the buffer when one line fills it.
        if start > 0 {
            memmove(buffer, buffer + start, end - start)
            end -= start
            start = 0
        }
        if end == capacity {
            guard capacity < 1 << 30 else {
                throw ASRError.invalidLanguageModel(file: path, reason: "line \(lineNumber + 1) is longer than 1 GB")
            }
            let grown = UnsafeMutablePointer<UInt8>.allocate(capacity: capacity * 2 + 1)
            grown.update(from: buffer, count: end)
            buffer.deallocate()
            buffer = grown
            capacity *= 2
        }
        let wanted = UInt32(min(capacity - end, Int(Int32.max)))
        let count = gzread(file, buffer + end, wanted)
        if count < 0 {
            var code: Int32 = 0
            let message = gzerror(file, &code).map { String(cString: $0) } ?? "read error"
            throw ASRError.invalidLanguageModel(file: path, reason: "cannot read: \(message)")
        }
        if count == 0 {
            // gzread returns 0 both at a clean end and on a truncated gzip stream; gzerror tells them apart.
            var code: Int32 = 0
            let message = gzerror(file, &code)
            if code != Z_OK && code != Z_STREAM_END, let message {
                throw ASRError.invalidLanguageModel(file: path, reason: "corrupt or truncated gzip data: \(String(cString: message))")
            }
            atEOF = true
        }
        end += Int(count)
    }
}
