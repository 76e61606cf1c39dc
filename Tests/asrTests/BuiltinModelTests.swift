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
}
