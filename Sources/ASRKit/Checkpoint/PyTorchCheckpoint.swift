import Foundation

/// A `pytorch_model.bin` written by `torch.save` (PyTorch's ZIP format): `data.pkl` holds the state dict as a
/// pickle whose tensors point at raw storages stored as `data/N` entries.
///
/// The pickle is read by a restricted interpreter that knows only the opcodes and the handful of globals a state
/// dict needs (`collections.OrderedDict`, `torch._utils._rebuild_tensor_v2`, `torch._utils._rebuild_parameter`,
/// `torch.{Float,Half,BFloat16}Storage`). Any other global (`os.system`, `builtins.eval`, ...) or opcode is refused:
/// loading never calls or imports anything, it only builds a table of tensors.
final class PyTorchCheckpoint: TensorSource, @unchecked Sendable {  // immutable after init
    struct TensorRecord {
        let storageKey: String
        let dtype: SafeTensorsDType
        let storageElements: Int
        let offset: Int
        let shape: [Int]
        let strides: [Int]
    }

    let fileName: String
    let records: [String: TensorRecord]
    let shapes: [String: [Int]]
    var storageTypes: [String] { Array(Set(records.values.map(\.dtype.rawValue))).sorted() }
    private let archive: ZipArchive
    private let prefix: String

    init(path: String) throws {
        let file = try MappedFile(path: path)
        let name = (path as NSString).lastPathComponent
        fileName = name
        func fail(_ reason: String) -> ASRError { .invalidCheckpoint(file: name, reason: reason) }
        let head = file.bytes(0..<min(file.count, 4))
        if head.count >= 2, head[0] == 0x80, head[1] <= 5 {
            throw fail("legacy (pre-1.6, non-ZIP) PyTorch format; convert it with transformers "
                       + "(`Wav2Vec2ForCTC.from_pretrained(dir).save_pretrained(dir)` writes model.safetensors)")
        }
        archive = try ZipArchive(file: file)
        guard let pickleName = archive.entries.keys.filter({ $0.hasSuffix("/data.pkl") || $0 == "data.pkl" }).min() else {
            throw fail("ZIP archive without data.pkl: not a PyTorch checkpoint")
        }
        prefix = String(pickleName.dropLast("data.pkl".count))
        if archive.entries[prefix + "byteorder"] != nil {
            let order = String(decoding: try archive.data(prefix + "byteorder"), as: UTF8.self)
            guard order == "little" else { throw fail("big-endian checkpoint (byteorder \(order))") }
        }
        let pickle = try archive.data(pickleName)
        var machine = Unpickler(bytes: pickle, fileName: name)
        let root = try machine.run()
        guard case .dict(let items) = root else { throw fail("data.pkl does not hold a state dict") }
        var records: [String: TensorRecord] = [:]
        for (key, value) in items {
            guard case .string(let tensorName) = key else { throw fail("state dict key is not a string") }
            guard case .tensor(let record) = value else { continue }  // non-tensor entries (e.g. _metadata) are skipped
            guard records[tensorName] == nil else { throw fail("tensor '\(tensorName)' appears twice") }
            records[tensorName] = record
        }
        // Every storage must exist and hold the elements its tensors reach.
        for (tensorName, r) in records {
            guard let entry = archive.entries[prefix + "data/" + r.storageKey] else {
                throw fail("tensor '\(tensorName)' points at storage '\(r.storageKey)', which the archive lacks")
            }
            let (needed, overflow) = r.storageElements.multipliedReportingOverflow(by: r.dtype.byteSize)
            guard !overflow, entry.size >= needed else {
                throw fail("storage '\(r.storageKey)' holds \(entry.size) bytes, fewer than its \(r.storageElements) elements need")
            }
        }
        self.records = records
        shapes = records.mapValues(\.shape)
    }

    func floats(_ name: String) throws -> [Float] {
        guard let r = records[name] else { throw ASRError.missingTensor(name: name) }
        let raw = try archive.data(prefix + "data/" + r.storageKey)
        let count = r.shape.reduce(1, *)
        let storage = try SafeTensorsFile.convert(
            UnsafeRawBufferPointer(rebasing: raw[0..<(r.storageElements * r.dtype.byteSize)]),
            dtype: r.dtype, count: r.storageElements, name: name)
        // Gather through offset and strides (tensors may be views: transposed, sliced).
        var out = [Float](repeating: 0, count: count)
        guard count > 0 else { return out }
        var index = [Int](repeating: 0, count: r.shape.count)
        for i in 0..<count {
            var position = r.offset
            for d in r.shape.indices { position += index[d] * r.strides[d] }
            out[i] = storage[position]
            var d = r.shape.count - 1
            while d >= 0 {
                index[d] += 1
                if index[d] < r.shape[d] { break }
                index[d] = 0
                d -= 1
            }
        }
        return out
    }
}

/// The restricted pickle interpreter.
struct Unpickler {
    indirect enum Value {
        case none
        case bool(Bool)
        case int(Int)
        case float(Double)
        case string(String)
        case bytes([UInt8])
        case tuple([Value])
        case list([Value])
        /// Dicts and OrderedDicts, in insertion order.
        case dict([(Value, Value)])
        case global(String)
        case storage(key: String, dtype: SafeTensorsDType, elements: Int)
        case tensor(PyTorchCheckpoint.TensorRecord)
    }

    /// The only callables a state dict needs.
    static let allowedGlobals: Set<String> = [
        "collections.OrderedDict", "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_parameter",
        "torch.FloatStorage", "torch.HalfStorage", "torch.BFloat16Storage", "torch.DoubleStorage",
        "torch.LongStorage", "torch.IntStorage", "torch.ByteStorage", "torch.BoolStorage",
    ]

    let bytes: UnsafeRawBufferPointer
    let fileName: String
    var position = 0
    var stack: [Value] = []
    var marks: [Int] = []
    var memo: [Int: Value] = [:]

    init(bytes: UnsafeRawBufferPointer, fileName: String) {
        self.bytes = bytes
        self.fileName = fileName
    }

    func fail(_ reason: String) -> ASRError { .invalidCheckpoint(file: fileName, reason: "data.pkl: \(reason)") }

    mutating func byte() throws -> UInt8 {
        guard position < bytes.count else { throw fail("truncated pickle") }
        defer { position += 1 }
        return bytes[position]
    }

    mutating func take(_ n: Int) throws -> UnsafeRawBufferPointer {
        guard n >= 0, n <= bytes.count - position else { throw fail("truncated pickle") }
        defer { position += n }
        return UnsafeRawBufferPointer(rebasing: bytes[position..<(position + n)])
    }

    mutating func uint(_ n: Int) throws -> Int {
        let b = try take(n)
        var value: UInt64 = 0
        for i in 0..<n { value |= UInt64(b[i]) << (8 * UInt64(i)) }
        guard value <= UInt64(Int.max) else { throw fail("length out of range") }
        return Int(value)
    }

    mutating func line() throws -> String {
        var out: [UInt8] = []
        while true {
            let b = try byte()
            if b == 0x0A { break }
            out.append(b)
            if out.count > 256 { throw fail("global name too long") }
        }
        return String(decoding: out, as: UTF8.self)
    }

    mutating func pop() throws -> Value {
        guard let top = stack.popLast() else { throw fail("stack underflow") }
        if let mark = marks.last, stack.count < mark { throw fail("stack underflow past a mark") }
        return top
    }

    mutating func popMark() throws -> [Value] {
        guard let mark = marks.popLast(), mark <= stack.count else { throw fail("no mark") }
        let items = Array(stack[mark...])
        stack.removeSubrange(mark...)
        return items
    }

    mutating func string(_ raw: UnsafeRawBufferPointer) throws -> Value {
        guard let s = String(validating: raw, as: UTF8.self) else { throw fail("string is not UTF-8") }
        return .string(s)
    }

    mutating func global(_ module: String, _ name: String) throws -> Value {
        let qualified = module + "." + name
        guard Self.allowedGlobals.contains(qualified) else {
            throw fail("refusing global '\(qualified)': a state dict never needs it, and loading must not run code")
        }
        return .global(qualified)
    }

    /// Runs to STOP and returns the top of the stack.
    mutating func run() throws -> Value {
        var steps = 0
        while true {
            steps += 1
            if steps > 50_000_000 { throw fail("pickle too long") }
            let opcode = try byte()
            switch opcode {
            case 0x80: _ = try byte()                                       // PROTO
            case 0x95: _ = try take(8)                                      // FRAME
            case 0x2E:                                                      // STOP
                guard let top = stack.last else { throw fail("empty stack at STOP") }
                return top
            case 0x7D: stack.append(.dict([]))                              // EMPTY_DICT
            case 0x5D: stack.append(.list([]))                              // EMPTY_LIST
            case 0x29: stack.append(.tuple([]))                             // EMPTY_TUPLE
            case 0x28: marks.append(stack.count)                            // MARK
            case 0x71: memo[Int(try byte())] = try top()                    // BINPUT
            case 0x72: memo[try uint(4)] = try top()                        // LONG_BINPUT
            case 0x94: memo[memo.count] = try top()                         // MEMOIZE
            case 0x68: stack.append(try memoValue(Int(try byte())))         // BINGET
            case 0x6A: stack.append(try memoValue(try uint(4)))             // LONG_BINGET
            case 0x58: stack.append(try string(try take(try uint(4))))      // BINUNICODE
            case 0x8C: stack.append(try string(try take(Int(try byte()))))  // SHORT_BINUNICODE
            case 0x8D: stack.append(try string(try take(try uint(8))))      // BINUNICODE8
            case 0x54: stack.append(try string(try take(try uint(4))))      // BINSTRING
            case 0x55: stack.append(try string(try take(Int(try byte()))))  // SHORT_BINSTRING
            case 0x42: stack.append(.bytes(Array(try take(try uint(4)))))   // BINBYTES
            case 0x43: stack.append(.bytes(Array(try take(Int(try byte())))))  // SHORT_BINBYTES
            case 0x63:                                                      // GLOBAL
                let module = try line(), name = try line()
                stack.append(try global(module, name))
            case 0x93:                                                      // STACK_GLOBAL
                guard case .string(let name) = try pop(), case .string(let module) = try pop() else {
                    throw fail("STACK_GLOBAL needs two strings")
                }
                stack.append(try global(module, name))
            case 0x51: stack.append(try persistent(try pop()))              // BINPERSID
            case 0x74: stack.append(.tuple(try popMark()))                  // TUPLE
            case 0x85: stack.append(.tuple([try pop()]))                    // TUPLE1
            case 0x86: let b = try pop(), a = try pop(); stack.append(.tuple([a, b]))       // TUPLE2
            case 0x87: let c = try pop(), b = try pop(), a = try pop(); stack.append(.tuple([a, b, c]))  // TUPLE3
            case 0x4A:                                                      // BININT
                stack.append(.int(Int(Int32(bitPattern: UInt32(try uint(4))))))
            case 0x4B: stack.append(.int(Int(try byte())))                  // BININT1
            case 0x4D: stack.append(.int(try uint(2)))                      // BININT2
            case 0x8A: stack.append(.int(try long(Int(try byte()))))        // LONG1
            case 0x88: stack.append(.bool(true))                            // NEWTRUE
            case 0x89: stack.append(.bool(false))                           // NEWFALSE
            case 0x4E: stack.append(.none)                                  // NONE
            case 0x47:                                                      // BINFLOAT (big-endian)
                let b = try take(8)
                var bits: UInt64 = 0
                for i in 0..<8 { bits = bits << 8 | UInt64(b[i]) }
                stack.append(.float(Double(bitPattern: bits)))
            case 0x52:                                                      // REDUCE
                let arguments = try pop(), callable = try pop()
                stack.append(try call(callable, arguments))
            case 0x73:                                                      // SETITEM
                let value = try pop(), key = try pop()
                try setItems([(key, value)])
            case 0x75:                                                      // SETITEMS
                let items = try popMark()
                guard items.count % 2 == 0 else { throw fail("SETITEMS with an odd number of items") }
                try setItems(stride(from: 0, to: items.count, by: 2).map { (items[$0], items[$0 + 1]) })
            case 0x61:                                                      // APPEND
                let value = try pop()
                try append([value])
            case 0x65: try append(try popMark())                            // APPENDS
            case 0x62: _ = try pop()                                        // BUILD: object state is not needed
            case 0x30: _ = try pop()                                        // POP
            case 0x31: _ = try popMark()                                    // POP_MARK
            case 0x32: stack.append(try top())                              // DUP
            default:
                throw fail(String(format: "refusing pickle opcode 0x%02x at byte %d", opcode, position - 1))
            }
        }
    }

    func top() throws -> Value {
        guard let value = stack.last else { throw fail("stack underflow") }
        return value
    }

    func memoValue(_ index: Int) throws -> Value {
        guard let value = memo[index] else { throw fail("memo \(index) is empty") }
        return value
    }

    mutating func long(_ n: Int) throws -> Int {
        guard n <= 8 else { throw fail("integer too large") }
        if n == 0 { return 0 }
        let b = try take(n)
        var value: UInt64 = 0
        for i in 0..<n { value |= UInt64(b[i]) << (8 * UInt64(i)) }
        if n < 8, b[n - 1] & 0x80 != 0 { value |= ~UInt64(0) << (8 * UInt64(n)) }  // sign-extend
        return Int(Int64(bitPattern: value))
    }

    mutating func setItems(_ items: [(Value, Value)]) throws {
        guard case .dict(var existing) = try pop() else { throw fail("SETITEM on something that is not a dict") }
        existing += items
        stack.append(.dict(existing))
    }

    mutating func append(_ items: [Value]) throws {
        guard case .list(var existing) = try pop() else { throw fail("APPEND on something that is not a list") }
        existing += items
        stack.append(.list(existing))
    }

    /// PyTorch's persistent id: ('storage', storage type, key, location, element count).
    func persistent(_ id: Value) throws -> Value {
        guard case .tuple(let parts) = id, parts.count == 5, case .string("storage") = parts[0],
              case .global(let type) = parts[1], case .string(let key) = parts[2], case .int(let elements) = parts[4],
              elements >= 0
        else { throw fail("unexpected persistent id") }
        guard key.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else { throw fail("invalid storage key '\(key)'") }
        let dtype: SafeTensorsDType
        switch type {
        case "torch.FloatStorage": dtype = .f32
        case "torch.HalfStorage": dtype = .f16
        case "torch.BFloat16Storage": dtype = .bf16
        case "torch.DoubleStorage": dtype = .f64
        case "torch.LongStorage": dtype = .i64
        case "torch.IntStorage": dtype = .i32
        case "torch.ByteStorage": dtype = .u8
        case "torch.BoolStorage": dtype = .bool
        default: throw fail("unsupported storage type \(type)")
        }
        return .storage(key: key, dtype: dtype, elements: elements)
    }

    func call(_ callable: Value, _ arguments: Value) throws -> Value {
        guard case .global(let name) = callable, case .tuple(let args) = arguments else {
            throw fail("REDUCE on something that is not an allowed global")
        }
        switch name {
        case "collections.OrderedDict":
            guard args.isEmpty else { throw fail("OrderedDict with arguments") }
            return .dict([])
        case "torch._utils._rebuild_tensor_v2":
            guard args.count >= 4, case .storage(let key, let dtype, let elements) = args[0], case .int(let offset) = args[1],
                  case .tuple(let sizeValues) = args[2], case .tuple(let strideValues) = args[3],
                  sizeValues.count == strideValues.count, sizeValues.count <= 8
            else { throw fail("malformed _rebuild_tensor_v2 call") }
            var shape: [Int] = [], strides: [Int] = []
            for (s, t) in zip(sizeValues, strideValues) {
                guard case .int(let size) = s, case .int(let stride) = t, size >= 0, stride >= 0 else {
                    throw fail("tensor with a negative size or stride")
                }
                shape.append(size)
                strides.append(stride)
            }
            // The furthest element the view reaches must lie inside the storage.
            var last = offset
            var empty = false
            for (size, stride) in zip(shape, strides) {
                if size == 0 { empty = true; break }
                let (product, o1) = (size - 1).multipliedReportingOverflow(by: stride)
                let (sum, o2) = last.addingReportingOverflow(product)
                guard !o1, !o2 else { throw fail("tensor view overflows") }
                last = sum
            }
            guard offset >= 0, empty || last < elements else {
                throw fail("tensor view (offset \(offset), shape \(shape), strides \(strides)) reaches past its storage of \(elements) elements")
            }
            var count = 1
            for size in shape {
                let (product, overflow) = count.multipliedReportingOverflow(by: size)
                guard !overflow, product <= 1 << 34 else { throw fail("tensor too large") }
                count = product
            }
            return .tensor(.init(storageKey: key, dtype: dtype, storageElements: elements, offset: offset, shape: shape, strides: strides))
        case "torch._utils._rebuild_parameter":
            guard let first = args.first, case .tensor = first else { throw fail("malformed _rebuild_parameter call") }
            return first
        default:
            throw fail("refusing to call \(name)")
        }
    }
}
