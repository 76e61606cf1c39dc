import Foundation

/// A read-only view of a ZIP archive's stored (uncompressed) entries, as `torch.save` writes them.
///
/// Reads the end-of-central-directory record (and its ZIP64 form), then the central directory; every entry's data
/// range is checked to lie inside the file. Compressed entries are listed but refused when read: PyTorch never
/// compresses, and a compressed tensor file is not one we can map.
struct ZipArchive {
    struct Entry {
        let name: String
        let method: UInt16
        let compressedSize: Int
        let size: Int
        let localHeaderOffset: Int
    }

    let file: MappedFile
    let entries: [String: Entry]
    let fileName: String

    init(file: MappedFile) throws {
        self.file = file
        fileName = (file.path as NSString).lastPathComponent
        let bytes = file.bytes(0..<file.count)
        func fail(_ reason: String) -> ASRError { .invalidCheckpoint(file: (file.path as NSString).lastPathComponent, reason: reason) }
        func u16(_ o: Int) -> Int { Int(bytes[o]) | Int(bytes[o + 1]) << 8 }
        func u32(_ o: Int) -> Int { u16(o) | u16(o + 2) << 16 }
        func u64(_ o: Int) -> Int {
            let value = UInt64(u32(o)) | UInt64(u32(o + 4)) << 32
            return value > UInt64(Int.max) ? -1 : Int(value)
        }

        // End of central directory: 22 bytes + a comment of up to 65535 bytes, at the very end.
        guard file.count >= 22 else { throw fail("too short to be a ZIP archive") }
        var eocd = -1
        var position = file.count - 22
        let lowest = max(0, file.count - 22 - 65535)
        while position >= lowest {
            if u32(position) == 0x0605_4B50 { eocd = position; break }
            position -= 1
        }
        guard eocd >= 0 else { throw fail("not a ZIP archive (no end-of-central-directory record)") }
        var count = u16(eocd + 10)
        var directorySize = u32(eocd + 12)
        var directoryOffset = u32(eocd + 16)
        // ZIP64: a locator just before the EOCD points to the ZIP64 EOCD record.
        if eocd >= 20, u32(eocd - 20) == 0x0706_4B50 {
            let record = u64(eocd - 20 + 8)
            guard record >= 0, record + 56 <= file.count, u32(record) == 0x0606_4B50 else { throw fail("bad ZIP64 record") }
            count = u64(record + 32)
            directorySize = u64(record + 40)
            directoryOffset = u64(record + 48)
        }
        guard count >= 0, directorySize >= 0, directoryOffset >= 0, directoryOffset <= file.count,
              directorySize <= file.count - directoryOffset, count <= directorySize / 46 + 1
        else { throw fail("central directory lies outside the file") }

        var entries: [String: Entry] = [:]
        var cursor = directoryOffset
        for _ in 0..<count {
            guard cursor + 46 <= directoryOffset + directorySize, u32(cursor) == 0x0201_4B50 else {
                throw fail("corrupt central directory")
            }
            let method = UInt16(u16(cursor + 10))
            var compressed = u32(cursor + 20)
            var size = u32(cursor + 24)
            let nameLength = u16(cursor + 28), extraLength = u16(cursor + 30), commentLength = u16(cursor + 32)
            var localOffset = u32(cursor + 42)
            let nameStart = cursor + 46
            guard nameStart + nameLength + extraLength <= file.count else { throw fail("corrupt central directory") }
            guard let name = String(validating: UnsafeRawBufferPointer(rebasing: bytes[nameStart..<(nameStart + nameLength)]), as: UTF8.self)
            else { throw fail("entry name is not UTF-8") }
            // ZIP64 extended information: the 0xFFFFFFFF fields, in order.
            var extra = nameStart + nameLength
            let extraEnd = extra + extraLength
            while extra + 4 <= extraEnd {
                let id = u16(extra), length = u16(extra + 2)
                guard extra + 4 + length <= extraEnd else { break }
                if id == 0x0001 {
                    var field = extra + 4
                    if size == 0xFFFF_FFFF, field + 8 <= extra + 4 + length { size = u64(field); field += 8 }
                    if compressed == 0xFFFF_FFFF, field + 8 <= extra + 4 + length { compressed = u64(field); field += 8 }
                    if localOffset == 0xFFFF_FFFF, field + 8 <= extra + 4 + length { localOffset = u64(field) }
                }
                extra += 4 + length
            }
            guard size >= 0, compressed >= 0, localOffset >= 0 else { throw fail("entry '\(name)' has an impossible size") }
            guard entries[name] == nil else { throw fail("entry '\(name)' appears twice") }
            entries[name] = Entry(name: name, method: method, compressedSize: compressed, size: size, localHeaderOffset: localOffset)
            cursor = extraEnd + commentLength
        }
        self.entries = entries
    }

    /// The bytes of a stored entry, checked to lie inside the file.
    func data(_ name: String) throws -> UnsafeRawBufferPointer {
        func fail(_ reason: String) -> ASRError { .invalidCheckpoint(file: fileName, reason: reason) }
        guard let entry = entries[name] else { throw fail("archive has no entry '\(name)'") }
        guard entry.method == 0 else { throw fail("entry '\(name)' is compressed (method \(entry.method)); only stored entries are read") }
        guard entry.compressedSize == entry.size else { throw fail("entry '\(name)' has inconsistent sizes") }
        let header = entry.localHeaderOffset
        guard header <= file.count - 30 else { throw fail("entry '\(name)' points outside the file") }
        let head = file.bytes(header..<(header + 30))
        guard head.loadUnaligned(as: UInt32.self).littleEndian == 0x0403_4B50 else { throw fail("entry '\(name)' has no local header") }
        let nameLength = Int(head[26]) | Int(head[27]) << 8
        let extraLength = Int(head[28]) | Int(head[29]) << 8
        let start = header + 30 + nameLength + extraLength
        guard start <= file.count, entry.size <= file.count - start else { throw fail("entry '\(name)' runs past the end of the file") }
        return file.bytes(start..<(start + entry.size))
    }
}
