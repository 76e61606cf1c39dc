import Foundation

/// CTC forced alignment: the single best path through a known token sequence, by Viterbi over its 2L+1
/// blank-interleaved states (even states are the blank, state 2k+1 is token k).
///
/// It computes what torchaudio's `functional.forced_align` computes (removed in torchaudio 2.9), frame for frame,
/// ties included, so results made with it can be reproduced:
/// - scores are float32 sums of the log probabilities given;
/// - each state takes the best of staying, advancing one state, and (a token state whose token differs from the
///   previous token) skipping the blank between them; a move other than staying is taken only when it scores strictly
///   higher than both others, so every tie stays (even a tie between advancing and skipping that beats staying:
///   torchaudio 2.8's CPU kernel does that, and its golden paths show it);
/// - at the last frame the path ends on the last token unless the final blank scores strictly higher;
/// - states that cannot be reached yet, or from which the end cannot be reached in the frames left, are pruned with
///   torchaudio's window (which counts the repeats of the whole sequence), so a path never uses them.
/// Checked against torchaudio 2.8's own output on random emissions (`fixtures/align/viterbi_golden.json`, made by
/// `tools/align/make_goldens.py`).
///
/// Memory: the back-pointers take one byte per frame and state (T × (2L+1)); a caller aligning long audio cuts it
/// into pieces first.
public enum CTCViterbi {
    /// The token (or blank) each frame is aligned to.
    ///
    /// - Parameters:
    ///   - logProbabilities: row-major frames × classes log probabilities (log-softmax of the logits).
    ///   - targets: the token sequence, each in 0..<classes and none the blank.
    /// - Throws: ``ASRError/transcriptTooLong(frames:tokens:repeats:frameDuration:)`` when the frames cannot hold the tokens
    ///   (each token needs a frame, and a repeated token a blank frame between its two).
    public static func align(logProbabilities: [Float], frames: Int, classes: Int, targets: [Int], blank: Int) throws -> [Int] {
        try states(logProbabilities: logProbabilities, frames: frames, classes: classes, targets: targets, blank: blank)
            .map { $0 < 0 ? blank : targets[$0] }
    }

    /// The index in `targets` each frame is aligned to, or -1 for a blank frame (what ``align(logProbabilities:frames:classes:targets:blank:)``
    /// returns before the indices become tokens: it tells a repeated token's two occurrences apart).
    public static func states(logProbabilities: [Float], frames: Int, classes: Int, targets: [Int], blank: Int) throws -> [Int] {
        precondition(logProbabilities.count == frames * classes, "logProbabilities must hold frames × classes values")
        precondition(blank >= 0 && blank < classes, "blank must be a class")
        precondition(targets.allSatisfy { $0 >= 0 && $0 < classes && $0 != blank }, "targets must be non-blank classes")
        let T = frames, L = targets.count, S = 2 * L + 1
        var repeats = 0
        for i in targets.indices.dropFirst() where targets[i] == targets[i - 1] { repeats += 1 }
        guard T >= L + repeats, T > 0 else { throw ASRError.transcriptTooLong(frames: T, tokens: L, repeats: repeats, frameDuration: nil) }
        if L == 0 { return [Int](repeating: -1, count: T) }

        func label(_ state: Int) -> Int { state % 2 == 0 ? blank : targets[state / 2] }
        var previous = [Float](repeating: -.infinity, count: S)
        var current = [Float](repeating: -.infinity, count: S)
        var back = [Int8](repeating: -1, count: T * S)   // 0 stay, 1 from the previous state, 2 skip a blank
        let needed = L + repeats
        var start = T - needed > 0 ? 0 : 1
        var end = S == 1 ? 1 : 2
        logProbabilities.withUnsafeBufferPointer { lp in
            for state in start..<end { previous[state] = lp[label(state)] }
            for t in 1..<max(T, 1) {
                // The window: states the end can still be reached from, and states the start can have reached.
                if T - t <= needed {
                    if start % 2 == 1 && targets[start / 2] != targets[start / 2 + 1] { start += 1 }
                    start += 1
                }
                if t <= needed {
                    if end % 2 == 0 && end < 2 * L && targets[end / 2 - 1] != targets[end / 2] { end += 1 }
                    end += 1
                }
                for state in 0..<S { current[state] = -.infinity }
                let row = lp.baseAddress! + t * classes
                var first = start
                if start == 0 {
                    current[0] = previous[0] + row[blank]
                    back[t * S] = 0
                    first = 1
                }
                if first < end {
                    for state in first..<end {
                        let stay = previous[state], advance = previous[state - 1]
                        var skip = -Float.infinity
                        if state % 2 == 1 && state != 1 && targets[state / 2] != targets[state / 2 - 1] { skip = previous[state - 2] }
                        let best: Float
                        if skip > advance && skip > stay {
                            best = skip; back[t * S + state] = 2
                        } else if advance > stay && advance > skip {
                            best = advance; back[t * S + state] = 1
                        } else {
                            best = stay; back[t * S + state] = 0
                        }
                        current[state] = best + row[label(state)]
                    }
                }
                swap(&previous, &current)
            }
        }
        var state = previous[S - 1] > previous[S - 2] ? S - 1 : S - 2
        var path = [Int](repeating: -1, count: T)
        for t in stride(from: T - 1, through: 0, by: -1) {
            path[t] = state % 2 == 0 ? -1 : state / 2
            if t > 0 { state -= Int(back[t * S + state]) }
        }
        return path
    }

    /// Row-wise log-softmax of frames × classes logits (float32, max-shifted, as `torch.log_softmax`).
    public static func logSoftmax(_ logits: [Float], frames: Int, classes: Int) -> [Float] {
        var out = [Float](repeating: 0, count: logits.count)
        for t in 0..<frames {
            let base = t * classes
            var maxValue = -Float.infinity
            for c in 0..<classes { maxValue = max(maxValue, logits[base + c]) }
            var sum = 0.0
            for c in 0..<classes { sum += Foundation.exp(Double(logits[base + c] - maxValue)) }
            let logSum = Float(Foundation.log(sum))
            for c in 0..<classes { out[base + c] = logits[base + c] - maxValue - logSum }
        }
        return out
    }
}
