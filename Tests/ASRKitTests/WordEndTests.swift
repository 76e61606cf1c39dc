import Foundation
import Testing
@testable import ASRKit

/// `--word-ends acoustic`: a word's end moves over the frames that still sound like it, never past the next word's
/// start, the limit, or into the recording's quiet; starts, the path and confidences stay the Viterbi's.
@Suite struct WordEndTests {
    static let builtin = Fixtures.root.deletingLastPathComponent().appendingPathComponent("Sources/CBuiltinModel/model")

    /// Two one-piece words with a delimiter between: word 0 on frame 2, the delimiter on 5, word 1 on 12.
    static let pieces = [ForcedAligner.Piece(token: 1, word: 0, text: "A"),
                         ForcedAligner.Piece(token: 3, word: -1, text: " "),
                         ForcedAligner.Piece(token: 2, word: 1, text: "B")]

    /// Levels: quiet (-70 dB) everywhere but `loud` frames (-10 dB) and `tail` frames (-25 dB).
    static func levels(_ count: Int, loud: [Int], tail: [Int] = []) -> [Float] {
        var levels = [Float](repeating: -70, count: count)
        for f in loud { levels[f] = -10 }
        for f in tail { levels[f] = -25 }
        return levels
    }

    @Test func anEndMovesOverTheWordsSoundAndStopsAtSilence() {
        var last = [2, 5, 12]
        ForcedAligner.extendWordEnds(pieces: Self.pieces, first: [2, 5, 12], last: &last,
                                     levels: Self.levels(40, loud: [2, 3, 12], tail: [4, 5, 6]), frameDuration: 0.02)
        // Frames 3-6 are within 30 dB of the word's loudest (frame 2); frame 7 is quiet.
        #expect(last == [6, 5, 12])
    }

    @Test func anEndNeverPassesTheNextWordOrTheLimit() {
        var last = [2, 5, 12]
        ForcedAligner.extendWordEnds(pieces: Self.pieces, first: [2, 5, 12], last: &last,
                                     levels: Self.levels(100, loud: Array(2..<60)), frameDuration: 0.02)
        #expect(last[0] == 11)   // up to the next word's first frame
        // The last word: at most acousticEndLimit (0.3 s = 15 frames) past its end.
        #expect(last[2] == 12 + 15)
    }

    @Test func aQuietWordDoesNotTakeTheRoomsNoise() {
        // The word's loudest frame is only 8 dB above the room: the floor (quiet level + 6 dB) keeps its end.
        var levels = [Float](repeating: -60, count: 40)
        levels[2] = -52
        var last = [2, 5, 12]
        ForcedAligner.extendWordEnds(pieces: Self.pieces, first: [2, 5, 12], last: &last, levels: levels, frameDuration: 0.02)
        #expect(last[0] == 2)
    }

    /// On real audio: every word's end is at or after the Viterbi end and before the next word's start, starts and
    /// confidences are unchanged, and the word delimiter's character starts where the moved end is.
    @Test func acousticEndsKeepTheViterbiStartsAndConfidences() throws {
        let transcriber = try Transcriber(modelDirectory: Self.builtin)
        let samples = try transcriber.loadAudio(file: Fixtures.root.appendingPathComponent("audio/builtin/01.wav"))
        let transcript = "SET A TIMER FOR SEVEN MINUTES"
        let viterbi = try transcriber.align(samples, transcript: transcript)
        let acoustic = try transcriber.align(samples, transcript: transcript, wordEnds: .acoustic)
        #expect(viterbi.words.map(\.start) == acoustic.words.map(\.start))
        #expect(viterbi.words.map(\.confidence) == acoustic.words.map(\.confidence))
        var moved = 0
        for (n, (v, a)) in zip(viterbi.words, acoustic.words).enumerated() {
            #expect(a.end >= v.end, "\(a) vs \(v)")
            if n + 1 < acoustic.words.count { #expect(a.end <= acoustic.words[n + 1].start) }
            if a.end > v.end { moved += 1 }
        }
        #expect(moved > 0, "no end moved: \(acoustic.words)")
        for (k, c) in acoustic.characters.enumerated() where c.text == " " {
            #expect(c.start >= acoustic.characters[k - 1].end && c.end >= c.start)
        }
        // The file path gives the same as the samples path.
        let fromFile = try transcriber.align(file: Fixtures.root.appendingPathComponent("audio/builtin/01.wav"),
                                             transcript: transcript, wordEnds: .acoustic)
        #expect(fromFile.words == acoustic.words)
    }

    @Test func levelsAreOneNumberPerFrame() {
        var levels = AudioLevels(samplesPerFrame: 4)
        levels.add([1, 1, 1])
        levels.add([1, 0.5, 0.5, 0.5, 0.5, 0.1])
        let db = levels.decibels()
        #expect(db.count == 3)
        #expect(abs(db[0]) < 1e-6)
        #expect(abs(db[1] - 10 * log10(0.25)) < 1e-5)
        #expect(abs(db[2] - 10 * log10(0.01)) < 1e-4)
    }
}
