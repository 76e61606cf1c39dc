import ASRKit
import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The audio files a batch names — files, folders (searched for audio by extension, optionally recursively) and `-`
/// for standard input — in a stable order (each folder's files sorted by name), each once, with where each one's
/// outputs go.
///
/// ```swift
/// let inputs = BatchInputs.collect(["talks/", "extra.flac"], recursive: true)
/// for item in inputs.items {
///     let transcript = try await transcriber.transcribe(file: item.url)
///     try BatchFiles.write(Data(transcript.text.utf8), to: item.output(extension: "txt", under: "out"))
/// }
/// ```
public struct BatchInputs: Sendable {
    /// One audio input.
    public struct Item: Sendable {
        /// Where the audio is (`/dev/stdin` for standard input).
        public let url: URL
        /// Path relative to the directory it was found in (the file name for a file named directly).
        public let relativePath: String
        /// The path as the user wrote it (joined with the relative path for files found in a directory); the name
        /// manifests and messages use.
        public let displayPath: String
        /// `-`: the audio comes from standard input.
        public var isStandardInput = false

        /// An input at `url`, found at `relativePath` under its folder and named `displayPath` in messages.
        public init(url: URL, relativePath: String, displayPath: String, isStandardInput: Bool = false) {
            self.url = url
            self.relativePath = relativePath
            self.displayPath = displayPath
            self.isStandardInput = isStandardInput
        }

        /// `talk.wav` → `talk.EXT` next to it, or `DIR/relative/talk.EXT` under the output directory.
        public func output(extension fileExtension: String, under directory: String?) -> String {
            let base: URL
            if let directory {
                base = URL(fileURLWithPath: directory).appendingPathComponent(relativePath)
            } else {
                base = url
            }
            return base.deletingPathExtension().appendingPathExtension(fileExtension).path
        }
    }

    /// A directory named on the command line: how many audio files it gave and how many subfolders were passed over.
    public struct Directory: Sendable {
        /// The folder as the user wrote it.
        public let path: String
        /// Audio files found in it.
        public var audioFiles = 0
        /// Subfolders passed over (not recursive).
        public var skippedSubdirectories = 0
    }

    /// The audio inputs, in order.
    public var items: [Item] = []
    /// The folders named, with what each gave.
    public var directories: [Directory] = []
    /// Folders that could not be listed: reported as failures, the rest of the batch goes on.
    public var problems: [(path: String, error: ASRError)] = []

    /// No inputs (add ``items`` yourself, or use ``collect(_:recursive:)``).
    public init() {}

    /// Extensions libsndfile reads; other files in a directory are not audio and are passed over.
    public static let audioExtensions: Set<String> = [
        "wav", "wave", "flac", "ogg", "oga", "opus", "mp3", "aif", "aiff", "aifc", "caf", "w64", "rf64", "au", "snd",
        "voc", "sph", "nist", "sd2", "paf", "iff", "svx", "htk", "mat", "mat4", "mat5", "pvf", "xi", "wve", "avr",
    ]

    /// The inputs `paths` name: a file (or a path that does not exist, reported when it is read) as it is, a folder's
    /// audio files (its subfolders' too when `recursive`), `-` as standard input. A file named twice is taken once.
    public static func collect(_ paths: [String], recursive: Bool) -> BatchInputs {
        var list = BatchInputs()
        var seen = Set<String>()
        for path in paths {
            if path == "-" {
                list.items.append(Item(url: URL(fileURLWithPath: "/dev/stdin"), relativePath: "stdin", displayPath: "-", isStandardInput: true))
                continue
            }
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue else {
                // A file, or nothing there: reported per file later, like any unreadable input.
                list.append(Item(url: URL(fileURLWithPath: path), relativePath: (path as NSString).lastPathComponent, displayPath: path), &seen)
                continue
            }
            let root = URL(fileURLWithPath: path).standardizedFileURL
            var directory = Directory(path: path)
            let before = list.items.count
            list.addFiles(in: root, root: root, userPath: path, recursive: recursive, &directory, &seen)
            directory.audioFiles = list.items.count - before
            list.directories.append(directory)
        }
        return list
    }

    private mutating func append(_ item: Item, _ seen: inout Set<String>) {
        if seen.insert(item.url.standardizedFileURL.path).inserted { items.append(item) }
    }

    private mutating func addFiles(
        in directory: URL, root: URL, userPath: String, recursive: Bool, _ summary: inout Directory, _ seen: inout Set<String>
    ) {
        let keys: [URLResourceKey] = [.isRegularFileKey, .isDirectoryKey]
        let display = { (url: URL) in
            (userPath as NSString).appendingPathComponent(String(url.path.dropFirst(root.path.count).drop { $0 == "/" }))
        }
        let names: [String]
        do {
            names = try FileManager.default.contentsOfDirectory(atPath: directory.path)
        } catch {
            var reason = "cannot list folder"
            if let handle = opendir(directory.path) { closedir(handle) } else { reason += ": " + BatchFiles.errorText(errno) }
            problems.append((display(directory), ASRError.unreadableAudio(file: display(directory), reason: reason)))
            return
        }
        for name in names.sorted() {
            let url = directory.appendingPathComponent(name)
            let values = try? url.resourceValues(forKeys: Set(keys))
            if values?.isDirectory == true {
                if recursive {
                    addFiles(in: url, root: root, userPath: userPath, recursive: true, &summary, &seen)
                } else {
                    summary.skippedSubdirectories += 1
                }
            } else if Self.audioExtensions.contains(url.pathExtension.lowercased()), !name.hasPrefix(".") {
                let relative = String(url.path.dropFirst(root.path.count).drop { $0 == "/" })
                append(Item(url: url, relativePath: relative, displayPath: display(url)), &seen)
            }
        }
    }
}
