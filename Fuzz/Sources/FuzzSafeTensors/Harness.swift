@testable import ASRKit

/// Any bytes as a safetensors file: parse the header, then convert every tensor.
func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    guard let file = try? SafeTensorsFile(file: MappedFile(staticBytes: bytes, name: "fuzz.safetensors")) else { return 0 }
    for name in file.tensors.keys { _ = try? file.floats(name) }
    return 0
}

/// The entry point libFuzzer's runtime links against.
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 { fuzz(data, size) }
