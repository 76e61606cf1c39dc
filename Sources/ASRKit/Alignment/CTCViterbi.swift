import CKernels
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

        // Two score rows, swapped each frame; outside a frame's window a row holds −∞ (see Lattice.step).
        let rows = UnsafeMutablePointer<Float>.allocate(capacity: 2 * S)
        defer { rows.deallocate() }
        var previous = rows, current = rows + S
        func reset(_ row: UnsafeMutablePointer<Float>) { row.update(repeating: -.infinity, count: S) }

        // Forward: scores of frames 0, K, 2K, … (and their windows) kept; the last frame's scores too.
        var checkpoints: [[Float]] = []
        var windows: [(start: Int, end: Int)] = []
        var window = lattice.firstWindow
        reset(previous)
        reset(current)
        logProbabilities.withUnsafeBufferPointer { lp in
            for state in window.start..<window.end { previous[state] = lp[lattice.label(state)] }
            checkpoints.append(Array(UnsafeBufferPointer(start: previous, count: S)))
            windows.append(window)
            for t in 1..<T {
                lattice.step(t, &window, previous, current, lp.baseAddress! + t * classes, back: nil)
                swap(&previous, &current)
                if t % K == 0 {
                    checkpoints.append(Array(UnsafeBufferPointer(start: previous, count: S)))
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
                checkpoints[c].withUnsafeBufferPointer { previous.update(from: $0.baseAddress!, count: S) }
                reset(current)
                window = windows[c]
                back.withUnsafeMutableBufferPointer { b in
                    for t in (first + 1)...last {
                        lattice.step(t, &window, previous, current, lp.baseAddress! + t * classes,
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
    final class Lattice {
        let targets: [Int]
        let blank: Int
        let frames: Int
        let repeats: Int
        let states: Int
        /// Each state's class (the blank for even states), and whether it may be entered by skipping the blank
        /// before it (a token state whose token differs from the previous token): read in the inner loop.
        private let labels: UnsafeMutablePointer<Int32>
        private let skips: UnsafeMutablePointer<UInt8>
        var needed: Int { targets.count + repeats }

        init(targets: [Int], blank: Int, frames: Int, repeats: Int) {
            self.targets = targets
            self.blank = blank
            self.frames = frames
            self.repeats = repeats
            states = 2 * targets.count + 1
            labels = .allocate(capacity: states)
            skips = .allocate(capacity: states)
            for state in 0..<states {
                labels[state] = Int32(state % 2 == 0 ? blank : targets[state / 2])
                skips[state] = state % 2 == 1 && state != 1 && targets[state / 2] != targets[state / 2 - 1] ? 1 : 0
            }
        }

        deinit {
            labels.deallocate()
            skips.deallocate()
        }

        func label(_ state: Int) -> Int { Int(labels[state]) }

        /// Frame 0's window: a path may start on the blank only if there is a frame to spare.
        var firstWindow: (start: Int, end: Int) { (frames - needed > 0 ? 0 : 1, states == 1 ? 1 : 2) }

        /// Frame `t`'s scores into `current` from frame t−1's in `previous`, over the window moved on to frame t
        /// (states the start can have reached, and from which the end can still be reached, by torchaudio's
        /// counting); back-pointers of the window's states into `back` (0 stay, 1 from the previous state, 2 skip a
        /// blank) when given.
        ///
        /// Both rows hold −∞ outside their frame's window, which is what the step reads there: a window's end only
        /// grows (states past it were never written), and its start grows by at most 2 a frame, so clearing the 4
        /// states below the new start removes what this row held two frames ago.
        func step(_ t: Int, _ window: inout (start: Int, end: Int), _ previous: UnsafePointer<Float>,
                  _ current: UnsafeMutablePointer<Float>, _ row: UnsafePointer<Float>, back: UnsafeMutablePointer<Int8>?) {
            let L = targets.count
            if frames - t <= needed {
                if window.start % 2 == 1 && targets[window.start / 2] != targets[window.start / 2 + 1] { window.start += 1 }
                window.start += 1
            }
            if t <= needed {
                if window.end % 2 == 0 && window.end < 2 * L && targets[window.end / 2 - 1] != targets[window.end / 2] { window.end += 1 }
                window.end += 1
            }
            for state in max(0, window.start - 4)..<window.start { current[state] = -.infinity }
            var first = window.start
            if window.start == 0 {
                current[0] = previous[0] + row[blank]
                back?[0] = 0
                first = 1
            }
            guard first < window.end else { return }
            if first == 1 {
                // State 1 (the first token) is entered from the blank before it or stays; it never skips.
                let stay = previous[1], advance = previous[0]
                let move: Int8 = advance > stay ? 1 : 0
                back?[1] = move
                current[1] = (move == 1 ? advance : stay) + row[Int(labels[1])]
                first = 2
            }
            guard first < window.end else { return }
            // The rest in C, vectorised: the same comparisons and ties as the state-1 case above (asr_viterbi_step).
            asr_viterbi_step(previous, current, skips, labels, row, back, first, window.end)
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
