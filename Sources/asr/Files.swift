import ASRKit
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// File-system chores of the commands, with every failure an `ASRError` that names the path and says the problem in
/// words (never a Foundation error dump).
enum Files {
    static func errorText(_ code: Int32) -> String { String(cString: strerror(code)) }

    /// Creates `path` and its missing parents (mkdir -p). Errors name `path` and the component that failed.
    static func makeDirectories(_ path: String) throws {
        func create(_ component: String) throws {
            var isDirectory: ObjCBool = false
            if FileManager.default.fileExists(atPath: component, isDirectory: &isDirectory) {
                guard isDirectory.boolValue else {
                    throw ASRError.writeFailed(
                        file: path, reason: component == path ? "exists and is not a directory" : "'\(component)' is not a directory")
                }
                return
            }
            let parent = (component as NSString).deletingLastPathComponent
            if !parent.isEmpty && parent != component { try create(parent) }
            if mkdir(component, 0o777) != 0 && errno != EEXIST {
                let reason = errorText(errno)
                throw ASRError.writeFailed(
                    file: path, reason: component == path ? "cannot create directory: \(reason)" : "cannot create directory '\(component)': \(reason)")
            }
        }
        try create(path.isEmpty ? "." : path)
    }

    /// Checks that files can be created in `directory` by creating and removing one (access(2) says yes to root on
    /// read-only or virtual file systems such as /proc). The probe carries AtomicFile's temporary suffix, so a
    /// leftover (SIGKILL between the two calls) is removed like any stale partial file.
    static func checkWritable(directory: String) throws {
        let probe = (directory.isEmpty ? "." : directory) + "/.asr-probe.\(getpid())" + AtomicFile.temporarySuffix
        let fd = open(probe, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard fd >= 0 || errno == EEXIST else {
            throw ASRError.writeFailed(file: directory, reason: "cannot create files in this directory: \(errorText(errno))")
        }
        if fd >= 0 { close(fd) }
        unlink(probe)
    }

    /// Makes sure `path` can be written before any work is done: "-" (stdout) always can; a FIFO or character
    /// device is left alone (opening a FIFO would wait for its reader); for a regular file the directory is created
    /// when missing and checked for writability.
    static func prepareOutput(_ path: String) throws {
        guard path != "-" else { return }
        switch try AtomicFile.destination(of: path) {
        case .stream: return
        case .regularFile(let target):
            let directory = (target as NSString).deletingLastPathComponent
            do {
                try makeDirectories(directory.isEmpty ? "." : directory)
                try checkWritable(directory: directory.isEmpty ? "." : directory)
            } catch let ASRError.writeFailed(_, reason) {
                throw ASRError.writeFailed(file: path, reason: reason)
            }
        }
    }

    /// Writes `data` to `path`: standard output for "-", else through `AtomicFile` (atomic replace of regular files,
    /// written straight into FIFOs and character devices, links followed).
    static func write(_ data: Data, to path: String) throws {
        if path == "-" {
            if let reason = AtomicFile.writeAll(data, to: STDOUT_FILENO) {
                throw ASRError.writeFailed(file: "standard output", reason: reason)
            }
        } else {
            try AtomicFile.write(data, to: URL(fileURLWithPath: path))
        }
    }

    /// Reads a whole file; errors say in words what is wrong (no such file, permission denied, a directory).
    static func read(_ path: String, as makeError: (String) -> ASRError) throws -> Data {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { throw makeError("no such file") }
        if isDirectory.boolValue { throw makeError("is a directory") }
        let fd = open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw makeError(errorText(errno)) }
        defer { close(fd) }
        var data = Data()
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        while true {
            let n = buffer.withUnsafeMutableBytes { Glibc.read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw makeError(errorText(errno))
            }
            if n == 0 { break }
            data.append(contentsOf: buffer[0..<n])
        }
        return data
    }
}

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
