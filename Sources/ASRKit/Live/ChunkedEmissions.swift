import Foundation

/// The chunk loop behind every transcription: samples (mono, at the model's rate) go in as they come, and the
/// joined logits of each chunk region come out as soon as no later sample can change them.
///
/// A chunk [offset, offset + chunk) runs once one sample past it has arrived (so it is known not to be the last);
/// its logits from `stride` (none at the very start) to `chunk − stride` are kept, and the next chunk starts `step =
/// chunk − 2·stride` later. At the end, the last chunk runs over what is left and keeps its logits to the end. The
/// file path (`Transcriber.emissions(chunking:next:)`) and live transcription (``LiveTranscription``) both use this,
/// so their logits are the same for the same audio, however it is cut into buffers.
struct ChunkedEmissions {
    let transcriber: Transcriber
    /// Samples per frame, the stride (context on each side), the chunk and the step, all whole frames.
    let hop: Int, stride: Int, chunk: Int, step: Int
    private var pending: [Float] = []     // samples [pendingStart, pendingStart + pending.count)
    private var pendingStart = 0
    private var offset = 0                // start of the next chunk, a multiple of hop
    private(set) var isFinished = false

    init(transcriber: Transcriber, chunking: ChunkingOptions) {
        self.transcriber = transcriber
        let hop = transcriber.configuration.samplesPerFrame
        let rate = Double(transcriber.sampleRate)
        stride = max(1, Int((chunking.strideSeconds * rate / Double(hop)).rounded())) * hop
        chunk = max(Int((chunking.chunkSeconds * rate / Double(hop)).rounded()) * hop, 2 * stride + hop)
        step = chunk - 2 * stride
        self.hop = hop
    }

    /// Samples received so far.
    private(set) var samplesSeen = 0

    /// Where the audio not yet final starts (samples): frames before `finalSamples / hop` are final.
    var finalSamples: Int { offset == 0 ? 0 : offset + stride }

    /// Adds samples (mono, at the model's rate).
    mutating func append(_ samples: [Float]) {
        precondition(!isFinished, "samples appended after the end")
        pending += samples
        samplesSeen += samples.count
    }

    /// Whether a chunk can run now (it is complete and a sample past it shows that it is not the last).
    var hasReadyChunk: Bool { !isFinished && samplesSeen > offset + chunk }

    /// Runs the next complete chunk, if any: its final logits (frames × vocabulary size), or nil when more audio is
    /// needed first.
    mutating func nextChunk() -> [Float]? {
        guard hasReadyChunk else { return nil }
        return run(end: offset + chunk, isLast: false)
    }

    /// Runs the last chunk over the rest of the audio (call after every ready chunk has run): its logits to the end.
    mutating func finish() -> [Float] {
        precondition(!hasReadyChunk && !isFinished)
        return run(end: samplesSeen, isLast: true)
    }

    /// Logits of the audio past the final region as if it ended now (for a partial hypothesis); nil when there is
    /// none. Does not change the state.
    func tentative() -> [Float]? {
        guard !isFinished, samplesSeen > offset else { return nil }
        let e = transcriber.emissions(samples: Array(pending[(offset - pendingStart)...]))
        let first = offset == 0 ? 0 : stride / hop
        guard e.frames > first else { return nil }
        return Array(e.logits[(first * e.vocabularySize)...])
    }

    private mutating func run(end: Int, isLast: Bool) -> [Float] {
        let piece = Array(pending[(offset - pendingStart)..<(end - pendingStart)])
        let e = transcriber.emissions(samples: piece)
        let first = offset == 0 ? 0 : stride / hop
        let last = isLast ? e.frames : (chunk - stride) / hop
        let logits = last > first ? Array(e.logits[(first * e.vocabularySize)..<(last * e.vocabularySize)]) : []
        if isLast {
            isFinished = true
            pending = []
        } else {
            offset += step
            pending.removeFirst(offset - pendingStart)
            pendingStart = offset
        }
        return logits
    }
}
