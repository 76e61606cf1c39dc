import ArgumentParser
import ASRKit
import Foundation

struct Bench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Measure speed on this machine: a model's forward pass (default) or the resampler.",
        discussion: """
            Model: one warm-up run, then --runs timed runs on --seconds of audio; prints the median real-time factor \
            (processing seconds / audio seconds), GFLOP/s, the time per stage, peak memory and load time.
            --resampler: throughput on one hour of 48 kHz stereo and quality figures on test tones.
            """)

    @OptionGroup var modelOptions: ModelOptions

    @OptionGroup(title: "Decoding (with --lm, --beam or --hotword: decoding is timed too)") var decoderOptions: DecoderOptions

    @Option(help: "Seconds of audio per run.")
    var seconds: Double = 10

    @Option(help: "Benchmark on this audio file (all of it) instead of --seconds of synthetic noise; use real speech when timing decoding.")
    var audio: String?

    @Option(help: "Timed runs (after one warm-up).")
    var runs: Int = 5

    @Flag(help: "Benchmark the resampler instead of a model.")
    var resampler = false

    @Option(help: "Audio hours for the resampler throughput run.")
    var hours: Double = 1

    func validate() throws {
        guard seconds > 0, seconds <= 3600 else { throw ValidationError("--seconds must be in (0, 3600]") }
        guard runs >= 1 else { throw ValidationError("--runs must be at least 1") }
        guard hours > 0 else { throw ValidationError("--hours must be positive") }
    }

    func run() async throws {
        if resampler {
            benchResampler()
        } else {
            do { try benchModel() } catch { throw report(error) }
        }
    }

    func benchModel() throws {
        let loadStart = DispatchTime.now().uptimeNanoseconds
        let transcriber = try modelOptions.load()
        let load = Double(DispatchTime.now().uptimeNanoseconds - loadStart) / 1e9
        let decoder = try decoderOptions.makeDecoder(for: transcriber)
        let audio: [Float]
        if let file = self.audio {
            audio = try transcriber.loadAudio(file: URL(fileURLWithPath: file))
        } else {
            // Deterministic noise: the cost of the network does not depend on what the audio says.
            var state: UInt64 = 0x9E37_79B9_7F4A_7C15
            audio = (0..<Int(seconds * Double(transcriber.sampleRate))).map { _ -> Float in
                state = state &* 6364136223846793005 &+ 1442695040888963407
                return Float(Int64(bitPattern: state >> 11) % 2000 - 1000) / 4000
            }
        }
        let count = audio.count
        let seconds = Double(count) / Double(transcriber.sampleRate)
        let emissions = transcriber.emissions(samples: audio)  // warm-up
        var times: [Double] = []
        var profiles: [StageProfile] = []
        for _ in 0..<runs {
            let profile = StageProfile()
            let start = DispatchTime.now().uptimeNanoseconds
            _ = transcriber.emissions(samples: audio, profile: profile)
            times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            profiles.append(profile)
        }
        let order = times.indices.sorted { times[$0] < times[$1] }
        let median = order[order.count / 2]
        let flops = transcriber.configuration.flops(forSamples: count)
        print("model: \(transcriber.location) (\(transcriber.parameterCount) parameters)")
        print("OpenBLAS kernel: \(BLAS.kernel), threads: \(transcriber.execution.threads ?? BLAS.threads), precision: \(transcriber.precision.rawValue)")
        if transcriber.precision != .fp32 { print("reduced-precision kernels: \(ReducedPrecisionKernels.summary)") }
        print(String(format: "audio: %.1f s, runs: %d (after 1 warm-up)", seconds, runs))
        print(String(format: "median: %.3f s, RTF %.4f (%.1f× real time), %.1f GFLOP/s (%.1f GFLOP per run)",
                     times[median], times[median] / seconds, seconds / times[median], flops / times[median] / 1e9, flops / 1e9))
        print(String(format: "min %.3f s, max %.3f s", times[order.first!], times[order.last!]))
        // Each stage's operations at this CPU's measured peaks (per core × the threads used): the time it would take
        // at the limit, against the time it took.
        let stageFlops = transcriber.configuration.stageFlops(forSamples: count, precision: transcriber.precision)
        let formats = Precision.allCases.filter { p in stageFlops.stages.contains { ($0[p] ?? 0) > 0 } }
        let cores = Double(min(transcriber.execution.threads ?? BLAS.threads, ProcessInfo.processInfo.activeProcessorCount))
        var peaks: [Precision: Double] = [:]
        var peakNotes: [String] = []
        for format in formats {
            guard let peak = ComputePeak.measure(format) else { continue }
            peaks[format] = peak.opsPerSecond * cores
            peakNotes.append(String(format: "%@ %.1f G%@/s (%@)", format.rawValue, peak.opsPerSecond / 1e9,
                                    format == .int8 ? "OP" : "FLOP", peak.instruction))
        }
        if !peakNotes.isEmpty {
            print("measured peaks per core: " + peakNotes.joined(separator: ", ") + String(format: "; × %.0f threads", cores))
        }
        print("stages (median run):         time     share    GFLOP/s  of peak  products in")
        var passAtPeak = 0.0  // every stage's products at the peaks; stages without products (norms) count nothing
        for ((name, value), work) in zip(profiles[median].stages, stageFlops.stages) {
            var line = "  " + name.padding(toLength: 22, withPad: " ", startingAt: 0)
                + String(format: " %8.3f s  %5.1f %%", value, 100 * value / max(1e-12, profiles[median].total))
            let operations = work.values.reduce(0, +)
            if operations > 0 && value > 0 {
                line += String(format: " %9.1f", operations / value / 1e9)
                let atPeak = work.reduce(0.0) { sum, part in peaks[part.key].map { sum + part.value / $0 } ?? .nan }
                line += atPeak.isNaN ? "        -" : String(format: "  %5.1f %%", 100 * atPeak / value)
                passAtPeak += atPeak
                line += "  " + Precision.allCases.filter { (work[$0] ?? 0) > 0 }.map { p in
                    String(format: "%@ %.0f %%", p.rawValue, 100 * work[p]! / operations)
                }.joined(separator: ", ")
            }
            print(line)
        }
        // The limit of this pass on this CPU: what no kernel can beat, so a target that needs a pass near it is out
        // of reach however the rest is tuned.
        if passAtPeak > 0 && !passAtPeak.isNaN {
            print(String(format: "whole pass at the measured peaks: %.3f s (RTF %.4f); the median run: %.1f %% of peak",
                         passAtPeak, passAtPeak / seconds, 100 * passAtPeak / times[median]))
        }
        if let decoder {
            var decodeTimes: [Double] = []
            var text = ""
            for _ in 0..<runs {
                let start = DispatchTime.now().uptimeNanoseconds
                text = decoder.decode(emissions).text
                decodeTimes.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
            }
            let decodeMedian = decodeTimes.sorted()[decodeTimes.count / 2]
            let greedyStart = DispatchTime.now().uptimeNanoseconds
            _ = GreedyDecoder(vocabulary: transcriber.vocabulary).decode(emissions)
            let greedy = Double(DispatchTime.now().uptimeNanoseconds - greedyStart) / 1e9
            let kind = decoder is BeamSearchDecoder ? "beam search" : "greedy"
            print("decoding (\(kind)): " + String(format: "median %.4f s = %.1f %% of the forward pass (%.3f s); greedy %.5f s; %d frames",
                         decodeMedian, 100 * decodeMedian / times[median], times[median], greedy, emissions.frames))
            print("transcript: \(text)")
        }
        print(String(format: "load: %.3f s, peak RSS: %.0f MB", load, peakResidentMegabytes()))
    }

    /// This process's peak resident memory: VmHWM, which starts afresh at exec. (getrusage's ru_maxrss keeps the
    /// high-water mark of the process that forked us, e.g. a Python harness holding its own model, across exec.)
    func peakResidentMegabytes() -> Double {
        if let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
           let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
           let kilobytes = Double(line.split(separator: " ").dropFirst().first ?? "") {
            return kilobytes / 1024
        }
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Double(usage.ru_maxrss) / 1024  // kilobytes on Linux
    }

    func benchResampler() {
        // Throughput: mix stereo to mono and resample, in 64 k-frame blocks, as the reader does.
        let inputRate = 48000, block = 65536
        let totalFrames = Int(hours * 3600 * Double(inputRate))
        var stereo = [Float](repeating: 0, count: 2 * block)
        for i in 0..<block {
            stereo[2 * i] = Float(sin(Double(i) * 0.01)) * 0.5
            stereo[2 * i + 1] = Float(sin(Double(i) * 0.013)) * 0.5
        }
        var r = Resampler(inputRate: inputRate, outputRate: 16000)
        var produced = 0
        var mono = [Float](repeating: 0, count: block)
        let start = DispatchTime.now().uptimeNanoseconds
        var done = 0
        while done < totalFrames {
            let n = min(block, totalFrames - done)
            for i in 0..<n { mono[i] = (stereo[2 * i] + stereo[2 * i + 1]) * 0.5 }
            produced += r.process(n == block ? mono : Array(mono[0..<n])).count
            done += n
        }
        produced += r.finish().count
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
        let audioSeconds = Double(totalFrames) / Double(inputRate)
        print(String(format: "resampler 48 kHz stereo → 16 kHz mono: %.1f h of audio in %.2f s (%.0f× real time, %.4f s per audio minute), %d output samples",
                     hours, seconds, audioSeconds / seconds, seconds / (audioSeconds / 60), produced))

        // Quality on synthetic tones for the common rates.
        print("rate    passband max |dev| (≤0.45·fout)   stopband worst (>fout/2)   1 kHz tone SNR")
        for rate in [8000, 11025, 22050, 32000, 44100, 48000, 96000, 12345] {
            let passband = passbandDeviation(rate)
            let stop = rate > 16000 ? String(format: "%8.1f dB", stopbandLevel(rate)) : "       n/a"
            print(String(format: "%6d  %8.4f dB                       %@                %6.1f dB",
                         rate, passband, stop, toneSNR(rate)))
        }
    }

    func tone(_ f: Double, _ rate: Int, _ seconds: Double) -> [Float] {
        (0..<Int(Double(rate) * seconds)).map { Float(0.5 * sin(2 * .pi * f * Double($0) / Double(rate))) }
    }

    func amplitude(_ f: Double, _ x: [Float], _ rate: Int) -> Double {
        var ss = 0.0, sc = 0.0, cc = 0.0, xs = 0.0, xc = 0.0
        for n in 1000..<(x.count - 1000) {
            let p = 2 * .pi * f * Double(n) / Double(rate), s = sin(p), c = cos(p), v = Double(x[n])
            ss += s * s; cc += c * c; sc += s * c; xs += v * s; xc += v * c
        }
        let det = ss * cc - sc * sc
        let a = (xs * cc - xc * sc) / det, b = (xc * ss - xs * sc) / det
        return (a * a + b * b).squareRoot()
    }

    func passbandDeviation(_ rate: Int) -> Double {
        let limit = 0.45 * Double(min(rate, 16000))
        var worst = 0.0
        for i in 1...20 {
            let f = limit * Double(i) / 20
            let y = Resampler.resample(tone(f, rate, 0.5), from: rate, to: 16000)
            worst = max(worst, abs(20 * log10(amplitude(f, y, 16000) / 0.5)))
        }
        return worst
    }

    func stopbandLevel(_ rate: Int) -> Double {
        var worst = -400.0
        for f in stride(from: 8000.0, to: Double(rate) / 2, by: 250) {
            let y = Resampler.resample(tone(f, rate, 0.25), from: rate, to: 16000)
            let slice = y[1000..<(y.count - 1000)]
            let rms = (slice.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(slice.count)).squareRoot()
            worst = max(worst, 20 * log10(max(rms, 1e-20) / (0.5 / 2.0.squareRoot())))
        }
        return worst
    }

    func toneSNR(_ rate: Int) -> Double {
        let y = Resampler.resample(tone(1000, rate, 1), from: rate, to: 16000)
        let expected = tone(1000, 16000, 1)
        var signal = 0.0, noise = 0.0
        for n in 500..<(min(y.count, expected.count) - 500) {
            signal += Double(expected[n]) * Double(expected[n])
            noise += (Double(y[n]) - Double(expected[n])) * (Double(y[n]) - Double(expected[n]))
        }
        return 10 * log10(signal / noise)
    }
}
