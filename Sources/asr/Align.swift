import ArgumentParser
import ASRBatch
import ASRKit
import Foundation

extension AlignmentFormat: ExpressibleByArgument {}
extension WordEndPlacement: ExpressibleByArgument {}

/// `asr align`: forced alignment of known transcripts (ASRKit's `Transcriber.align`), one file or a corpus laid out
/// as the Montreal Forced Aligner expects (audio with a same-stem `.txt` or `.lab` beside it).
struct Align: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Align known transcripts to audio: when each word and character is spoken.",
        discussion: """
            One audio file with --text or --transcript: the alignment goes to stdout (one --format, json by \
            default) unless --output-dir is given. Otherwise every audio file (directories are searched, -r to \
            descend) is aligned with the transcript beside it: NAME.txt, else NAME.lab; audio without one is \
            reported and the batch goes on (exit 1 at the end). Outputs are NAME.FORMAT next to the audio or under \
            --output-dir, written whole (temporary file, then rename); existing outputs are skipped (--overwrite \
            redoes them); two inputs whose outputs would be one file, or an output that would replace a \
            transcript, are refused before any work (exit 2).

            Every word of the transcript appears in every output, in order and as written. A plain number is aligned \
            as its English words where the vocabulary is letters (280: TWO HUNDRED AND EIGHTY); other characters \
            the vocabulary lacks (accents, symbols, digits in other words) are aligned through a wildcard; punctuation is kept in the \
            words but not aligned; a word with nothing the model can spell is marked "aligned": false in json and \
            tsv; a word the model finds little evidence of where it had to be placed (mean probability of its \
            letters below 0.2: typically a word that is not spoken) is marked "confident": false and named on \
            stderr. A transcript too long for its audio is an error that says so in seconds and characters. \
            srt and vtt have one cue per line of the transcript.
            """)

    @OptionGroup var modelOptions: ModelOptions

    @Argument(help: "Audio files and directories (- for standard input, with --text or --transcript).")
    var paths: [String]

    @Option(help: "The transcript itself (for a single audio input).")
    var text: String?

    @Option(help: "A transcript file (UTF-8 text; for a single audio input).")
    var transcript: String?

    @Flag(name: .shortAndLong, help: "Descend into subdirectories.")
    var recursive = false

    @Option(name: .shortAndLong, help: "Output format: json, txt, srt, vtt, tsv, textgrid, ctm (repeatable; default json).")
    var format: [AlignmentFormat] = []

    @Option(name: .shortAndLong, help: "Write outputs under this directory instead of next to the audio.")
    var outputDir: String?

    @Flag(help: "Align inputs again even when their outputs exist.")
    var overwrite = false

    @Option(help: "Write a JSON Lines manifest (- for stdout): one line per input (file, status, duration, transcript, words with their flags, timing, error), as `transcribe --jsonl`; resumed runs append to it.")
    var jsonl: String?

    @Option(help: "Where words end: viterbi (the exact path's last frame, as torchaudio; default) or acoustic (moved later while the audio still sounds like the word: CTC fires a word's last letter early; measured in the README).")
    var wordEnds: WordEndPlacement = .viterbi

    @Option(parsing: .unconditional, help: "Chunk length for long audio, as `transcribe` (seconds; 0: one pass).")
    var chunkSeconds: Double = ChunkingOptions.default.chunkSeconds

    @Option(parsing: .unconditional, help: "Context kept on each side of a chunk (seconds).")
    var strideSeconds: Double = ChunkingOptions.default.strideSeconds

    @Flag(name: .shortAndLong, help: "No progress output and no notes.")
    var quiet = false

    func validate() throws {
        guard !paths.isEmpty else { throw ValidationError("give at least one audio file or directory") }
        if text != nil && transcript != nil { throw ValidationError("give --text or --transcript, not both") }
        if text != nil || transcript != nil {
            var isDirectory: ObjCBool = false
            if paths.count != 1 || (FileManager.default.fileExists(atPath: paths[0], isDirectory: &isDirectory) && isDirectory.boolValue) {
                throw ValidationError("--text and --transcript go with a single audio file; for many, put NAME.txt or NAME.lab beside each")
            }
        }
        if paths.contains("-") && text == nil && transcript == nil {
            throw ValidationError("standard input (-) has no transcript beside it; give --text or --transcript")
        }
        if Set(format).count != format.count { throw ValidationError("a --format is given twice") }
        _ = try chunkingOptions(chunkSeconds: chunkSeconds, strideSeconds: strideSeconds)
    }

    /// The transcript of an audio file: the same-stem .txt, else .lab, beside it.
    static func transcriptBeside(_ audio: URL) -> URL? {
        for ext in ["txt", "lab"] {
            let candidate = audio.deletingPathExtension().appendingPathExtension(ext)
            if FileManager.default.fileExists(atPath: candidate.path) { return candidate }
        }
        return nil
    }

    func run() async throws {
        let inputs = BatchInputs.collect(paths, recursive: recursive)
        let formats = format.isEmpty ? [AlignmentFormat.json] : format
        let given = text != nil || transcript != nil
        let toStdout = given && outputDir == nil && formats.count == 1
        if toStdout && jsonl == "-" {
            throw usageError("--jsonl - and the alignment would both go to stdout; give --output-dir (or a --jsonl file)")
        }
        if !toStdout && outputDir == nil, inputs.items.contains(where: \.isStandardInput) {
            throw usageError("standard input (-) has no folder to write its outputs next to; give --output-dir")
        }
        // Before any work: no two inputs share an output, no output replaces an input or a transcript, and every
        // output folder and the manifest can be written.
        var protected = OutputPlan<AlignmentFormat>.inputsProtected(inputs)
        for item in inputs.items where !item.isStandardInput {
            if let transcript = Self.transcriptBeside(item.url) { protected[transcript.path] = "the transcript \(transcript.path)" }
        }
        let outputs = OutputPlan(
            inputs: inputs, formats: formats, fileExtension: \.fileExtension, outputDirectory: outputDir, toStandardOutput: toStdout,
            manifest: jsonl, protected: protected)
        try BatchPreparation.check(outputs, inputs: inputs, outputDir: outputDir, jsonl: jsonl, verb: "aligned",
                                   clashHint: "choose another --format or --output-dir")
        let plan = outputs.destinations
        let manifest: BatchManifest
        do {
            manifest = try BatchManifest(jsonl, restart: overwrite, redone: Set(inputs.items.map(\.displayPath) + inputs.problems.map(\.path)),
                                         partition: nil)
        } catch {
            throw report(error)
        }

        // The one transcript given on the command line, read before the model loads.
        var givenText = text
        if let transcript {
            do {
                let data = try Files.read(transcript) { ASRError.ioFailed(file: transcript, reason: $0) }
                givenText = String(decoding: data, as: UTF8.self)
            } catch {
                throw report(error)
            }
        }
        if let givenText, givenText.split(whereSeparator: \.isWhitespace).isEmpty {
            throw usageError("the transcript\(transcript.map { " \($0)" } ?? "") is empty: there is nothing to align")
        }

        let standardInput: StandardInput?
        do {
            standardInput = inputs.items.contains(where: \.isStandardInput) ? try StandardInput() : nil
        } catch {
            throw report(error)
        }
        let transcriber: Transcriber
        do {
            transcriber = try modelOptions.load(quiet: quiet)
        } catch {
            throw report(error)
        }
        let chunking = try chunkingOptions(chunkSeconds: chunkSeconds, strideSeconds: strideSeconds)
        let progress = Progress(total: inputs.items.count + inputs.problems.count, enabled: !quiet && !toStdout, live: !quiet)
        var failed = 0, skipped = 0
        for problem in inputs.problems {
            failed += 1
            progress.failed(problem.path, message: "\(problem.error)")
            manifest.append(ManifestLine.failure(problem.path, message: "\(problem.error)"))
        }
        for directory in inputs.directories where directory.audioFiles == 0 {
            FileHandle.standardError.write(Data("warning: \(directory.path): no audio files found\n".utf8))
        }

        for (input, destinations) in zip(inputs.items, plan) {
            for destination in destinations { AtomicFile.removeStalePartials(for: URL(fileURLWithPath: destination.path)) }
            if !toStdout && !overwrite && destinations.allSatisfy({ FileManager.default.fileExists(atPath: $0.path) }) {
                skipped += 1
                progress.skipped(input.displayPath)
                manifest.appendSkipped(input.displayPath, ManifestLine.skipped(input.displayPath, outputs: destinations.map(\.path)))
                continue
            }
            let started = DispatchTime.now().uptimeNanoseconds
            do {
                let words: String
                if let givenText {
                    words = givenText
                } else {
                    guard let file = Self.transcriptBeside(input.url) else {
                        let stem = input.url.deletingPathExtension().lastPathComponent
                        throw CommandLineError("\(input.displayPath): no transcript beside it (\(stem).txt or \(stem).lab); skipped")
                    }
                    let data = try Files.read(file.path) { ASRError.ioFailed(file: file.path, reason: $0) }
                    words = String(decoding: data, as: UTF8.self)
                    if words.split(whereSeparator: \.isWhitespace).isEmpty {
                        throw CommandLineError("\(file.path): the transcript is empty: nothing to align")
                    }
                }
                let url = input.isStandardInput ? URL(fileURLWithPath: standardInput!.path) : input.url
                let display = input.displayPath
                let name = input.isStandardInput ? StandardInput.displayName : nil
                let alignment = try transcriber.align(file: url, name: name, transcript: words, chunking: chunking, wordEnds: wordEnds) { report in
                    let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
                    progress.update(display, processed: report.processedSeconds, totalSeconds: report.totalSeconds, elapsed: elapsed)
                }
                let elapsed = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
                if toStdout {
                    progress.clearLine()
                    try Files.write(Data(formats[0].render(alignment, source: input.displayPath).utf8), to: "-")
                } else {
                    for destination in destinations {
                        try Files.write(Data(destination.format.render(alignment, source: input.displayPath).utf8), to: destination.path)
                    }
                }
                let unaligned = alignment.words.filter { !$0.aligned }.map(\.text)
                if !unaligned.isEmpty && !quiet {
                    progress.clearLine()
                    FileHandle.standardError.write(Data(
                        "note: \(input.displayPath): \(unaligned.count) word\(unaligned.count == 1 ? "" : "s") with nothing the model can spell, timed by the wildcard or placed at a boundary: \(unaligned.prefix(8).joined(separator: " "))\(unaligned.count > 8 ? " …" : "")\n".utf8))
                }
                let unsure = alignment.words.filter { $0.aligned && !$0.confident }.map(\.text)
                if !unsure.isEmpty && !quiet {
                    progress.clearLine()
                    FileHandle.standardError.write(Data(
                        ("note: \(input.displayPath): \(unsure.count) word\(unsure.count == 1 ? "" : "s") placed with low confidence "
                         + "(perhaps not spoken; \"confident\": false): \(unsure.prefix(8).joined(separator: " "))\(unsure.count > 8 ? " …" : "")\n").utf8))
                }
                progress.done(input.displayPath, audio: alignment.duration, elapsed: elapsed)
                manifest.append(ManifestLine.success(input.displayPath, alignment, elapsed: elapsed))
            } catch {
                failed += 1
                var message = "\(error)"
                if !message.hasPrefix(input.displayPath) { message = "\(input.displayPath): \(message)" }
                progress.failed(input.displayPath, message: message)
                manifest.append(ManifestLine.failure(input.displayPath, message: message))
            }
        }
        progress.finish(failed: failed, skipped: skipped, verb: "aligned")
        if let error = manifest.writeError {
            printError(error)
            failed += 1
        }
        if failed > 0 { throw ExitStatus.failure }
    }
}
