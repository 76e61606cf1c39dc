import Foundation
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A read-only memory map of a whole file. Pages are read lazily by the kernel and shared between processes.
final class MappedFile: @unchecked Sendable {  // immutable after init; the mapping is read-only
    let path: String
    let count: Int
    private let base: UnsafeRawPointer?
    private let ownsMapping: Bool

    init(path: String) throws {
        self.path = path
        ownsMapping = true
        let name = (path as NSString).lastPathComponent
        let fd = open(path, O_RDONLY)
        guard fd >= 0 else {
            throw ASRError.invalidSafeTensors(file: name, reason: "cannot open: \(String(cString: strerror(errno)))")
        }
        defer { close(fd) }
        var info = stat()
        guard fstat(fd, &info) == 0 else {
            throw ASRError.invalidSafeTensors(file: name, reason: "cannot stat: \(String(cString: strerror(errno)))")
        }
        guard (info.st_mode & S_IFMT) == S_IFREG else {
            throw ASRError.invalidSafeTensors(file: name, reason: "not a regular file")
        }
        count = Int(info.st_size)
        if count == 0 {
            base = nil
            return
        }
        let mapped = mmap(nil, count, PROT_READ, MAP_PRIVATE, fd, 0)
        guard let mapped, mapped != MAP_FAILED else {
            throw ASRError.invalidSafeTensors(file: name, reason: "cannot map: \(String(cString: strerror(errno)))")
        }
        base = UnsafeRawPointer(mapped)
    }

    /// Bytes that live as long as the process (the built-in model, linked into the binary).
    init(staticBytes: UnsafeRawBufferPointer, name: String) {
        path = name
        count = staticBytes.count
        base = staticBytes.baseAddress
        ownsMapping = false
    }

    deinit {
        if ownsMapping, let base { munmap(UnsafeMutableRawPointer(mutating: base), count) }
    }

    /// Drops the pages wholly inside `range` from this process's resident memory (the file is untouched; reading
    /// them again faults them back in). For bytes that were copied or converted at load and are not read again:
    /// without this, a 1 GB int8 checkpoint counted twice (the mapped codes and their packed copy).
    func release(_ range: Range<Int>) {
        guard ownsMapping, let base else { return }
        let page = Int(sysconf(Int32(_SC_PAGESIZE)))
        let start = (range.lowerBound + page - 1) / page * page, end = range.upperBound / page * page
        guard end > start else { return }
        madvise(UnsafeMutableRawPointer(mutating: base + start), end - start, Int32(MADV_DONTNEED))
    }

    /// The bytes `range` of the file; the caller has checked the range is inside the file.
    func bytes(_ range: Range<Int>) -> UnsafeRawBufferPointer {
        precondition(range.lowerBound >= 0 && range.upperBound <= count)
        guard let base else { return UnsafeRawBufferPointer(start: nil, count: 0) }
        return UnsafeRawBufferPointer(start: base + range.lowerBound, count: range.count)
    }
}

/// Element types of the safetensors format.
public enum SafeTensorsDType: String, Sendable {
    case bool = "BOOL", u8 = "U8", i8 = "I8", f8e4m3 = "F8_E4M3", f8e5m2 = "F8_E5M2"
    case i16 = "I16", u16 = "U16", f16 = "F16", bf16 = "BF16"
    case i32 = "I32", u32 = "U32", f32 = "F32"
    case i64 = "I64", u64 = "U64", f64 = "F64"

    var byteSize: Int {
        switch self {
        case .bool, .u8, .i8, .f8e4m3, .f8e5m2: return 1
        case .i16, .u16, .f16, .bf16: return 2
        case .i32, .u32, .f32: return 4
        case .i64, .u64, .f64: return 8
        }
    }
}

/// One tensor's entry in a safetensors header.
public struct SafeTensorInfo: Sendable, Equatable {
    /// The tensor's name in the header.
    public let name: String
    /// The element type.
    public let dtype: SafeTensorsDType
    /// The dimensions, outermost first.
    public let shape: [Int]
    /// Byte range inside the file (already shifted past the header).
    public let byteRange: Range<Int>

    /// Number of elements (the product of `shape`).
    public var elementCount: Int { shape.reduce(1, *) }
}

/// A validated, memory-mapped `.safetensors` file.
///
/// Layout: u64 little-endian header length N, N bytes of JSON `{name: {dtype, shape, data_offsets}}` (+ optional
/// `__metadata__`), then the data buffer. We check everything the reference implementation checks: header size and
/// JSON, known dtypes, non-negative shapes whose byte size matches the offsets, offsets inside the file, and tensors
/// covering the data buffer exactly, without overlap or gap.
public final class SafeTensorsFile: Sendable {
    /// The file's name, for error messages.
    public let fileName: String
    /// Each tensor's entry, by name.
    public let tensors: [String: SafeTensorInfo]
    /// The header's `__metadata__` (empty when it has none).
    public let metadata: [String: String]
    private let file: MappedFile
    /// The mapping the tensors are read from (kept alive by whoever reads them in place).
    var mapping: MappedFile { file }

    /// The reference implementation's cap on the header size.
    static let maxHeaderBytes = 100_000_000

    /// Maps and validates the safetensors file at `path`; throws if it is unreadable or malformed.
    public convenience init(path: String) throws {
        try self.init(file: MappedFile(path: path))
    }

    init(file: MappedFile) throws {
        self.file = file
        let name = (file.path as NSString).lastPathComponent
        fileName = name
        func fail(_ reason: String) -> ASRError { .invalidSafeTensors(file: name, reason: reason) }

        guard file.count >= 8 else { throw fail("file is \(file.count) bytes, too short for the 8-byte header length") }
        let lengthBytes = file.bytes(0..<8)
        var headerLength: UInt64 = 0
        for i in 0..<8 { headerLength |= UInt64(lengthBytes[i]) << (8 * UInt64(i)) }
        guard headerLength <= UInt64(Self.maxHeaderBytes) else { throw fail("header length \(headerLength) exceeds 100 MB") }
        guard headerLength <= UInt64(file.count - 8) else {
            throw fail("header length \(headerLength) runs past the end of the \(file.count)-byte file")
        }
        let headerEnd = 8 + Int(headerLength)
        let headerBytes = file.bytes(8..<headerEnd)
        guard headerBytes.first == UInt8(ascii: "{") else { throw fail("header does not start with a JSON object") }
        let json: JSONValue
        do {
            json = try JSONValue.parse(headerBytes)
        } catch {
            throw fail("header is not valid JSON: \(error)")
        }
        guard let entries = json.objectMembers else { throw fail("header is not a JSON object") }
        let dataSize = file.count - headerEnd

        var tensors: [String: SafeTensorInfo] = [:]
        var metadata: [String: String] = [:]
        for (key, value) in entries {
            if key == "__metadata__" {
                guard let members = value.objectMembers else { throw fail("__metadata__ is not an object") }
                for (k, v) in members {
                    guard let s = v.stringValue else { throw fail("__metadata__ value '\(k)' is not a string") }
                    metadata[k] = s
                }
                continue
            }
            guard let entry = value.objectMembers else { throw fail("entry '\(key)' is not an object") }
            func field(_ name: String) -> JSONValue? { entry.first { $0.0 == name }?.1 }
            guard let dtypeName = field("dtype")?.stringValue else { throw fail("tensor '\(key)' has no dtype") }
            guard let dtype = SafeTensorsDType(rawValue: dtypeName) else {
                throw fail("tensor '\(key)' has unknown dtype '\(dtypeName)'")
            }
            guard let shapeValues = field("shape")?.arrayValue else { throw fail("tensor '\(key)' has no shape") }
            var shape: [Int] = []
            var elements = 1
            for dimValue in shapeValues {
                guard let dim = dimValue.intValue, dim >= 0 else {
                    throw fail("tensor '\(key)' has an invalid dimension in its shape")
                }
                let (product, overflow) = elements.multipliedReportingOverflow(by: dim)
                guard !overflow else { throw fail("tensor '\(key)' shape overflows") }
                elements = product
                shape.append(dim)
            }
            guard let offsets = field("data_offsets")?.arrayValue, offsets.count == 2,
                  let begin = offsets[0].intValue, let end = offsets[1].intValue
            else { throw fail("tensor '\(key)' has invalid data_offsets") }
            guard begin >= 0, begin <= end, end <= dataSize else {
                throw fail("tensor '\(key)' data_offsets [\(begin), \(end)) lie outside the \(dataSize)-byte data buffer")
            }
            let (bytes, overflow) = elements.multipliedReportingOverflow(by: dtype.byteSize)
            guard !overflow, bytes == end - begin else {
                throw fail("tensor '\(key)' spans \(end - begin) bytes but shape \(shape) of \(dtype.rawValue) needs \(overflow ? "more" : String(bytes))")
            }
            tensors[key] = SafeTensorInfo(
                name: key, dtype: dtype, shape: shape, byteRange: (headerEnd + begin)..<(headerEnd + end))
        }

        // The tensors must tile the data buffer: sorted by offset, each starts where the previous ended.
        var cursor = headerEnd
        for info in tensors.values.sorted(by: { ($0.byteRange.lowerBound, $0.byteRange.upperBound) < ($1.byteRange.lowerBound, $1.byteRange.upperBound) }) {
            if info.byteRange.lowerBound < cursor { throw fail("tensor '\(info.name)' overlaps another tensor") }
            if info.byteRange.lowerBound > cursor { throw fail("gap in the data buffer before tensor '\(info.name)'") }
            cursor = info.byteRange.upperBound
        }
        guard cursor == file.count else { throw fail("\(file.count - cursor) trailing bytes after the last tensor") }

        self.tensors = tensors
        self.metadata = metadata
    }

    /// The tensor's F32 data in place, when it is F32 and 4-byte aligned in the mapping (little-endian hosts).
    func mappedFloats(_ info: SafeTensorInfo) -> FloatStorage? {
        #if _endian(little)
        guard info.dtype == .f32 else { return nil }
        let bytes = file.bytes(info.byteRange)
        guard let base = bytes.baseAddress, Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 else { return nil }
        return FloatStorage(mapped: base.assumingMemoryBound(to: Float.self), count: info.elementCount, mapping: file)
        #else
        return nil
        #endif
    }

    /// The tensor's bytes as stored, in place.
    func rawBytes(_ info: SafeTensorInfo) -> UnsafeRawBufferPointer { file.bytes(info.byteRange) }

    /// Lets the tensor's pages go from resident memory (see ``MappedFile/release(_:)``).
    func release(_ name: String) {
        if let info = tensors[name] { file.release(info.byteRange) }
    }

    /// The tensor converted to Float (F32, F16 and BF16 are supported).
    public func floats(_ name: String) throws -> [Float] {
        guard let info = tensors[name] else { throw ASRError.missingTensor(name: name) }
        return try Self.convert(file.bytes(info.byteRange), dtype: info.dtype, count: info.elementCount, name: name)
    }

    static func convert(_ raw: UnsafeRawBufferPointer, dtype: SafeTensorsDType, count: Int, name: String) throws -> [Float] {
        switch dtype {
        case .f32:
            return [Float](unsafeUninitializedCapacity: count) { out, initialized in
                for i in 0..<count { out[i] = Float(bitPattern: UInt32(littleEndian: raw.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self))) }
                initialized = count
            }
        case .f16:
            return [Float](unsafeUninitializedCapacity: count) { out, initialized in
                for i in 0..<count { out[i] = halfToFloat(UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
                initialized = count
            }
        case .bf16:
            return [Float](unsafeUninitializedCapacity: count) { out, initialized in
                for i in 0..<count {
                    let bits = UInt16(littleEndian: raw.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))
                    out[i] = Float(bitPattern: UInt32(bits) << 16)
                }
                initialized = count
            }
        default:
            throw ASRError.unsupportedDType(name: name, dtype: dtype.rawValue)
        }
    }
}

/// IEEE 754 binary16 → binary32, exact for every value (subnormals, infinities and NaN included).
@inline(__always)
func halfToFloat(_ h: UInt16) -> Float {
    let sign = UInt32(h & 0x8000) << 16
    let exponent = Int((h >> 10) & 0x1F)
    let mantissa = UInt32(h & 0x3FF)
    if exponent == 0x1F { return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13)) }
    if exponent == 0 {
        // Zero or subnormal: mantissa · 2^-24, exactly representable in Float.
        let magnitude = Float(mantissa) * Float(sign: .plus, exponent: -24, significand: 1)
        return sign != 0 ? -magnitude : magnitude
    }
    return Float(bitPattern: sign | UInt32(exponent - 15 + 127) << 23 | (mantissa << 13))
}
