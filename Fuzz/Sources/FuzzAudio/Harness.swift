import Foundation
@testable import ASRKit

/// Any bytes as an audio file (through libsndfile), decoded to 16 kHz mono.
func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    let path = "/dev/shm/asr-fuzz-\(getpid()).wav"
    guard FileManager.default.createFile(atPath: path, contents: Data(bytes: data, count: size)) else { return 0 }
    defer { unlink(path) }
    guard let file = try? AudioFile(path: path), file.frameCount < 200_000 else { return 0 }
    _ = try? file.read(resampledTo: 16000)
    return 0
}

/// The entry point libFuzzer's runtime links against.
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 { fuzz(data, size) }
