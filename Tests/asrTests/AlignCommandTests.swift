import ASRKit
import Foundation
import Testing

/// `asr align` (issue 24): one file with --text/--transcript, a corpus with same-stem .txt/.lab, the clash refusal,
/// and errors in words with the right exit codes.
@Suite struct AlignCommandTests {
    static let builtin = CLI.fixtures.appendingPathComponent("audio/builtin")

    @Test func oneFileWithItsTextPrintsTheAlignment() throws {
        let result = try Runner.run(["align", Self.builtin.appendingPathComponent("01.wav").path, "--text",
                                     "set a TIMER for seven minutes", "-q"], limit: 60)
        #expect(result.status == 0, "\(result.stderr)")
        let json = try JSONSerialization.jsonObject(with: result.stdout) as! [String: Any]
        let words = json["words"] as! [[String: Any]]
        #expect(words.map { $0["text"] as! String } == ["set", "a", "TIMER", "for", "seven", "minutes"])
        let starts = words.map { $0["start"] as! Double }
        #expect(starts == starts.sorted() && words.allSatisfy { $0["aligned"] as! Bool })
    }

    @Test func aCorpusAlignsEachAudioWithTheTranscriptBesideIt() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let corpus = dir.appendingPathComponent("corpus/speaker1")
        try FileManager.default.createDirectory(at: corpus, withIntermediateDirectories: true)
        for (name, transcript, ext) in [("01", "SET A TIMER\nFOR SEVEN MINUTES", "txt"), ("08", "THE TEMPERATURE TODAY IS SEVENTY ONE DEGREES", "lab")] {
            try FileManager.default.copyItem(at: Self.builtin.appendingPathComponent("\(name).wav"), to: corpus.appendingPathComponent("\(name).wav"))
            try Data(transcript.utf8).write(to: corpus.appendingPathComponent("\(name).\(ext)"))
        }
        try FileManager.default.copyItem(at: Self.builtin.appendingPathComponent("02.wav"), to: corpus.appendingPathComponent("02.wav"))

        let run = try Runner.run(["align", "corpus", "-r", "-o", "out", "-f", "json", "-f", "textgrid", "-f", "srt", "-q"], in: dir, limit: 120)
        #expect(run.status == 1, "02.wav has no transcript: \(run.stderr)")
        #expect(run.stderr.contains("02.wav") && run.stderr.contains("02.txt or 02.lab"), "\(run.stderr)")
        let out = dir.appendingPathComponent("out/speaker1")
        let names = Set(try FileManager.default.contentsOfDirectory(atPath: out.path))
        #expect(names == ["01.json", "01.TextGrid", "01.srt", "08.json", "08.TextGrid", "08.srt"], "\(names)")
        let srt = try String(contentsOf: out.appendingPathComponent("01.srt"), encoding: .utf8)
        #expect(srt.contains("\nSET A TIMER\n") && srt.contains("\nFOR SEVEN MINUTES\n"), "one cue per transcript line: \(srt)")

        // A second run skips what exists; --overwrite redoes it.
        let again = try Runner.run(["align", "corpus", "-r", "-o", "out", "-f", "json"], in: dir, limit: 120)
        #expect(again.stderr.contains("2 skipped") || again.stderr.contains("skipped"), "\(again.stderr)")
        // An output that would replace a transcript is refused before any work.
        let clash = try Runner.run(["align", "corpus", "-r", "-f", "txt"], in: dir, limit: 60)
        #expect(clash.status == 2 && clash.stderr.contains("01.txt"), "\(clash.stderr)")
    }

    /// `--jsonl` as `transcribe` has it: one line per input (ok with the words and their flags, error, skipped).
    @Test func aManifestRecordsEveryInput() throws {
        let dir = try Runner.temporaryDirectory()
        defer { try? FileManager.default.removeItem(at: dir) }
        let corpus = dir.appendingPathComponent("corpus")
        try FileManager.default.createDirectory(at: corpus, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: Self.builtin.appendingPathComponent("01.wav"), to: corpus.appendingPathComponent("01.wav"))
        try Data("SET A TIMER FOR ELEPHANT SEVEN MINUTES".utf8).write(to: corpus.appendingPathComponent("01.txt"))
        try FileManager.default.copyItem(at: Self.builtin.appendingPathComponent("02.wav"), to: corpus.appendingPathComponent("02.wav"))

        let run = try Runner.run(["align", "corpus", "-o", "out", "--jsonl", "align.jsonl", "-q"], in: dir, limit: 120)
        #expect(run.status == 1, "02.wav has no transcript: \(run.stderr)")
        func lines() throws -> [[String: Any]] {
            try String(contentsOf: dir.appendingPathComponent("align.jsonl"), encoding: .utf8).split(separator: "\n")
                .map { try JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any] }
        }
        var manifest = try lines()
        #expect(manifest.count == 2)
        let ok = try #require(manifest.first { $0["status"] as? String == "ok" })
        #expect((ok["file"] as? String)?.hasSuffix("01.wav") == true)
        let words = ok["words"] as! [[String: Any]]
        #expect(words.map { $0["text"] as! String } == ["SET", "A", "TIMER", "FOR", "ELEPHANT", "SEVEN", "MINUTES"])
        #expect(words.filter { $0["confident"] as? Bool == false }.map { $0["text"] as! String } == ["ELEPHANT"])
        let error = try #require(manifest.first { $0["status"] as? String == "error" })
        #expect((error["error"] as? String)?.contains("02.txt or 02.lab") == true)
        // Resumed: the finished input keeps its line, nothing is added for it.
        _ = try Runner.run(["align", "corpus", "-o", "out", "--jsonl", "align.jsonl", "-q"], in: dir, limit: 120)
        manifest = try lines()
        #expect(manifest.filter { $0["status"] as? String == "ok" }.count == 1, "\(manifest)")
        // The manifest may not replace a transcript.
        let clash = try Runner.run(["align", "corpus", "-o", "out", "--jsonl", "corpus/01.txt"], in: dir, limit: 60)
        #expect(clash.status == 2 && clash.stderr.contains("--jsonl"), "\(clash.stderr)")
    }

    @Test func errorsSayWhatIsWrong() throws {
        let audio = Self.builtin.appendingPathComponent("01.wav").path
        let long = try Runner.run(["align", audio, "--text", String(repeating: "A LONG TRANSCRIPT ", count: 30), "-q"], limit: 60)
        #expect(long.status == 1 && long.stderr.contains("does not fit the audio") && long.stderr.contains("s of audio"), "\(long.stderr)")
        let empty = try Runner.run(["align", audio, "--text", "  ", "-q"], limit: 60)
        #expect(empty.status == 2 && empty.stderr.contains("empty"), "\(empty.stderr)")
        let missing = try Runner.run(["align", audio, "--transcript", "/nonexistent/t.txt", "-q"], limit: 60)
        #expect(missing.status == 1 && missing.stderr.contains("/nonexistent/t.txt"), "\(missing.stderr)")
        let both = try Runner.run(["align", audio, "--text", "A", "--transcript", "t.txt"], limit: 60)
        #expect(both.status == 2)
        let unreadable = try Runner.run(["align", CLI.fixtures.appendingPathComponent("audio/broken_text.wav").path, "--text", "A", "-q"], limit: 60)
        #expect(unreadable.status == 1 && unreadable.stderr.contains("broken_text.wav"), "\(unreadable.stderr)")
        // Standard input with --text.
        let piped = try Runner.run(["align", "-", "--text", "SET A TIMER FOR SEVEN MINUTES", "-f", "tsv", "-q"],
                                   stdin: try Data(contentsOf: URL(fileURLWithPath: audio)), limit: 60)
        #expect(piped.status == 0 && piped.output.hasPrefix("start\tend\tword\tconfidence\taligned\tconfident\n"), "\(piped.stderr)")
        #expect(piped.output.split(separator: "\n").count == 7)
    }
}
