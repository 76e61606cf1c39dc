import Foundation

/// Where ``ForcedAligner`` puts the end of each word.
///
/// A CTC model fires a word's last letter early: the letter's frames are a short spike and the rest of the word's
/// sound is labelled blank. The exact Viterbi path therefore ends words before their sound does (measured with the
/// built-in model on synthetic speech with known word times: ends ~90 ms early on average, starts ~30 ms).
public enum WordEndPlacement: String, Sendable, CaseIterable, Codable {
    /// The end of the word's last frame on the Viterbi path (torchaudio's convention). The default.
    case viterbi
    /// The Viterbi end, moved later over the frames that still carry the word's sound: while the audio's level stays
    /// within ``ForcedAligner/acousticEndDrop`` dB of the word's own loudest frame (and above the recording's
    /// quiet level), up to the next word's first frame and at most ``ForcedAligner/acousticEndLimit`` seconds. Starts,
    /// the path and the confidences are unchanged. Measured in the README (`benchmarks/align.py --word-ends`).
    case acoustic
}

/// The level of the audio, frame by frame (one per model frame), gathered as the samples stream through the model:
/// memory is one number per frame (an hour: 180,000 numbers).
struct AudioLevels {
    let samplesPerFrame: Int
    private var meanSquares: [Float] = []
    private var sum: Double = 0
    private var count = 0

    init(samplesPerFrame: Int) { self.samplesPerFrame = max(1, samplesPerFrame) }

    /// Adds samples (mono, at the model's rate) in the order they are read.
    mutating func add(_ block: [Float]) {
        for sample in block {
            sum += Double(sample) * Double(sample)
            count += 1
            if count == samplesPerFrame {
                meanSquares.append(Float(sum / Double(count)))
                sum = 0
                count = 0
            }
        }
    }

    /// Level of each frame in dB relative to full scale (a final partial frame included).
    func decibels() -> [Float] {
        var all = meanSquares
        if count > 0 { all.append(Float(sum / Double(count))) }
        return all.map { 10 * Foundation.log10(max($0, 1e-12)) }
    }
}

extension ForcedAligner {
    /// With ``WordEndPlacement/acoustic``, a word's end moves over frames at most this many dB below its loudest
    /// frame. Chosen on one voice (festival's kal; `benchmarks/align.py --word-ends`) and checked on voices it was not
    /// chosen on (README): 20 dB left ends 35 ms off, 30 dB 28 ms; beyond 40 dB the quiet level decides alone (27 ms).
    /// 30 keeps a bound relative to the word itself, for rooms whose reverberation or noise the synthetic set lacks.
    public static let acousticEndDrop: Float = 30
    /// With ``WordEndPlacement/acoustic``, frames quieter than the recording's quiet level (its 10th-percentile frame)
    /// plus this many dB never count as the word's sound, whatever the word's own level.
    public static let acousticEndFloorMargin: Float = 6
    /// With ``WordEndPlacement/acoustic``, the most a word's end moves (seconds; 0.3 measured best of 0.2-0.6).
    public static let acousticEndLimit = 0.3

    /// Moves the last frame of each word's last piece later while the audio still sounds like the word (see
    /// ``WordEndPlacement/acoustic``); `first`/`last` are each piece's frames on the path (-1: none).
    static func extendWordEnds(pieces: [Piece], first: [Int], last: inout [Int], levels: [Float], frameDuration: Double) {
        guard !levels.isEmpty else { return }
        let sorted = levels.sorted()
        let quiet = sorted[sorted.count / 10] + acousticEndFloorMargin
        let maxFrames = Int((acousticEndLimit / frameDuration).rounded())
        // Each word's first and last piece with frames, in order.
        var words: [(first: Int, last: Int)] = []
        var current = -1
        for (k, piece) in pieces.enumerated() where piece.word >= 0 && first[k] >= 0 {
            if piece.word == current {
                words[words.count - 1].last = k
            } else {
                words.append((k, k))
                current = piece.word
            }
        }
        for (n, word) in words.enumerated() {
            let start = first[word.first], end = last[word.last] + 1
            guard start < levels.count else { continue }
            let loudest = levels[start..<min(end, levels.count)].max() ?? -.infinity
            let threshold = max(loudest - acousticEndDrop, quiet)
            let next = n + 1 < words.count ? first[words[n + 1].first] : levels.count
            let stop = min(next, end + maxFrames, levels.count)
            var frame = end
            while frame < stop && levels[frame] >= threshold { frame += 1 }
            last[word.last] = frame - 1
        }
    }
}
