@testable import ASRKit

/// Any bytes as vocab.json (and as tokenizer_config.json), then decode a path through the vocabulary.
func fuzz(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let data else { return 0 }
    let bytes = UnsafeRawBufferPointer(start: data, count: size)
    let minimal = #"{"<pad>": 0, "|": 1, "A": 2}"#
    for files in [["vocab.json": bytes], ["vocab.json": nil, "tokenizer_config.json": bytes]] {
        minimal.utf8CString.withUnsafeBytes { fallback in
            let table = StaticFileTable(files: files.mapValues { $0 ?? UnsafeRawBufferPointer(rebasing: fallback.dropLast()) })
            if let vocabulary = try? Vocabulary.load(.embedded(location: "fuzz") { table.files[$0] }, vocabSize: 64, padTokenID: 0) {
                _ = CTCGreedyDecoder.decode(path: [0, 1, 2, 2, 0, 63, 5, 1], vocabulary: vocabulary)
            }
        }
    }
    return 0
}

/// The entry point libFuzzer's runtime links against.
@_cdecl("LLVMFuzzerTestOneInput")
public func LLVMFuzzerTestOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 { fuzz(data, size) }
