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
/// Memory is bounded without changing the result: scores are kept at checkpoints and back-pointers recomputed one
/// segment at a time (see ``states(logProbabilities:frames:classes:targets:blank:segment:)``); ``memory(frames:tokens:)``
/// says how much a pass takes.
public enum CTCViterbi {
    /// The token (or blank) each frame is aligned to.
    ///
    /// - Parameters:
    ///   - logProbabilities: row-major frames × classes log probabilities (log-softmax of the logits).
    ///   - frames: the number of frames (rows).
    ///   - classes: the number of classes (columns).
    ///   - targets: the token sequence, each in 0..<classes and none the blank.
    ///   - blank: the blank class.
    /// - Throws: ``ASRError/transcriptTooLong(frames:tokens:repeats:frameDuration:)`` when the frames cannot hold the tokens
    ///   (each token needs a frame, and a repeated token a blank frame between its two).
    public static func align(logProbabilities: [Float], frames: Int, classes: Int, targets: [Int], blank: Int) throws -> [Int] {
        try states(logProbabilities: logProbabilities, frames: frames, classes: classes, targets: targets, blank: blank)
            .map { $0 < 0 ? blank : targets[$0] }
    }

    /// The index in `targets` each frame is aligned to, or -1 for a blank frame (what ``align(logProbabilities:frames:classes:targets:blank:)``
    /// returns before the indices become tokens: it tells a repeated token's two occurrences apart).
    ///
    /// Memory is bounded by checkpointing: the forward pass keeps the scores of every `segment`-th frame only (default
    /// about √T), and the back-pointers are recomputed one segment at a time from its checkpoint while tracing back.
    /// The recomputation repeats the same float operations in the same order, so the path is exactly that of a full
    /// back-pointer table (`segment: frames` is that table; the tests compare the two). Memory: (T / segment + 2) × S
    /// floats plus segment × S bytes instead of T × S bytes, for about twice the arithmetic.
    ///
    /// - Parameters:
    ///   - logProbabilities: row-major frames × classes log probabilities.
    ///   - frames: the number of frames (rows).
    ///   - classes: the number of classes (columns).
    ///   - targets: the token sequence, each in 0..<classes and none the blank.
    ///   - blank: the blank class.
    ///   - segment: frames per recomputed segment (nil: about √frames).
    public static func states(
        logProbabilities: [Float], frames: Int, classes: Int, targets: [Int], blank: Int, segment: Int? = nil
    ) throws -> [Int] {
        precondition(logProbabilities.count == frames * classes, "logProbabilities must hold frames × classes values")
        precondition(blank >= 0 && blank < classes, "blank must be a class")
        precondition(targets.allSatisfy { $0 >= 0 && $0 < classes && $0 != blank }, "targets must be non-blank classes")
        let T = frames, L = targets.count, S = 2 * L + 1
        var repeats = 0
        for i in targets.indices.dropFirst() where targets[i] == targets[i - 1] { repeats += 1 }
        guard T >= L + repeats, T > 0 else { throw ASRError.transcriptTooLong(frames: T, tokens: L, repeats: repeats, frameDuration: nil) }
        if L == 0 { return [Int](repeating: -1, count: T) }
        let K = max(1, min(T, segment ?? max(64, Int(Double(T).squareRoot()))))
        let lattice = Lattice(targets: targets, blank: blank, frames: T, repeats: repeats)

        // Forward: scores of frames 0, K, 2K, … (and their windows) kept; the last frame's scores too.
        var checkpoints: [[Float]] = []
        var windows: [(start: Int, end: Int)] = []
        var previous = [Float](repeating: -.infinity, count: S)
        var current = [Float](repeating: -.infinity, count: S)
        var window = lattice.firstWindow
        logProbabilities.withUnsafeBufferPointer { lp in
            for state in window.start..<window.end { previous[state] = lp[lattice.label(state)] }
            checkpoints.append(previous)
            windows.append(window)
            for t in 1..<T {
                lattice.step(t, &window, previous, &current, lp.baseAddress! + t * classes, back: nil)
                swap(&previous, &current)
                if t % K == 0 {
                    checkpoints.append(previous)
                    windows.append(window)
                }
            }
        }
        var state = previous[S - 1] > previous[S - 2] ? S - 1 : S - 2

        // Back: per segment [c·K, min((c+1)·K, T−1)], back-pointers recomputed from checkpoint c, then traced.
        var path = [Int](repeating: -1, count: T)
        path[T - 1] = state % 2 == 0 ? -1 : state / 2
        var back = [Int8](repeating: -1, count: K * S)
        logProbabilities.withUnsafeBufferPointer { lp in
            var c = (T - 1) / K
            while c >= 0 {
                let first = c * K, last = min(first + K, T - 1)
                guard last > first else { c -= 1; continue }
                previous = checkpoints[c]
                window = windows[c]
                back.withUnsafeMutableBufferPointer { b in
                    for t in (first + 1)...last {
                        lattice.step(t, &window, previous, &current, lp.baseAddress! + t * classes,
                                     back: b.baseAddress! + (t - first - 1) * S)
                        swap(&previous, &current)
                    }
                }
                for t in stride(from: last, to: first, by: -1) {
                    state -= Int(back[(t - first - 1) * S + state])
                    path[t - 1] = state % 2 == 0 ? -1 : state / 2
                }
                c -= 1
            }
        }
        return path
    }

    /// The 2L+1 states of a target sequence and one frame's Viterbi step over them.
    struct Lattice {
        let targets: [Int]
        let blank: Int
        let frames: Int
        let repeats: Int
        var states: Int { 2 * targets.count + 1 }
        var needed: Int { targets.count + repeats }

        func label(_ state: Int) -> Int { state % 2 == 0 ? blank : targets[state / 2] }

        /// Frame 0's window: a path may start on the blank only if there is a frame to spare.
        var firstWindow: (start: Int, end: Int) { (frames - needed > 0 ? 0 : 1, states == 1 ? 1 : 2) }

        /// Frame `t`'s scores into `current` from frame t−1's in `previous`, over the window moved on to frame t
        /// (states the start can have reached, and from which the end can still be reached, by torchaudio's
        /// counting); back-pointers of the window's states into `back` (0 stay, 1 from the previous state, 2 skip a
        /// blank) when given.
        func step(_ t: Int, _ window: inout (start: Int, end: Int), _ previous: [Float], _ current: inout [Float],
                  _ row: UnsafePointer<Float>, back: UnsafeMutablePointer<Int8>?) {
            let L = targets.count, S = states
            if frames - t <= needed {
                if window.start % 2 == 1 && targets[window.start / 2] != targets[window.start / 2 + 1] { window.start += 1 }
                window.start += 1
            }
            if t <= needed {
                if window.end % 2 == 0 && window.end < 2 * L && targets[window.end / 2 - 1] != targets[window.end / 2] { window.end += 1 }
                window.end += 1
            }
            for state in 0..<S { current[state] = -.infinity }
            var first = window.start
            if window.start == 0 {
                current[0] = previous[0] + row[blank]
                back?[0] = 0
                first = 1
            }
            guard first < window.end else { return }
            for state in first..<window.end {
                let stay = previous[state], advance = previous[state - 1]
                var skip = -Float.infinity
                if state % 2 == 1 && state != 1 && targets[state / 2] != targets[state / 2 - 1] { skip = previous[state - 2] }
                let best: Float
                let move: Int8
                if skip > advance && skip > stay {
                    best = skip; move = 2
                } else if advance > stay && advance > skip {
                    best = advance; move = 1
                } else {
                    best = stay; move = 0
                }
                back?[state] = move
                current[state] = best + row[label(state)]
            }
        }
    }

    /// Bytes one alignment of `tokens` tokens over `frames` frames holds at its peak (checkpoint scores, two score
    /// rows and one segment's back-pointers, with the default segment).
    public static func memory(frames: Int, tokens: Int) -> Int {
        let S = 2 * tokens + 1, K = max(1, min(frames, max(64, Int(Double(frames).squareRoot()))))
        return (frames / K + 3) * S * MemoryLayout<Float>.size + K * S
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
