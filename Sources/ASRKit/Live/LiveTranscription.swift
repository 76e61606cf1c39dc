import Foundation

/// What a ``LiveTranscription`` yields.
public enum LiveResult: Sendable, Equatable {
    /// Text that no later audio can change. The final segments' texts, joined by single spaces, are the transcript
    /// that ``Transcriber/transcribe(file:chunking:decoder:)`` gives for the same audio and chunking.
    case final(TranscriptSegment)
    /// The best guess for the audio not yet final (only when partial results were asked for); replaced by the next
    /// partial or final result.
    case partial(TranscriptSegment)
}

/// Transcribes audio that arrives over time (a microphone, a network stream, a pipe), with the same chunking and the
/// same transcript as the file path.
///
/// Push sample buffers with ``append(_:)`` (at any rate, mono or interleaved channels, any buffer size), call
/// ``finish()`` at the end of the audio, and iterate the results — from another task — as an `AsyncSequence`:
///
/// ```swift
/// let live = try LiveTranscription(transcriber: transcriber, sampleRate: 48_000, channels: 2)
/// Task {
///     for await buffer in microphone { try await live.append(buffer) }
///     live.finish()
/// }
/// for try await result in live {
///     if case .final(let segment) = result { print(segment.text) }
/// }
/// ```
///
/// The work (resampling, the model, decoding) runs in the iterating task, between the results it asks for.
///
/// **Latency.** A chunk runs once one sample past it has arrived; it makes the frames from `strideSeconds` after
/// its start to `strideSeconds` before its end final, so a frame is final between `strideSeconds` and
/// `chunkSeconds − strideSeconds` seconds of audio after it was spoken (5–25 s with ``ChunkingOptions/default``;
/// 1–5 s with 6 s chunks and 1 s strides), plus the model's time for one chunk. A final segment ends at the last
/// word boundary of the final frames, so its last word waits for the next word to start.
///
/// **Back-pressure.** At most `bufferSeconds` of audio wait between ``append(_:)`` and the model: `append` suspends
/// while the buffer is full, so a consumer that lags slows the producer down instead of growing memory. Beyond
/// that, memory holds one chunk of audio and, per frame not yet in a final segment, its best token and probability.
///
/// **Cancellation.** Cancelling the iterating task (or abandoning the iteration) stops the work between chunks: the
/// iterator throws `CancellationError`, and every waiting and later ``append(_:)`` throws it too.
///
/// Decoding is greedy (a beam search with a language model can revise earlier text, so it has no final segments
/// before the end). One task iterates; any number may append, in turn.
public final class LiveTranscription: AsyncSequence, Sendable {
    /// Each element is a result for the audio so far.
    public typealias Element = LiveResult

    /// The model the audio goes through.
    public let transcriber: Transcriber
    /// Sample rate of the appended audio (frames per second).
    public let sampleRate: Int
    /// Channels of the appended audio (interleaved when more than one; averaged to mono).
    public let channels: Int
    /// How the audio is cut into chunks (as for files).
    public let chunking: ChunkingOptions
    /// Whether partial hypotheses are yielded (each costs a pass of the model over the audio not yet final).
    public let partialResults: Bool
    private let queue: SampleQueue

    /// Prepares a live transcription of audio at `sampleRate` with `channels` interleaved channels.
    ///
    /// - Parameters:
    ///   - transcriber: the model.
    ///   - sampleRate: frames per second of the appended audio.
    ///   - channels: interleaved channels per frame (averaged to mono).
    ///   - chunking: how the audio is cut into chunks (as for files).
    ///   - partialResults: also yield a partial hypothesis, at most once per `partialInterval` seconds of audio.
    ///   - partialInterval: seconds of audio between partial hypotheses.
    ///   - bufferSeconds: how much audio may wait for the model before ``append(_:)`` suspends.
    /// - Throws: ``ASRError/invalidAudio(file:reason:)`` for a rate or channel count that cannot be right.
    public init(
        transcriber: Transcriber, sampleRate: Int, channels: Int = 1, chunking: ChunkingOptions = .default,
        partialResults: Bool = false, partialInterval: Double = 1, bufferSeconds: Double = 10
    ) throws {
        guard sampleRate > 0, sampleRate <= 1_536_000 else {
            throw ASRError.invalidAudio(file: "live audio", reason: "sample rate \(sampleRate) is not in 1...1536000")
        }
        guard channels > 0, channels <= AudioFile.maxChannels else {
            throw ASRError.invalidAudio(file: "live audio", reason: "\(channels) channels is not in 1...\(AudioFile.maxChannels)")
        }
        guard bufferSeconds.isFinite, bufferSeconds > 0, partialInterval.isFinite, partialInterval > 0 else {
            throw ASRError.invalidAudio(file: "live audio", reason: "the buffer and the partial interval must be positive numbers of seconds")
        }
        self.transcriber = transcriber
        self.sampleRate = sampleRate
        self.channels = channels
        self.chunking = chunking
        self.partialResults = partialResults
        self.partialInterval = partialInterval
        let capacity = Swift.min(Double(Int.max / 4), (bufferSeconds * Double(sampleRate)).rounded(.up) * Double(channels))
        queue = SampleQueue(capacity: Int(capacity))
    }

    let partialInterval: Double

    /// Adds audio: `sampleRate` frames per second, `channels` interleaved samples per frame (a buffer may end in the
    /// middle of a frame; the next one continues it). Suspends while the buffer is full.
    ///
    /// - Throws: `CancellationError` when the calling task is cancelled while waiting, or the iteration was
    ///   cancelled or abandoned (the audio is then not used).
    /// - Precondition: ``finish()`` has not been called.
    public func append(_ samples: [Float]) async throws {
        try await queue.push(samples)
    }

    /// Ends the audio: the iteration yields the last segment, then ends.
    public func finish() {
        queue.finish()
    }

    /// Stops the transcription: the iteration and every waiting or later ``append(_:)`` throw `CancellationError`.
    public func cancel() {
        queue.close(CancellationError())
    }

    /// The most samples that ever waited in the buffer (never much more than `bufferSeconds` of audio).
    public var peakBufferedSamples: Int { queue.peak }

    /// Chunks the model has run so far.
    var chunksRun: Int { queue.chunksRun }

    /// The iterator; the one iterating task runs the model in `next()`.
    public struct AsyncIterator: AsyncIteratorProtocol {
        let engine: LiveEngine

        /// The next result, or nil once the audio has ended and everything is transcribed.
        public mutating func next() async throws -> LiveResult? {
            try await engine.next()
        }
    }

    /// The iterator for the one task that iterates.
    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(engine: LiveEngine(self, queue: queue))
    }
}

/// The consuming side of a live transcription: runs the ``IncrementalTranscription`` steps on demand.
final class LiveEngine: @unchecked Sendable {
    private let queue: SampleQueue
    private let partialResults: Bool
    private let partialSamples: Int
    private let steps: IncrementalTranscription
    private var samplesAtLastPartial = 0
    private var results: [LiveResult] = []
    private var ended = false
    private var inputEnded = false
    private var failure: Error?

    init(_ live: LiveTranscription, queue: SampleQueue) {
        self.queue = queue
        partialResults = live.partialResults
        partialSamples = max(1, Int(live.partialInterval * Double(live.transcriber.sampleRate)))
        steps = IncrementalTranscription(
            transcriber: live.transcriber, sampleRate: live.sampleRate, channels: live.channels, chunking: live.chunking,
            sourceName: "live audio")
    }

    deinit {
        // An abandoned iteration: producers must not wait forever.
        if !ended { queue.close(CancellationError()) }
    }

    func next() async throws -> LiveResult? {
        if let failure { throw failure }
        do {
            while results.isEmpty {
                if ended { return nil }
                try Task.checkCancellation()
                if steps.hasReadyChunk {
                    // One chunk per turn: cancellation is seen between chunks.
                    let segment = steps.runChunk()
                    queue.countChunk()
                    if let segment { results.append(.final(segment)) }
                    continue
                }
                if inputEnded {
                    results += try steps.finish { try Task.checkCancellation() }.map(LiveResult.final)
                    queue.countChunk()
                    ended = true
                    continue
                }
                guard let buffer = try await queue.next() else {
                    inputEnded = true
                    continue
                }
                try steps.append(buffer)
                if partialResults, !steps.hasReadyChunk, steps.samplesSeen - samplesAtLastPartial >= partialSamples {
                    samplesAtLastPartial = steps.samplesSeen
                    if let segment = steps.partial() { results.append(.partial(segment)) }
                }
            }
            return results.removeFirst()
        } catch {
            failure = error
            ended = true
            queue.close(error is CancellationError ? error : CancellationError())
            throw error
        }
    }
}
