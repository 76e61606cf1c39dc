import Foundation
import XCTest
@testable import ASRKit

/// The conv feature encoder runs over blocks of output frames; the result must not depend on the block size
/// (GroupNorm's statistics are merged across blocks, receptive fields overlap).
final class EncoderBlockTests: XCTestCase {
    func testBlockSizeDoesNotChangeTheLogits() throws {
        let samples = try Transcriber(modelDirectory: Fixtures.model("base-layout")).loadAudio(file: Fixtures.speech)
        for name in ["base-layout", "large-layout"] {   // group-norm and layer-norm front ends
            let transcriber = try Transcriber(modelDirectory: Fixtures.model(name))
            let input = Normalizer.zeroMeanUnitVariance(samples)
            let whole = transcriber.model.logits(for: input, encoderBlockFrames: Int.max)
            XCTAssertGreaterThan(whole.rows, 3 * 7, "the input must span several blocks")
            for block in [1, 7, 64] {
                let blocked = transcriber.model.logits(for: input, encoderBlockFrames: block)
                XCTAssertEqual(blocked.rows, whole.rows)
                var worst: Float = 0
                for (a, b) in zip(blocked.storage, whole.storage) { worst = max(worst, abs(a - b)) }
                XCTAssertLessThan(worst, 1e-4, "\(name), blocks of \(block) frames: max |Δ| \(worst)")
            }
        }
    }
}
