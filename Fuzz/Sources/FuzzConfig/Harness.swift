import Foundation
@testable import ASRKit

/// Any bytes as config.json and preprocessor_config.json.
func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    let bytes = Data(bytes: data, count: size)
    if let config = try? Wav2Vec2Configuration.decode(bytes) {
        _ = config.frameCount(forSamples: 16000)
        _ = config.receptiveField
        _ = config.flops(forSamples: 16000)
    }
    let table = StaticFileTable(files: ["preprocessor_config.json": UnsafeRawBufferPointer(start: data, count: size)])
    _ = try? PreprocessorConfiguration.load(.embedded(location: "fuzz") { table.files[$0] })
    return 0
}

/// The entry point libFuzzer's runtime links against.
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 { fuzz(data, size) }
