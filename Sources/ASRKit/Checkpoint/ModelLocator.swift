import Foundation

/// Finds a model given as a directory path or as a Hugging Face model id ("facebook/wav2vec2-base-960h").
///
/// A model id is looked up offline in the local Hugging Face cache, laid out as huggingface_hub writes it:
/// `CACHE/models--ORG--NAME/refs/REVISION` holds a commit hash, and `CACHE/models--ORG--NAME/snapshots/HASH/` the
/// files. CACHE is `$HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
public enum ModelLocator {
    /// The cache directory huggingface_hub uses, from the environment.
    public static func cacheDirectory(environment: [String: String] = ProcessInfo.processInfo.environment) -> URL {
        if let hub = environment["HF_HUB_CACHE"], !hub.isEmpty { return URL(fileURLWithPath: hub) }
        if let home = environment["HF_HOME"], !home.isEmpty { return URL(fileURLWithPath: home).appendingPathComponent("hub") }
        let user = environment["HOME"].map { URL(fileURLWithPath: $0) } ?? FileManager.default.homeDirectoryForCurrentUser
        return user.appendingPathComponent(".cache/huggingface/hub")
    }

    /// Whether `text` has the shape of a hub model id: ORG/NAME with safe characters.
    public static func isModelID(_ text: String) -> Bool {
        let parts = text.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 2 else { return false }
        return parts.allSatisfy { part in
            !part.isEmpty && part != "." && part != ".." && !part.hasPrefix(".")
                && part.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }
        }
    }

    /// The cache folder of a model id.
    public static func repositoryFolder(_ id: String, cache: URL) -> URL {
        cache.appendingPathComponent("models--" + id.replacingOccurrences(of: "/", with: "--"))
    }

    /// A directory for `model`: the path itself when it is a directory, else the cached snapshot of the model id.
    public static func resolve(_ model: String, revision: String = "main",
                               environment: [String: String] = ProcessInfo.processInfo.environment) throws -> URL {
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: model, isDirectory: &isDirectory) {
            guard isDirectory.boolValue else {
                throw ASRError.modelNotFound(path: model, reason: "is a file, not a model directory")
            }
            return URL(fileURLWithPath: model)
        }
        guard isModelID(model) else {
            throw ASRError.modelNotFound(path: model, reason: "no such directory (and not a Hugging Face model id of the form ORG/NAME)")
        }
        let cache = cacheDirectory(environment: environment)
        let folder = repositoryFolder(model, cache: cache)
        // A revision is a branch or tag (resolved through refs/) or a commit hash.
        var commit = revision
        let ref = folder.appendingPathComponent("refs").appendingPathComponent(revision)
        if let text = try? String(contentsOf: ref, encoding: .utf8) {
            commit = text.trimmingCharacters(in: .whitespacesAndNewlines)
        }
        guard !commit.isEmpty, !commit.contains("/"), !commit.hasPrefix(".") else {
            throw ASRError.missingModelFile(directory: ref.path, file: "(a valid commit hash)")
        }
        let snapshot = folder.appendingPathComponent("snapshots").appendingPathComponent(commit)
        guard FileManager.default.fileExists(atPath: snapshot.appendingPathComponent("config.json").path) else {
            throw ASRError.modelNotCached(id: model, cache: cache.path)
        }
        return snapshot
    }
}
