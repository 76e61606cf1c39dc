import CSndFile
import Foundation

/// An audio file opened with libsndfile (WAV, AIFF, FLAC, OGG/Vorbis, Opus, MP3, CAF, W64, RF64, ...), read as mono
/// Float in blocks so that a long file never has to be in memory at its original rate.
///
/// Not thread-safe: one reader per file per thread.
public final class AudioFile {
    /// Sample rate in Hz, as the file states it.
    public let sampleRate: Int
    /// Channels per frame; they are averaged into mono.
    public let channels: Int
    /// Frames (samples per channel) the header announces.
    public let frameCount: Int
    /// libsndfile's description of the container and encoding, e.g. "WAV (Microsoft) / Signed 16 bit PCM".
    public let formatDescription: String
    /// The path the file was opened from.
    public let path: String
    /// How errors and logs name the file: the path, unless the caller gave another name (a spooled pipe is
    /// "standard input", an upload its client-side file name).
    public let name: String
    /// Whether `frameCount` is exact (FLAC's STREAMINFO), so that decoding fewer frames means the file was cut.
    /// MP3 lengths are estimated from the file size and Ogg streams state none: a cut one cannot be told from a
    /// short one and is transcribed as far as it goes.
    let hasExactLength: Bool

    /// Duration in seconds according to the header.
    public var duration: Double { sampleRate > 0 ? Double(frameCount) / Double(sampleRate) : 0 }

    private var handle: OpaquePointer?
    private var interleaved: [Float] = []

    /// Rates outside this range are refused as absurd (libsndfile itself accepts any positive 32-bit value).
    public static let supportedRates = 1000...768_000
    /// More channels than this is not a real recording.
    public static let maxChannels = 256

    /// Opens `path` and reads its header; no samples are decoded yet.
    ///
    /// - Parameters:
    ///   - path: the file to open.
    ///   - name: how errors name the file; `path` when nil.
    public init(path: String, name: String? = nil) throws {
        self.path = path
        let name = name ?? path
        self.name = name
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw ASRError.unreadableAudio(file: name, reason: "no such file")
        }
        if isDirectory.boolValue { throw ASRError.unreadableAudio(file: name, reason: "is a directory") }
        guard FileManager.default.isReadableFile(atPath: path) else {
            throw ASRError.unreadableAudio(file: name, reason: "permission denied")
        }
        if let reason = Self.notMPEG(path) {
            throw ASRError.unreadableAudio(file: name, reason: "not a supported audio file (\(reason))")
        }
        var info = SF_INFO()
        guard let handle = sf_open(path, Int32(SFM_READ), &info) else {
            let message = String(cString: sf_strerror(nil))
            let size = (try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? Int ?? -1
            if size == 0 { throw ASRError.invalidAudio(file: name, reason: "file is empty") }
            throw ASRError.unreadableAudio(file: name, reason: "not a supported audio file (\(message))")
        }
        self.handle = handle
        guard info.channels > 0 else {
            sf_close(handle); self.handle = nil
            throw ASRError.invalidAudio(file: name, reason: "file has no channels")
        }
        guard Int(info.channels) <= Self.maxChannels else {
            sf_close(handle); self.handle = nil
            throw ASRError.invalidAudio(file: name, reason: "\(info.channels) channels is more than \(Self.maxChannels)")
        }
        guard Self.supportedRates.contains(Int(info.samplerate)) else {
            sf_close(handle); self.handle = nil
            throw ASRError.invalidAudio(
                file: name, reason: "sample rate \(info.samplerate) Hz is outside \(Self.supportedRates.lowerBound)...\(Self.supportedRates.upperBound) Hz")
        }
        sampleRate = Int(info.samplerate)
        channels = Int(info.channels)
        frameCount = max(0, Int(info.frames))
        formatDescription = Self.describe(format: info.format)
        hasExactLength = info.format & Int32(SF_FORMAT_TYPEMASK) == Int32(SF_FORMAT_FLAC)
        // Integer files are scaled to [-1, 1); float files are returned as stored (no clipping, no normalisation).
        sf_command(handle, Int32(SFC_SET_NORM_FLOAT), nil, Int32(SF_TRUE))
        if let (declared, present) = Self.truncatedDataChunk(handle) {
            sf_close(handle); self.handle = nil
            throw ASRError.invalidAudio(
                file: name, reason: "file is truncated: its header announces \(declared) bytes of audio, \(present) are present")
        }
    }

    /// A file named .mp3 that starts with neither an ID3 tag nor an MPEG frame header (nor a RIFF header): libsndfile
    /// would hand it to mpg123, which prints "Illegal Audio-MPEG-Header" notes on stderr before giving up. The
    /// reason in words, or nil when the file may be MPEG audio (or is not named .mp3).
    private static func notMPEG(_ path: String) -> String? {
        guard (path as NSString).pathExtension.lowercased() == "mp3", let handle = FileHandle(forReadingAtPath: path) else { return nil }
        defer { try? handle.close() }
        let head = [UInt8]((try? handle.read(upToCount: 4)) ?? Data())
        guard head.count >= 4 else { return nil }
        if head[0...2] == [0x49, 0x44, 0x33] || head[0...3] == [0x52, 0x49, 0x46, 0x46] { return nil }  // "ID3", "RIFF"
        if head[0] == 0xFF && head[1] & 0xE0 == 0xE0 { return nil }  // MPEG frame sync
        return "named .mp3 but starts with neither an ID3 tag nor an MPEG frame header"
    }

    /// libsndfile opens a WAV/AIFF whose data chunk runs past the end of the file, clamps the length and notes
    /// "data : 23022 (should be 2956)" in its log. Streaming writers that did not know the length declare 0 or
    /// 0xFFFFFFFF there; only a definite length larger than what is present means the file was cut.
    private static func truncatedDataChunk(_ handle: OpaquePointer) -> (declared: Int, present: Int)? {
        var log = [CChar](repeating: 0, count: 8192)
        sf_command(handle, Int32(SFC_GET_LOG_INFO), &log, Int32(log.count))
        let text = String(decoding: log.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
        for line in text.split(separator: "\n") {
            let trimmed = line.trimmingCharacters(in: .whitespaces)
            guard trimmed.hasPrefix("data ") || trimmed.hasPrefix("SSND ") || trimmed.hasPrefix("ds64 "),
                  let colon = trimmed.firstIndex(of: ":"),
                  let open = trimmed.range(of: "(should be "), colon < open.lowerBound,
                  let declared = Int(trimmed[trimmed.index(after: colon)..<open.lowerBound]
                    .trimmingCharacters(in: .whitespaces)),
                  let present = Int(trimmed[open.upperBound...].prefix { $0.isNumber })
            else { continue }
            let unknownLength = declared == 0 || declared >= 0x7FFF_FFFF
            if !unknownLength && declared > present { return (declared, present) }
        }
        return nil
    }

    deinit {
        if let handle { sf_close(handle) }
    }

    /// Reads up to `maxFrames` frames with their channels interleaved, as they are in the file (what a live source
    /// would deliver). Returns an empty array at the end of the file.
    package func readInterleavedBlock(maxFrames: Int = 65536) throws -> [Float] {
        guard let handle, maxFrames > 0 else { return [] }
        var block = [Float](repeating: 0, count: maxFrames * channels)
        let read = block.withUnsafeMutableBufferPointer { buffer in
            Int(sf_readf_float(handle, buffer.baseAddress, sf_count_t(maxFrames)))
        }
        if read <= 0 && sf_error(handle) != 0 {
            throw ASRError.unreadableAudio(file: name, reason: "decoding failed (\(String(cString: sf_strerror(handle))))")
        }
        return Array(block.prefix(max(0, read) * channels))
    }

    /// Reads up to `maxFrames` frames, averaged to mono. Returns an empty array at the end of the file.
    public func readBlock(maxFrames: Int = 65536) throws -> [Float] {
        guard let handle, maxFrames > 0 else { return [] }
        if interleaved.count < maxFrames * channels { interleaved = [Float](repeating: 0, count: maxFrames * channels) }
        let read = interleaved.withUnsafeMutableBufferPointer { buffer in
            Int(sf_readf_float(handle, buffer.baseAddress, sf_count_t(maxFrames)))
        }
        let error = sf_error(handle)
        if read <= 0 && error != 0 {
            throw ASRError.unreadableAudio(file: name, reason: "decoding failed (\(String(cString: sf_strerror(handle))))")
        }
        guard read > 0 else { return [] }
        return SampleConditioner.mixdown(interleaved, frames: read, channels: channels)
    }

    /// Reads the rest of the file as mono samples at the file's own rate.
    public func readAll() throws -> [Float] {
        var samples: [Float] = []
        samples.reserveCapacity(min(frameCount, 1 << 26))
        while true {
            let block = try readBlock()
            if block.isEmpty { break }
            samples += block
        }
        return samples
    }

    private static func describe(format: Int32) -> String {
        func name(_ command: Int32, _ value: Int32) -> String? {
            var info = SF_FORMAT_INFO()
            info.format = value
            guard sf_command(nil, command, &info, Int32(MemoryLayout<SF_FORMAT_INFO>.size)) == 0, let n = info.name else { return nil }
            return String(cString: n)
        }
        let major = name(Int32(SFC_GET_FORMAT_INFO), format & Int32(SF_FORMAT_TYPEMASK)) ?? "unknown container"
        let minor = name(Int32(SFC_GET_FORMAT_INFO), format & Int32(SF_FORMAT_SUBMASK)) ?? "unknown encoding"
        return "\(major) / \(minor)"
    }
}
