import Foundation

/// Thrown by `transcribe(file:chunking:decoder:maxSeconds:)` when the audio runs past the limit.
package struct AudioTooLong: Error, Sendable {
    package let limitSeconds: Double
}

extension Transcriber {
    /// `transcribe(file:chunking:decoder:)` (the same steps, so the same transcript), stopping with `AudioTooLong` as
    /// soon as more than `maxSeconds` of audio has been read: a server refuses long uploads without decoding them
    /// whole (the header's length is checked first; the count guards files whose header says less than they hold).
    /// `checkCancellation` runs after each chunk: a server stops the work of a client that left by throwing there.
    package func transcribe(file: URL, name: String? = nil, chunking: ChunkingOptions, decoder: (any CTCDecoder)?, maxSeconds: Double,
                            checkCancellation: () throws -> Void = {}) throws -> Transcription {
        let (emissions, duration) = try streamedEmissions(file: file, name: name, chunking: chunking, maxSeconds: maxSeconds,
                                                          checkCancellation: checkCancellation)
        return decode(emissions, duration: duration, decoder: decoder)
    }

    /// The limited `transcribe(file:...)` with greedy decoding that hands each final segment to `onSegment` as soon as
    /// its chunk is decoded (a server's streamed response): the segments' texts joined by single spaces are the
    /// returned transcript's text, as in ``LiveTranscription``.
    package func transcribeStreaming(file: URL, name: String? = nil, chunking: ChunkingOptions, maxSeconds: Double, checkCancellation: () throws -> Void = {},
                                     onSegment: (TranscriptSegment) -> Void) throws -> Transcription {
        var decoder = LiveDecoder(vocabulary: vocabulary, frameDuration: frameDuration)
        let (emissions, duration) = try streamedEmissions(
            file: file, name: name, chunking: chunking, maxSeconds: maxSeconds, checkCancellation: checkCancellation,
            onLogits: { logits, received in if let segment = decoder.append(logits, duration: received) { onSegment(segment) } })
        if let segment = decoder.finish(duration: duration) { onSegment(segment) }
        return decode(emissions, duration: duration, decoder: nil)
    }
}
