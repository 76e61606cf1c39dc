import Foundation
import Testing
import ASRKit

/// Runs the built `asr` binary the way users do.
enum CLI {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    static let fixtures = root.appendingPathComponent("fixtures")

    /// The `asr` executable next to the test bundle (both are products of the same build).
    static var executable: URL {
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 {
            let candidate = dir.appendingPathComponent("asr")
            if FileManager.default.isExecutableFile(atPath: candidate.path) { return candidate }
            dir = dir.deletingLastPathComponent()
        }
        return URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath().deletingLastPathComponent().appendingPathComponent("asr")
    }

    struct Result {
        let status: Int32
        let stdout: String
        let stderr: String
    }

    static func run(_ arguments: [String]) throws -> Result {
        let process = Process()
        process.executableURL = executable
        process.arguments = arguments
        process.currentDirectoryURL = root
        let out = Pipe(), err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        let outData = out.fileHandleForReading.readDataToEndOfFile()
        let errData = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return Result(status: process.terminationStatus, stdout: String(decoding: outData, as: UTF8.self),
                      stderr: String(decoding: errData, as: UTF8.self))
    }
}

@Suite struct CLITests {
    let model = CLI.fixtures.appendingPathComponent("models/base-layout").path
    let speech = CLI.fixtures.appendingPathComponent("speech_16k.wav").path

    @Test func transcribePrintsTheTranscript() throws {
        let result = try CLI.run(["transcribe", speech, "--model", model])
        let expected = try String(contentsOfFile: model + "/transcript.txt", encoding: .utf8)
        #expect(result.status == 0, "\(result.stderr)")
        #expect(result.stdout == expected)
    }

    @Test func logitsWritesTheEmissionsAsNPY() throws {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("asr-logits-\(UUID().uuidString).npy")
        defer { try? FileManager.default.removeItem(at: output) }
        let result = try CLI.run(["logits", speech, "--model", model, "-o", output.path])
        #expect(result.status == 0, "\(result.stderr)")
        let ours = try NPY.decode(Data(contentsOf: output))
        let reference = try NPY.decode(Data(contentsOf: URL(fileURLWithPath: model + "/logits.npy")))
        #expect(ours.shape == reference.shape)
        #expect(zip(ours.values, reference.values).allSatisfy { abs($0 - $1) <= 1e-4 })
    }

    @Test func missingAudioIsAClearErrorWithExitCode1() throws {
        let result = try CLI.run(["transcribe", "/nonexistent/talk.wav", "--model", model])
        #expect(result.status == 1)
        #expect(result.stderr.contains("/nonexistent/talk.wav") && result.stderr.contains("no such file"))
    }

    @Test func brokenModelIsAClearErrorWithExitCode1() throws {
        let result = try CLI.run(["transcribe", speech, "--model", "/nonexistent-model"])
        #expect(result.status == 1)
        #expect(result.stderr.contains("/nonexistent-model"))
    }

    @Test func usageErrorsExitWith2() throws {
        #expect(try CLI.run(["transcribe"]).status == 2)
        #expect(try CLI.run(["transcribe", speech, "--model", model, "--threads", "0"]).status == 2)
        #expect(try CLI.run(["no-such-command"]).status == 2)
    }

    @Test func versionNamesTheBLASKernel() throws {
        let result = try CLI.run(["--version"])
        #expect(result.status == 0)
        // Compared with what `asr info` (another process) reports, not with this process's BLAS.kernel: a BLAS test
        // running in parallel switches this process's kernel for a moment (seen: Haswell here, Zen in the binary).
        let info = try CLI.run(["info"])
        let line = info.stdout.split(separator: "\n").first { $0.hasPrefix("OpenBLAS kernel: ") }
        let kernel = line.map { String($0.dropFirst("OpenBLAS kernel: ".count).prefix { $0 != " " }) } ?? "?"
        #expect(!kernel.isEmpty && kernel != "?" && result.stdout.contains("OpenBLAS kernel: \(kernel)"), "\(result.stdout) vs \(info.stdout)")
    }
}
