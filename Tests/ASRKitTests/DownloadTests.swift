import Foundation
import Testing
@testable import ASRKit

@Suite(.serialized) struct DownloadTests {
    /// The base-layout fixture served as acme/tiny-ctc; its weights are an "LFS" file (SHA-256 ETag).
    func makeServer() throws -> HubServer {
        var files: [String: HubServer.File] = [:]
        for name in ["config.json", "vocab.json", "tokenizer_config.json", "preprocessor_config.json"] {
            files[name] = .init(content: try Data(contentsOf: Fixtures.model("base-layout").appendingPathComponent(name)), lfs: false)
        }
        files["model.safetensors"] = .init(
            content: try Data(contentsOf: Fixtures.model("base-layout").appendingPathComponent("model.safetensors")), lfs: true)
        return try HubServer(id: "acme/tiny-ctc", files: files)
    }

    @Test func digestsMatchKnownValues() {
        #expect(SHA256.hex(Data("abc".utf8)) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        #expect(SHA256.hex(Data()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(SHA256.hex(Data(repeating: 0x61, count: 1_000_000)) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
        // `git hash-object` of "hello\n"
        #expect(SHA1.gitBlobID(Data("hello\n".utf8)) == "ce013625030ba8dba906f756967f9e9ca394464a")
    }

    @Test func downloadsIntoTheCacheLayoutAndLoads() throws {
        let server = try makeServer()
        defer { server.stop() }
        let cache = try Fixtures.temporaryDirectory()
        let snapshot = try HubDownloader(endpoint: server.endpoint, cache: cache).download("acme/tiny-ctc")
        #expect(snapshot.lastPathComponent == server.commit)
        let folder = ModelLocator.repositoryFolder("acme/tiny-ctc", cache: cache)
        #expect(try String(contentsOf: folder.appendingPathComponent("refs/main"), encoding: .utf8) == server.commit)
        let link = try FileManager.default.destinationOfSymbolicLink(atPath: snapshot.appendingPathComponent("model.safetensors").path)
        #expect(link == "../../blobs/" + server.files["model.safetensors"]!.etag)
        let resolved = try ModelLocator.resolve("acme/tiny-ctc", environment: ["HF_HUB_CACHE": cache.path])
        let transcriber = try Transcriber(modelDirectory: resolved)
        let expected = try String(contentsOf: Fixtures.model("base-layout").appendingPathComponent("transcript.txt"), encoding: .utf8)
        #expect(try transcriber.transcribe(file: Fixtures.speech, chunking: .default).text + "\n" == expected)
    }

    /// An MMS repository: its adapters come along (all of them, or the languages asked for), and the snapshot loads
    /// in each language.
    @Test func mmsAdaptersComeAlong() throws {
        let mms = Fixtures.model("mms-layout")
        var files: [String: HubServer.File] = [:]
        for name in ["config.json", "vocab.json", "tokenizer_config.json", "preprocessor_config.json"] {
            files[name] = .init(content: try Data(contentsOf: mms.appendingPathComponent(name)), lfs: false)
        }
        for name in ["model.safetensors", "adapter.deu.safetensors", "adapter.eng.safetensors", "adapter.fra.safetensors"] {
            files[name] = .init(content: try Data(contentsOf: mms.appendingPathComponent(name)), lfs: true)
        }
        let server = try HubServer(id: "acme/tiny-mms", files: files)
        defer { server.stop() }

        let some = try HubDownloader(endpoint: server.endpoint, cache: try Fixtures.temporaryDirectory())
            .download("acme/tiny-mms", languages: ["fra"])
        #expect(FileManager.default.fileExists(atPath: some.appendingPathComponent("adapter.fra.safetensors").path))
        #expect(!FileManager.default.fileExists(atPath: some.appendingPathComponent("adapter.deu.safetensors").path))
        #expect(try Transcriber(modelDirectory: some).languages == ["fra"])
        #expect(throws: ASRError.invalidLanguage(language: "xyz", reason: "not in acme/tiny-mms's vocab.json", available: ["deu", "eng", "fra"])) {
            try HubDownloader(endpoint: server.endpoint, cache: try Fixtures.temporaryDirectory()).download("acme/tiny-mms", languages: ["xyz"])
        }

        let all = try HubDownloader(endpoint: server.endpoint, cache: try Fixtures.temporaryDirectory()).download("acme/tiny-mms")
        let transcriber = try Transcriber(modelDirectory: all)
        #expect(transcriber.languages == ["deu", "eng", "fra"])
        let expected = try String(contentsOf: mms.appendingPathComponent("transcript.deu.txt"), encoding: .utf8)
        #expect(try transcriber.switching(to: "deu").transcribe(file: Fixtures.speech).text + "\n" == expected)
    }

    @Test func aCutDownloadResumesWithARangeRequest() throws {
        let server = try makeServer()
        defer { server.stop() }
        let cache = try Fixtures.temporaryDirectory()
        let size = server.files["model.safetensors"]!.content.count
        server.cut("model.safetensors", after: size / 2)
        let downloader = HubDownloader(endpoint: server.endpoint, cache: cache)
        #expect(throws: ASRError.self) { try downloader.download("acme/tiny-ctc") }
        let blobs = ModelLocator.repositoryFolder("acme/tiny-ctc", cache: cache).appendingPathComponent("blobs")
        let partial = blobs.appendingPathComponent(server.files["model.safetensors"]!.etag + ".incomplete")
        #expect((try FileManager.default.attributesOfItem(atPath: partial.path)[.size] as? Int) == size / 2)
        try downloader.download("acme/tiny-ctc")
        #expect(server.rangeRequests == ["model.safetensors bytes=\(size / 2)-"])
        let blob = blobs.appendingPathComponent(server.files["model.safetensors"]!.etag)
        #expect(try Data(contentsOf: blob) == server.files["model.safetensors"]!.content)
        #expect(!FileManager.default.fileExists(atPath: partial.path))
    }

    @Test func aChecksumMismatchIsRefusedAndNothingIsKept() throws {
        let server = try makeServer()
        defer { server.stop() }
        let cache = try Fixtures.temporaryDirectory()
        server.corrupt("model.safetensors")
        do {
            try HubDownloader(endpoint: server.endpoint, cache: cache).download("acme/tiny-ctc")
            Issue.record("a corrupted file was accepted")
        } catch ASRError.downloadFailed(let file, let reason) {
            #expect(file == "model.safetensors" && reason.hasPrefix("checksum mismatch"))
        }
        let blobs = ModelLocator.repositoryFolder("acme/tiny-ctc", cache: cache).appendingPathComponent("blobs")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: blobs.path)
        #expect(!leftovers.contains { $0.hasPrefix(server.files["model.safetensors"]!.etag) })
    }

    @Test func unknownModelsAre404() throws {
        let server = try makeServer()
        defer { server.stop() }
        #expect(throws: ASRError.downloadFailed(file: "acme/other/config.json", reason: "not found on the hub")) {
            try HubDownloader(endpoint: server.endpoint, cache: try Fixtures.temporaryDirectory()).download("acme/other")
        }
    }
}
