import Foundation
import Testing

/// `asr lm build` as users run it.
@Suite struct LMCommandTests {
    let corpus = CLI.fixtures.appendingPathComponent("lm/tiny_corpus.txt").path

    @Test func buildWritesTheARPAFileAndASummary() throws {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("asr-lm-\(UUID().uuidString).arpa")
        defer { try? FileManager.default.removeItem(at: output) }
        let result = try CLI.run(["lm", "build", corpus, "-o", output.path, "--order", "3"])
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout.contains("1-grams 856, 2-grams 2273, 3-grams 2539"), "\(result.stdout)")
        let arpa = try String(contentsOf: output, encoding: .utf8)
        #expect(arpa.hasPrefix("\\data\\\nngram 1=856\nngram 2=2273\nngram 3=2539\n\n\\1-grams:\n"))
        #expect(arpa.hasSuffix("\n\\end\\\n"))
    }

    @Test func usageErrorsExitWith2() throws {
        #expect(try CLI.run(["lm", "build", corpus, "-o", "/tmp/x.arpa", "--order", "9"]).status == 2)
        #expect(try CLI.run(["lm", "build", corpus]).status == 2)
        #expect(try CLI.run(["lm", "build", corpus, "-o", corpus]).status == 2)
    }

    @Test func badCorpusExitsWith1AndSaysWhy() throws {
        let result = try CLI.run(["lm", "build", "/nonexistent/corpus.txt", "-o", "/tmp/asr-lm-never.arpa"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("/nonexistent/corpus.txt") && result.stderr.contains("no such file"))
    }
}
