import ASRBatch
import ASRKit
import Foundation
import Testing

/// Issue 28: ASRBatch as a library a program uses (the DocC landing page's example, through the public API only):
/// discovery, an output plan with its clashes, atomic outputs and a manifest that a second run resumes from.
@Suite struct BatchLibraryTests {
    static let model = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("fixtures/models/base-layout")

    /// The landing page's loop: transcribes what the manifest does not record as done; returns how many it ran.
    static func run(_ transcriber: Transcriber, _ inputs: BatchInputs, out: String, manifestPath: String) async throws -> Int {
        let plan = OutputPlan(inputs: inputs, formats: ["txt"], fileExtension: { $0 }, outputDirectory: out,
                              toStandardOutput: false, manifest: manifestPath)
        #expect(plan.clashes.isEmpty)
        try BatchFiles.prepareOutput(manifestPath)  // creates its folder, checks it can be written
        let manifest = try ManifestWriter(path: manifestPath, restart: false, partition: nil)
        var ran = 0
        for (item, outputs) in zip(inputs.items, plan.destinations) where manifest.previous[item.displayPath] != "ok" {
            do {
                let transcript = try await transcriber.transcribe(file: item.url)
                try BatchFiles.makeDirectories((outputs[0].path as NSString).deletingLastPathComponent)
                try BatchFiles.write(Data(transcript.text.utf8), to: outputs[0].path)
                manifest.append(ManifestLine.success(item.displayPath, transcript, elapsed: 0))
            } catch {
                manifest.append(ManifestLine.failure(item.displayPath, message: "\(error)"))
            }
            ran += 1
        }
        return ran
    }

    @Test func aProgramRunsAndResumesABatch() async throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("asr-batch-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: dir) }
        let talks = dir.appendingPathComponent("talks/day2")
        try FileManager.default.createDirectory(at: talks, withIntermediateDirectories: true)
        let audio = Self.model.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("speech_16k.wav")
        try FileManager.default.copyItem(at: audio, to: dir.appendingPathComponent("talks/a.wav"))
        try FileManager.default.copyItem(at: audio, to: talks.appendingPathComponent("b.wav"))
        try Data("not audio".utf8).write(to: talks.appendingPathComponent("c.wav"))
        try Data("notes".utf8).write(to: talks.appendingPathComponent("notes.txt"))

        let folder = dir.appendingPathComponent("talks").path
        #expect(BatchInputs.collect([folder], recursive: false).items.map(\.relativePath) == ["a.wav"])
        let inputs = BatchInputs.collect([folder], recursive: true)
        #expect(inputs.items.map(\.relativePath) == ["a.wav", "day2/b.wav", "day2/c.wav"])

        let transcriber = try Transcriber(modelDirectory: Self.model)
        let out = dir.appendingPathComponent("out").path
        let manifestPath = out + "/manifest.jsonl"
        #expect(try await Self.run(transcriber, inputs, out: out, manifestPath: manifestPath) == 3)
        let expected = try await transcriber.transcribe(file: audio).text
        #expect(try String(contentsOfFile: out + "/day2/b.txt", encoding: .utf8) == expected)
        #expect(!FileManager.default.fileExists(atPath: out + "/day2/c.txt"))
        let first = ManifestEntry.parse(try Data(contentsOf: URL(fileURLWithPath: manifestPath))).entries
        #expect(first.map(\.status) == ["ok", "ok", "error"])

        // Resumed: only the failed input runs again; the finished ones are read back from the manifest.
        #expect(try await Self.run(transcriber, inputs, out: out, manifestPath: manifestPath) == 1)
        let merged = try ManifestMerge([.init(name: manifestPath, entries:
            ManifestEntry.parse(try Data(contentsOf: URL(fileURLWithPath: manifestPath))).entries)])
        #expect(merged.ok.count == 2 && merged.failed.count == 1)
    }

    @Test func aPlanFindsEveryClashBeforeAnyWork() {
        var inputs = BatchInputs()
        inputs.items = [
            .init(url: URL(fileURLWithPath: "/data/a/x.wav"), relativePath: "x.wav", displayPath: "a/x.wav"),
            .init(url: URL(fileURLWithPath: "/data/b/x.flac"), relativePath: "x.flac", displayPath: "b/x.flac"),
        ]
        let plan = OutputPlan(inputs: inputs, formats: ["txt", "json"], fileExtension: { $0 }, outputDirectory: "/out",
                              toStandardOutput: false, manifest: "/out/x.json",
                              protected: ["/data/a/x.wav": "the input a/x.wav"])
        #expect(plan.destinations.map { $0.map(\.path) } == [["/out/x.txt", "/out/x.json"], ["/out/x.txt", "/out/x.json"]])
        #expect(plan.clashes.count == 2, "\(plan.clashes)")  // two shared outputs
        #expect(plan.manifestClashes == ["is also the output of a/x.wav"])
        let protected = OutputPlan(inputs: inputs, formats: ["wav"], fileExtension: { $0 }, outputDirectory: nil,
                                   toStandardOutput: false, manifest: nil, protected: OutputPlan<String>.inputsProtected(inputs))
        #expect(protected.clashes == ["a/x.wav: its output /data/a/x.wav would replace the input a/x.wav"])
    }
}
