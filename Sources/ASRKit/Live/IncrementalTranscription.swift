import Foundation

/// Live transcription's steps as calls the caller schedules: audio in as it arrives (any rate, interleaved channels,
/// through the ``SampleConditioner``), the model run one chunk at a time when the caller says, greedy segments out
/// as soon as they are final. ``LiveTranscription`` drives it from an async sequence; a server drives it so that
/// each chunk runs on a compute slot and the slot is not held while audio arrives.
///
/// The segments' texts joined by single spaces are the transcript the file path gives for the same audio (the same
/// chunk driver, ``ChunkedEmissions``, and the same greedy decoding).
///
/// Not thread-safe: one task uses it at a time (it may be handed from task to task).
package final class IncrementalTranscription: @unchecked Sendable {
    package let transcriber: Transcriber
    private var conditioner: SampleConditioner
    private var chunker: ChunkedEmissions
    private var decoder: LiveDecoder
    private var inputEnded = false

    /// Audio at `sampleRate` with `channels` interleaved channels; `sourceName` names it in errors.
    package init(transcriber: Transcriber, sampleRate: Int, channels: Int = 1, chunking: ChunkingOptions, sourceName: String) {
        self.transcriber = transcriber
        conditioner = SampleConditioner(sourceRate: sampleRate, channels: channels, targetRate: transcriber.sampleRate, sourceName: sourceName)
        chunker = ChunkedEmissions(transcriber: transcriber, chunking: chunking)
        decoder = LiveDecoder(vocabulary: transcriber.vocabulary, frameDuration: transcriber.frameDuration)
    }

    /// Seconds of audio received (at the model's rate).
    package var duration: Double { Double(chunker.samplesSeen) / Double(transcriber.sampleRate) }

    /// Samples received at the model's rate.
    package var samplesSeen: Int { chunker.samplesSeen }

    /// Whether a chunk can run now.
    package var hasReadyChunk: Bool { chunker.hasReadyChunk }

    /// Adds interleaved samples at the source's rate.
    ///
    /// - Throws: ``ASRError/invalidAudio(file:reason:)`` for a NaN or infinite sample.
    package func append(_ interleaved: [Float]) throws {
        precondition(!inputEnded, "audio appended after the end")
        chunker.append(try conditioner.process(interleaved))
    }

    /// Runs the next ready chunk (the model's work): the segment it completes, if any; nil too when none was ready.
    package func runChunk() -> TranscriptSegment? {
        guard let logits = chunker.nextChunk() else { return nil }
        return decoder.append(logits, duration: duration)
    }

    /// Ends the audio and runs what is left (every ready chunk first, then the last one): the last segments.
    /// `checkCancellation` runs before each chunk; what it throws stops the work.
    package func finish(checkCancellation: () throws -> Void = {}) rethrows -> [TranscriptSegment] {
        var segments: [TranscriptSegment] = []
        if !inputEnded {
            inputEnded = true
            chunker.append(conditioner.finish())
        }
        while chunker.hasReadyChunk {
            try checkCancellation()
            if let segment = runChunk() { segments.append(segment) }
        }
        try checkCancellation()
        if let segment = decoder.append(chunker.finish(), duration: duration) { segments.append(segment) }
        if let segment = decoder.finish(duration: duration) { segments.append(segment) }
        return segments
    }

    /// A partial hypothesis of the audio not yet final (a pass of the model over it, nothing kept); nil when none.
    package func partial() -> TranscriptSegment? {
        guard let logits = chunker.tentative() else { return nil }
        return decoder.partial(tentative: logits, duration: duration)
    }
}
