import Foundation
import Testing
@testable import ASRKit

@Suite struct ModelLocatorTests {
    /// A cache laid out as huggingface_hub writes it, holding the base-layout fixture as ORG/NAME.
    func makeCache() throws -> (cache: URL, snapshot: URL) {
        let cache = try Fixtures.temporaryDirectory().appendingPathComponent("hub")
        let folder = ModelLocator.repositoryFolder("acme/tiny-ctc", cache: cache)
        let commit = "0123456789abcdef0123456789abcdef01234567"
        let snapshot = folder.appendingPathComponent("snapshots/\(commit)")
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("refs"), withIntermediateDirectories: true)
        try FileManager.default.createDirectory(at: snapshot.deletingLastPathComponent(), withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Fixtures.model("base-layout"), to: snapshot)
        try commit.write(to: folder.appendingPathComponent("refs/main"), atomically: true, encoding: .utf8)
        return (cache, snapshot)
    }

    @Test func resolvesModelIDsThroughTheCacheEnvironment() throws {
        let (cache, snapshot) = try makeCache()
        #expect(try ModelLocator.resolve("acme/tiny-ctc", environment: ["HF_HUB_CACHE": cache.path]).path == snapshot.path)
        let home = cache.deletingLastPathComponent()
        #expect(try ModelLocator.resolve("acme/tiny-ctc", environment: ["HF_HOME": home.path]).path == snapshot.path)
        #expect(try ModelLocator.resolve("acme/tiny-ctc", revision: snapshot.lastPathComponent,
                                         environment: ["HF_HUB_CACHE": cache.path]).path == snapshot.path)
        let transcriber = try Transcriber(modelDirectory: ModelLocator.resolve("acme/tiny-ctc", environment: ["HF_HUB_CACHE": cache.path]))
        #expect(transcriber.configuration.hiddenSize == 32)
    }

    @Test func missingModelsSayHowToGetThem() throws {
        let (cache, _) = try makeCache()
        #expect(throws: ASRError.modelNotCached(id: "acme/other", cache: cache.path)) {
            try ModelLocator.resolve("acme/other", environment: ["HF_HUB_CACHE": cache.path])
        }
        #expect(throws: ASRError.self) { try ModelLocator.resolve("../../no-such-model-dir", environment: ["HF_HUB_CACHE": cache.path]) }
    }

    @Test func modelIDShape() {
        #expect(ModelLocator.isModelID("facebook/wav2vec2-base-960h"))
        #expect(!ModelLocator.isModelID("facebook"))
        #expect(!ModelLocator.isModelID("a/b/c"))
        #expect(!ModelLocator.isModelID("../x"))
        #expect(!ModelLocator.isModelID("/abs"))
    }
}
