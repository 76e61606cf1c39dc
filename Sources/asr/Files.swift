import ASRBatch
import ASRKit
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The batch layer's file chores, under the name the commands have always used.
typealias Files = BatchFiles

/// `-` as an input: standard input, copied to a private temporary file first. libsndfile needs to seek in FLAC,
/// Ogg and MP3 (a pipe cannot seek), so spooling is what makes every format work from a pipe. The file is unlinked
/// as soon as it is written and read through /dev/fd, so nothing is left behind even if the process is killed.
final class StandardInput {
    /// The path audio readers open (`/dev/fd/N` of the unlinked spool file).
    let path: String
    private let fd: Int32

    static let displayName = "standard input"

    init() throws {
        func fail(_ reason: String) -> ASRError { .unreadableAudio(file: Self.displayName, reason: reason) }
        if isatty(STDIN_FILENO) != 0 {
            throw fail("it is a terminal; pipe audio into asr (e.g. `cat talk.flac | asr transcribe -`)")
        }
        let directory = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
        var template = Array((directory + "/asr-stdin-XXXXXX").utf8CString)
        let fd = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard fd >= 0 else { throw fail("cannot create a temporary file in \(directory): \(Files.errorText(errno))") }
        _ = template.withUnsafeBufferPointer { unlink($0.baseAddress!) }
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(STDIN_FILENO, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                let reason = Files.errorText(errno)
                close(fd)
                throw fail("cannot read: \(reason)")
            }
            if n == 0 { break }
            if let reason = AtomicFile.writeAll(Data(buffer[0..<n]), to: fd) {
                close(fd)
                throw fail("cannot spool to a temporary file in \(directory): \(reason)")
            }
        }
        guard lseek(fd, 0, SEEK_END) > 0 else {
            close(fd)
            throw ASRError.invalidAudio(file: Self.displayName, reason: "nothing was piped in (standard input is empty)")
        }
        self.fd = fd
        path = "/dev/fd/\(fd)"
    }

    deinit { close(fd) }
}
