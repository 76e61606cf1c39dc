import Foundation

/// Thrown by `transcribe(file:chunking:decoder:maxSeconds:)` when the audio runs past the limit.
package struct AudioTooLong: Error, Sendable {
    package let limitSeconds: Double
}

extension Transcriber {
    /// `transcribe(file:chunking:decoder:)` (the same steps, so the same transcript), stopping with `AudioTooLong` as
    /// soon as more than `maxSeconds` of audio has been read: a server refuses long uploads without decoding them
    /// whole (the header's length is checked first; the count guards files whose header says less than they hold).
    package func transcribe(file: URL, chunking: ChunkingOptions, decoder: (any CTCDecoder)?, maxSeconds: Double) throws -> Transcription {
        let audio = try AudioFile(path: file.path)
        guard audio.duration <= maxSeconds else { throw AudioTooLong(limitSeconds: maxSeconds) }
        let stream = AudioStream(file: audio, sampleRate: sampleRate)
        let limit = maxSeconds * Double(sampleRate)
        var seen = 0
        let (emissions, samples) = try emissions(chunking: chunking) {
            let block = try stream.next()
            seen += block?.count ?? 0
            if Double(seen) > limit { throw AudioTooLong(limitSeconds: maxSeconds) }
            return block
        }
        return decode(emissions, duration: Double(samples) / Double(sampleRate), decoder: decoder)
    }
}

extension Transcriber {
    /// `align(file:transcript:chunking:)` with the same limit as ``transcribe(file:chunking:decoder:maxSeconds:)``.
    package func align(file: URL, transcript: String, chunking: ChunkingOptions, maxSeconds: Double) throws -> ForcedAlignment {
        let audio = try AudioFile(path: file.path)
        guard audio.duration <= maxSeconds else { throw AudioTooLong(limitSeconds: maxSeconds) }
        let stream = AudioStream(file: audio, sampleRate: sampleRate)
        let limit = maxSeconds * Double(sampleRate)
        var seen = 0
        let (emissions, samples) = try emissions(chunking: chunking) {
            let block = try stream.next()
            seen += block?.count ?? 0
            if Double(seen) > limit { throw AudioTooLong(limitSeconds: maxSeconds) }
            return block
        }
        return try ForcedAligner.align(transcript: transcript, emissions: emissions, vocabulary: vocabulary,
                                       duration: Double(samples) / Double(sampleRate))
    }
}
