import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Writes files so that a reader (or a rerun after a crash) sees either the old file or the complete new one,
/// never a partial write: the data goes to a temporary file beside the target, is flushed to disk, then renamed.
///
/// Only regular files are replaced that way. A symbolic link is followed to the file it names, and that file is
/// replaced (the link stays a link); a FIFO or a character device (`/dev/null`, `/dev/stdout`, a terminal) is
/// opened and written as it is; a directory, block device or socket is refused. Nothing that is not a regular file
/// is ever renamed over.
package enum AtomicFile {
    /// Temporary files carry this marker so that leftovers of a killed run can be recognised and removed.
    package static let temporarySuffix = ".asr-partial"

    /// Removes temporary files that a killed process left for `url` (their writer's PID is no longer running).
    package static func removeStalePartials(for url: URL) {
        let target = URL(fileURLWithPath: (try? resolveLinks(url.path)) ?? url.path)
        let directory = target.deletingLastPathComponent()
        let prefix = "." + target.lastPathComponent + "."
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory.path) else { return }
        for name in names where name.hasPrefix(prefix) && name.hasSuffix(temporarySuffix) {
            let pidText = name.dropFirst(prefix.count).dropLast(temporarySuffix.count)
            guard let pid = Int32(pidText), pid != getpid() else { continue }
            if kill(pid, 0) != 0 && errno == ESRCH {
                unlink(directory.appendingPathComponent(name).path)
            }
        }
    }

    /// The path `path` ends at once symbolic links (of the last component, repeatedly) are followed: the path
    /// itself when it is not a link or does not exist, the target of a dangling link (which will be created there).
    package static func resolveLinks(_ path: String) throws -> String {
        var current = path
        for _ in 0..<40 {
            var info = stat()
            guard lstat(current, &info) == 0 else {
                if errno == ENOENT || errno == ENOTDIR { return current }
                throw ASRError.writeFailed(file: path, reason: errorText(errno))
            }
            guard info.st_mode & S_IFMT == S_IFLNK else { return current }
            var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
            let n = readlink(current, &buffer, buffer.count - 1)
            guard n >= 0 else { throw ASRError.writeFailed(file: path, reason: errorText(errno)) }
            let destination = String(decoding: buffer[0..<n].map { UInt8(bitPattern: $0) }, as: UTF8.self)
            current = destination.hasPrefix("/")
                ? destination : (current as NSString).deletingLastPathComponent + "/" + destination
        }
        throw ASRError.writeFailed(file: path, reason: "too many levels of symbolic links")
    }

    /// What a write to `path` would do: replace a regular file (or create one), write into a FIFO or character
    /// device, or nothing because the path cannot be written (the reason in words).
    package enum Destination: Equatable, Sendable {
        case regularFile(path: String)
        case stream(path: String)
    }

    /// Where `path` leads (symbolic links followed) and how it would be written; throws `writeFailed` for a
    /// directory, block device or socket.
    package static func destination(of path: String) throws -> Destination {
        let target = try resolveLinks(path)
        var info = stat()
        guard lstat(target, &info) == 0 else {
            if errno == ENOENT { return .regularFile(path: target) }
            throw ASRError.writeFailed(file: path, reason: errorText(errno))
        }
        switch info.st_mode & S_IFMT {
        case S_IFREG: return .regularFile(path: target)
        case S_IFIFO, S_IFCHR: return .stream(path: target)
        case S_IFDIR: throw ASRError.writeFailed(file: path, reason: "is a directory")
        case S_IFBLK: throw ASRError.writeFailed(file: path, reason: "is a block device; refusing to write over it")
        default: throw ASRError.writeFailed(file: path, reason: "is not a regular file, FIFO or character device")
        }
    }

    package static func write(_ data: Data, to url: URL) throws {
        let path = url.path
        func fail(_ reason: String) -> ASRError { .writeFailed(file: path, reason: reason) }
        switch try destination(of: path) {
        case .stream(let target):
            // O_NOCTTY: a terminal named as output must not become our controlling terminal.
            let fd = open(target, O_WRONLY | O_NOCTTY | O_CLOEXEC)
            guard fd >= 0 else { throw fail(errorText(errno)) }
            defer { close(fd) }
            if let reason = writeAll(data, to: fd) { throw fail(reason) }
        case .regularFile(let target):
            try replace(target, with: data, reportingAs: path)
        }
    }

    /// Writes `data` to descriptor `fd` whole (retrying short writes and EINTR); the error in words, or nil.
    package static func writeAll(_ data: Data, to fd: Int32) -> String? {
        var reason: String?
        data.withUnsafeBytes { raw in
            var offset = 0
            while offset < raw.count {
                let n = Glibc.write(fd, raw.baseAddress! + offset, raw.count - offset)
                if n < 0 {
                    if errno == EINTR { continue }
                    reason = errorText(errno)
                    return
                }
                offset += n
            }
        }
        return reason
    }

    /// Atomic replacement of the regular file (or absent file) `target`; errors name `shown`.
    private static func replace(_ target: String, with data: Data, reportingAs shown: String) throws {
        func fail(_ reason: String) -> ASRError { .writeFailed(file: shown, reason: reason) }
        let directory = (target as NSString).deletingLastPathComponent
        let name = (target as NSString).lastPathComponent
        let temporary = (directory.isEmpty ? "" : directory + "/") + "." + name + ".\(getpid())" + temporarySuffix
        // An existing file keeps its permissions.
        var existing = stat()
        let mode: mode_t = stat(target, &existing) == 0 ? existing.st_mode & 0o7777 : 0o644

        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw fail(errorText(errno)) }
        var reason = writeAll(data, to: fd)
        if reason == nil, fsync(fd) != 0 { reason = errorText(errno) }
        close(fd)
        if let reason {
            unlink(temporary)
            throw fail(reason)
        }
        guard rename(temporary, target) == 0 else {
            let message = errorText(errno)
            unlink(temporary)
            throw fail(message)
        }
    }

    package static func errorText(_ code: Int32) -> String { String(cString: strerror(code)) }
}
