import ASRKit
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// File-system chores of a batch (creating output folders, checking they can be written before any work, atomic
/// writes, reads), with every failure an `ASRError` that names the path and says the problem in
/// words (never a Foundation error dump).
public enum BatchFiles {
    /// `strerror` of `code`.
    public static func errorText(_ code: Int32) -> String { String(cString: strerror(code)) }

    /// Creates `path` and its missing parents (mkdir -p). Errors name `path` and the component that failed.
    public static func makeDirectories(_ path: String) throws {
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
    public static func checkWritable(directory: String) throws {
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
    public static func prepareOutput(_ path: String) throws {
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
    public static func write(_ data: Data, to path: String) throws {
        if path == "-" {
            if let reason = AtomicFile.writeAll(data, to: STDOUT_FILENO) {
                throw ASRError.writeFailed(file: "standard output", reason: reason)
            }
        } else {
            try AtomicFile.write(data, to: URL(fileURLWithPath: path))
        }
    }

    /// Reads a whole file; errors say in words what is wrong (no such file, permission denied, a directory).
    public static func read(_ path: String, as makeError: (String) -> ASRError) throws -> Data {
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
