import Foundation
import XCTest
@testable import ASRKit

/// Our beam search against pyctcdecode (0.5.0, with kenlm) on committed emissions of the built-in model: 24
/// utterances × 3 configurations, goldens written by tools/lm/make_emission_fixtures.py.
final class BeamSearchParityTests: XCTestCase {
    /// Where pyctcdecode's end-of-utterance handling differs on purpose (see BeamSearchDecoder): when two hypotheses
    /// merge at the end, pyctcdecode keeps the later one's word split, so "TODAY" merged with "TODAY |" scores an
    /// empty word as unknown and drops out. Traced frame by frame: the kept hypotheses agree on all 138 frames.
    let knownDifferences: Set<String> = ["builtin_00367.npy lm-hotwords"]

    func testBestHypothesesEqualPyctcdecodes() throws {
        let dir = Fixtures.root.appendingPathComponent("emissions")
        let vocabulary = try Vocabulary.load(
            directory: Fixtures.root.deletingLastPathComponent().appendingPathComponent("Sources/CBuiltinModel/model"),
            vocabSize: 32, padTokenID: 0)
        let lm = DecodingLanguageModel(model: try NGramLanguageModel(
            arpa: Fixtures.root.appendingPathComponent("lm/tiny_corpus.lmplz.order3.arpa").path))
        func decoder(_ config: String) throws -> BeamSearchDecoder {
            var options = BeamSearchOptions()
            switch config {
            case "lm":
                options.beamWidth = 32
                return try BeamSearchDecoder(vocabulary: vocabulary, languageModel: lm, options: options)
            case "lm-hotwords":
                options.alpha = 1.0
                options.beta = 0.5
                options.beamWidth = 16
                options.hotwords = [Hotword("THE", weight: 4), Hotword("SEVEN", weight: 4)]
                return try BeamSearchDecoder(vocabulary: vocabulary, languageModel: lm, options: options)
            default:
                options.beamWidth = 8
                return try BeamSearchDecoder(vocabulary: vocabulary, languageModel: nil, options: options)
            }
        }
        var decoders: [String: BeamSearchDecoder] = [:]
        var same = 0, total = 0
        let lines = try String(contentsOf: dir.appendingPathComponent("pyctcdecode_best.tsv"), encoding: .utf8)
            .split(separator: "\n").filter { !$0.hasPrefix("#") }
        for line in lines {
            let fields = line.split(separator: "\t", omittingEmptySubsequences: false).map(String.init)
            let (file, config, expected) = (fields[0], fields[1], fields[2])
            let d = try decoders[config] ?? decoder(config)
            decoders[config] = d
            let (values, shape) = try Fixtures.npy(dir.appendingPathComponent(file))
            let text = d.decode(Emissions(frames: shape[0], vocabularySize: shape[1], logits: values, frameDuration: 0.02)).text
            total += 1
            if knownDifferences.contains("\(file) \(config)") {
                XCTAssertNotEqual(text, expected, "\(file) \(config) now agrees: remove it from knownDifferences")
            } else {
                XCTAssertEqual(text, expected, "\(file) \(config)")
                if text == expected { same += 1 }
            }
        }
        XCTAssertEqual(total, 72)
        print("parity beam search vs pyctcdecode: \(same)/\(total) identical, \(knownDifferences.count) known difference(s)")
    }
}
