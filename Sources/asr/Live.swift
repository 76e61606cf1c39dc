import ArgumentParser
import ASRKit
import Foundation

/// Headerless PCM sample formats for `--raw`.
enum RawFormat: String, ExpressibleByArgument, CaseIterable {
    case s16le, f32le

    var bytesPerSample: Int { self == .s16le ? 2 : 4 }

    /// Little-endian samples → floats (s16 scaled by 1/32768, as libsndfile reads 16-bit audio).
    func decode(_ bytes: UnsafeRawBufferPointer) -> [Float] {
        let count = bytes.count / bytesPerSample
        var out = [Float](repeating: 0, count: count)
        switch self {
        case .s16le:
            for i in 0..<count {
                let value = Int16(littleEndian: bytes.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self))
                out[i] = Float(value) / 32768
            }
        case .f32le:
            for i in 0..<count {
                out[i] = Float(bitPattern: UInt32(littleEndian: bytes.loadUnaligned(fromByteOffset: 4 * i, as: UInt32.self)))
            }
        }
        return out
    }
}

/// Options of `asr transcribe` for audio that arrives over time (`--raw`, `--rate`, `--channels`, `--live`).
struct LiveOptions: ParsableArguments {
    @Option(help: "The input is headerless PCM: s16le or f32le (needs --rate; --channels defaults to 1).")
    var raw: RawFormat?

    @Option(help: "Sample rate of --raw input (Hz).")
    var rate: Int?

    @Option(help: "Channels of --raw input (interleaved).")
    var channels: Int?

    @Flag(help: "Print each segment as soon as it is final (txt: one line each; json: one JSON object a line). Closing the input flushes the last one.")
    var live = false

    var isActive: Bool { live || raw != nil }

    func validate() throws {
        if raw == nil {
            if rate != nil { throw ValidationError("--rate is for --raw input (the rate of other audio is in its header)") }
            if channels != nil { throw ValidationError("--channels is for --raw input (other audio states its channels)") }
        } else {
            guard let rate else { throw ValidationError("--raw needs --rate (the sample rate in Hz)") }
            if rate < 1 || rate > 1_536_000 { throw ValidationError("--rate \(rate) is not a sample rate (1...1536000 Hz)") }
            if let channels, channels < 1 || channels > AudioFile.maxChannels {
                throw ValidationError("--channels \(channels) is not in 1...\(AudioFile.maxChannels)")
            }
        }
    }
}

extension Transcribe {
    /// Checks the options that live and raw input allow (usage errors: exit 2).
    func validateLive() throws {
        guard liveOptions.isActive else { return }
        let what = liveOptions.live ? "--live" : "--raw"
        if paths.count != 1 { throw ValidationError("\(what) reads one input (- for standard input)") }
        if outputDir != nil || jsonl != nil { throw ValidationError("\(what) writes to stdout: --output-dir and --jsonl do not apply") }
        if format.count > 1 { throw ValidationError("\(what) prints one --format") }
        if liveOptions.live, let format = format.first, format != .txt && format != .json {
            throw ValidationError("--live prints txt or json (one object a line), not \(format.rawValue)")
        }
        if recursive { throw ValidationError("\(what) reads one input, not a folder") }
        if decoderOptions.usesBeamSearch && liveOptions.live {
            throw ValidationError("--live decodes greedily: a language model or hotwords can revise text that is already printed")
        }
    }

    /// `--live` / `--raw`: the input goes through ASRKit's LiveTranscription as it is read.
    func runLive() async throws {
        let path = paths[0]
        let formatChoice = format.first ?? .txt
        let transcriber: Transcriber
        do {
            transcriber = try modelOptions.load(quiet: quiet)
        } catch {
            throw report(error)
        }
        let chunking = try chunkingOptions(chunkSeconds: chunkSeconds, strideSeconds: strideSeconds)
        let source: AudioSource
        do {
            source = try AudioSource(path: path, raw: liveOptions.raw, rate: liveOptions.rate, channels: liveOptions.channels ?? 1)
        } catch {
            throw report(error)
        }
        let live = try LiveTranscription(
            transcriber: transcriber, sampleRate: source.rate, channels: source.channels, chunking: chunking)
        let reader = source.startReading(into: live)
        var segments: [TranscriptSegment] = []
        do {
            for try await result in live {
                guard case .final(let segment) = result else { continue }
                segments.append(segment)
                if liveOptions.live {
                    let line = formatChoice == .json ? LiveLine.json(segment) : segment.text
                    try Files.write(Data((line + "\n").utf8), to: "-")
                }
            }
            try await reader.value
        } catch {
            // The reading thread stops at its next append (the transcription is closed); a read error arrives here
            // through `reader.value`.
            live.cancel()
            throw report(error)
        }
        if !liveOptions.live {
            let duration = Double(source.framesRead) / Double(source.rate)
            let result = Transcription(
                text: segments.map(\.text).joined(separator: " "), duration: duration,
                words: segments.flatMap(\.words), characters: segments.flatMap(\.characters))
            try Files.write(Data(formatChoice.render(result, source: path).utf8), to: "-")
        }
    }
}

/// One `--live --format json` line: a final segment.
enum LiveLine {
    struct Line: Encodable {
        let text: String
        let start: Double
        let end: Double
        let words: [TimedTranscript.Item]
    }

    static func json(_ s: TranscriptSegment) -> String {
        let line = Line(text: s.text, start: TimedTranscript.seconds(s.start), end: TimedTranscript.seconds(s.end),
                        words: TimedTranscript.items(s.words))
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return (try? encoder.encode(line)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
    }
}

/// Audio read as it arrives: headerless PCM from a pipe or file (read(2) as bytes come), or a file of any format
/// read in blocks (standard input in a format with a header is spooled first: libsndfile needs to seek).
final class AudioSource: @unchecked Sendable {
    let rate: Int
    let channels: Int
    private(set) var framesRead = 0
    private let raw: RawFormat?
    private let fd: Int32
    private var carry: [UInt8] = []
    private var file: AudioFile?
    private var standardInput: StandardInput?
    private let name: String

    init(path: String, raw: RawFormat?, rate: Int?, channels: Int) throws {
        name = path == "-" ? StandardInput.displayName : path
        self.raw = raw
        if let raw {
            _ = raw
            if path == "-" {
                if isatty(STDIN_FILENO) != 0 {
                    throw ASRError.unreadableAudio(file: name, reason: "it is a terminal; pipe audio into asr (e.g. `arecord -f S16_LE -r 16000 | asr transcribe - --raw s16le --rate 16000 --live`)")
                }
                fd = STDIN_FILENO
            } else {
                fd = open(path, O_RDONLY)
                if fd < 0 { throw ASRError.unreadableAudio(file: path, reason: Files.errorText(errno)) }
            }
            self.rate = rate!
            self.channels = channels
        } else {
            fd = -1
            if path == "-" { standardInput = try StandardInput() }
            let audio = try AudioFile(path: standardInput?.path ?? path, name: name)
            file = audio
            self.rate = audio.sampleRate
            self.channels = audio.channels
        }
    }

    deinit {
        if raw != nil && fd != STDIN_FILENO && fd >= 0 { close(fd) }
    }

    /// Reads on a thread of its own (reads block) and appends to `live`, then finishes it; the task's value is the
    /// read error, if any.
    func startReading(into live: LiveTranscription) -> Task<Void, Error> {
        let done = Task<Void, Error>.makeCompletion()
        let thread = Thread { [self] in
            var failure: Error?
            do {
                while let block = try next() {
                    let appended = DispatchSemaphore(value: 0)
                    let outcome = Outcome()
                    Task {
                        do { try await live.append(block) } catch { outcome.error = error }
                        appended.signal()
                    }
                    appended.wait()
                    if let error = outcome.error { throw error }
                }
            } catch {
                failure = error
            }
            live.finish()
            done.complete(failure)
        }
        thread.stackSize = 1 << 20
        thread.start()
        return done.task
    }

    /// The next interleaved samples; nil at the end.
    func next() throws -> [Float]? {
        guard let raw else {
            let block = try file!.readInterleavedBlock(maxFrames: 4096)
            if block.isEmpty {
                if framesRead == 0 { throw ASRError.invalidAudio(file: name, reason: "file holds no audio samples") }
                return nil
            }
            framesRead += block.count / channels
            return block
        }
        var buffer = [UInt8](repeating: 0, count: 1 << 15)
        while true {
            let n = buffer.withUnsafeMutableBytes { read(fd, $0.baseAddress, $0.count) }
            if n < 0 {
                if errno == EINTR { continue }
                throw ASRError.unreadableAudio(file: name, reason: "cannot read: \(Files.errorText(errno))")
            }
            if n == 0 {
                if !carry.isEmpty {
                    FileHandle.standardError.write(Data("warning: \(name): \(carry.count) trailing byte\(carry.count == 1 ? "" : "s") (not a whole \(raw.rawValue) sample) ignored\n".utf8))
                }
                return nil
            }
            let bytes = carry + buffer[0..<n]
            let whole = bytes.count / raw.bytesPerSample * raw.bytesPerSample
            carry = Array(bytes[whole...])
            guard whole > 0 else { continue }
            let samples = bytes.withUnsafeBytes { raw.decode(UnsafeRawBufferPointer(rebasing: $0[0..<whole])) }
            framesRead += samples.count / channels   // a frame split across reads is counted when complete enough
            return samples
        }
    }
}

extension DecoderOptions {
    /// Whether the command line asks for beam search (a language model, hotwords or beam settings).
    var usesBeamSearch: Bool {
        lm != nil || beam != nil || alpha != nil || beta != nil || unkPenalty != nil || beamPrune != nil
            || tokenMinLogp != nil || !hotword.isEmpty
    }
}

/// The error of one append, handed from a task to the reading thread.
final class Outcome: @unchecked Sendable {
    var error: Error?
}

extension Task where Success == Void, Failure == Error {
    /// A task that ends when `complete` is called (from any thread), throwing the error given.
    static func makeCompletion() -> (task: Task<Void, Error>, complete: @Sendable (Error?) -> Void) {
        let (stream, continuation) = AsyncStream<Error?>.makeStream(bufferingPolicy: .bufferingNewest(1))
        let task = Task {
            for await error in stream {
                if let error { throw error }
                return
            }
        }
        return (task, { continuation.yield($0); continuation.finish() })
    }
}
