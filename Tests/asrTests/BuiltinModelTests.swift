import ASRBuiltinModel
import ASRKit
import Foundation
import Testing

@Suite struct BuiltinModelTests {
    @Test func loadsFromTheBinaryAndDescribesItself() throws {
        let transcriber = try BuiltinModel.load()
        #expect(transcriber.location == "built-in model")
        #expect(transcriber.configuration.featExtractNorm == .group && !transcriber.configuration.doStableLayerNorm)
        #expect(transcriber.configuration.samplesPerFrame == 320)
        #expect(BuiltinModel.summary.contains("synthetic speech"))
        #expect(BuiltinModel.trainingRecord.contains("audio_hours_seen"))
    }

    /// Held-out sentences spoken by seen voices (fixtures/audio/builtin, tools/fixtures/make_builtin_samples.py):
    /// the built-in model's exact transcripts, recorded when the model was exported. The README's first command
    /// uses a sample the model gets exactly right.
    @Test func transcribesTheBundledSentencesExactly() throws {
        let transcriber = try BuiltinModel.load()
        let directory = CLI.fixtures.appendingPathComponent("audio/builtin")
        let rows = try String(contentsOf: directory.appendingPathComponent("sentences.tsv"), encoding: .utf8)
            .split(separator: "\n").filter { !$0.hasPrefix("#") }.map { $0.split(separator: "\t", omittingEmptySubsequences: false).map(String.init) }
        #expect(rows.count == 16)
        var right = 0
        for row in rows {
            let text = try transcriber.transcribe(file: directory.appendingPathComponent(row[0])).text
            #expect(text == row[3], "\(row[0]) (\(row[1])): said \"\(row[2])\"")
            if text == row[2] { right += 1 }
        }
        print("built-in model: \(right)/\(rows.count) bundled sentences transcribed exactly")
        let readme = try String(contentsOf: CLI.root.appendingPathComponent("README.md"), encoding: .utf8)
        let sample = rows.first { readme.contains("fixtures/audio/builtin/\($0[0])") }
        #expect(sample != nil, "the README's first command transcribes one of these samples")
        if let sample { #expect(sample[3] == sample[2], "and the model gets it right") }
    }
}
