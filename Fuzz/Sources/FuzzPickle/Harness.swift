@testable import ASRKit

/// Any bytes as a PyTorch pickle (data.pkl).
func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    var machine = Unpickler(bytes: UnsafeRawBufferPointer(start: data, count: size), fileName: "fuzz.bin")
    _ = try? machine.run()
    return 0
}

/// The entry point libFuzzer's runtime links against.
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 { fuzz(data, size) }
