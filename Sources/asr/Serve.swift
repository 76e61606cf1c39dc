import ArgumentParser
import ASRKit
import ASRServer
import Foundation
import Logging

/// `asr serve`: the OpenAI-compatible transcription server (ASRServer); this command only parses options and loads
/// the models.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve transcription over HTTP with OpenAI's API (POST /v1/audio/transcriptions).",
        discussion: """
            Endpoints: POST /v1/audio/transcriptions (multipart: file, model, response_format = json|text|srt|vtt|\
            verbose_json, timestamp_granularities[], prompt → hotwords, language (a multilingual MMS model runs \
            it, ISO 639-3 or 639-1; other models accept and ignore it), temperature accepted and ignored; our own \
            lm=on|off, hotwords, beam; stream=true for Server-Sent Events), POST /v1/audio/alignments (ours: \
            file + text, as asr align), GET /v1/realtime?intent=transcription (WebSocket: OpenAI's realtime \
            transcription events, server VAD), POST /v1/audio/translations (400), GET /v1/models, \
            GET /health, GET /metrics (Prometheus). Models are loaded before listening (a model that cannot be \
            loaded: exit 1); the first --model is the default. SIGTERM/SIGINT: new requests get 503, the requests \
            in flight finish; what still runs 1 s before --grace-seconds ends is answered 503; exit 0.
            """)

    @Option(name: .long, help: ArgumentHelp(
        "A model to serve: NAME=DIR|ID, or DIR|ID (named after the directory or the id); repeatable, the first is the default (default: the built-in model, as \"builtin\").",
        valueName: "name=dir|id"))
    var model: [String] = []

    @Option(name: .long, help: "BLAS threads for each forward pass (default: all cores).")
    var threads: Int?

    @Option(name: .long, help: "Precision of the large matrix products for every served model: fp32 (default), bf16 or int8.")
    var precision: Precision = .fp32

    @Option(name: .long, help: "A multilingual (MMS) model's default language (requests without `language`); default: its tokenizer's target_lang.")
    var language: String?

    @OptionGroup(title: "Decoding (server defaults; requests may add hotwords, set beam, turn the language model off)")
    var decoderOptions: DecoderOptions

    @Option(help: "Address to listen on (loopback by default; anything else exposes the server to the network).")
    var host = "127.0.0.1"

    @Option(help: "Port (0: any free port; the chosen one is logged).")
    var port = 8080

    @Option(name: .long, help: "Require 'Authorization: Bearer KEY' on /v1/ (default: $ASR_API_KEY, else no key). Prefer ASR_API_KEY: a key on the command line is visible in ps.")
    var apiKey: String?

    @Option(name: .long, help: ArgumentHelp(
        "Another name a served model answers to (repeatable), e.g. whisper-1=builtin for clients configured for OpenAI.",
        valueName: "alias=name"))
    var modelAlias: [String] = []

    @Option(help: "Largest beam a request may ask for (its `beam` field); wider is refused with 400.")
    var maxBeam = 512

    @Option(help: "Seconds of compute a request may take (forward passes and decoding); past it the work stops at the next chunk and the request is answered 503 (0: no limit).")
    var maxComputeSeconds = 600.0

    @Option(help: "Largest upload in MB (refused with 413 as soon as it is exceeded).")
    var maxUploadMb = 100.0

    @Option(help: "Longest audio in seconds (longer: 422).")
    var maxAudioSeconds = 3600.0

    @Option(help: "Forward passes run at once; more requests wait in the queue.")
    var maxConcurrency = 1

    @Option(help: "Requests that may wait (uploading or queued) beyond those running; more are refused with 429.")
    var queue = 16

    @Option(help: "An upload still arriving after this many seconds is cut.")
    var uploadTimeoutSeconds = 300.0

    @Option(help: "Uploads received at once (they hold no queue place until complete); more are refused with 429.")
    var maxUploads = 64

    @Option(help: "An upload averaging fewer KB/s than this after its first 10 s is cut (slow senders; 0: no minimum).")
    var minUploadKbps = 16.0

    @Option(help: "On SIGTERM/SIGINT, seconds the requests in flight get to finish.")
    var graceSeconds = 30.0

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    func validate() throws {
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535") }
        guard maxUploadMb > 0, maxUploadMb.isFinite else { throw ValidationError("--max-upload-mb must be positive") }
        guard maxAudioSeconds > 0, maxAudioSeconds.isFinite else { throw ValidationError("--max-audio-seconds must be positive") }
        guard maxConcurrency >= 1 else { throw ValidationError("--max-concurrency must be at least 1") }
        guard queue >= 0 else { throw ValidationError("--queue must be 0 or more") }
        guard uploadTimeoutSeconds > 0, graceSeconds >= 0 else { throw ValidationError("timeouts must be positive") }
        guard Logger.Level(rawValue: logLevel) != nil else { throw ValidationError("--log-level '\(logLevel)' is not a log level") }
        // An empty key would match a request without Authorization: the server would be open while looking closed
        // (`--api-key "$KEY"` with KEY unset).
        if let apiKey, apiKey.trimmingCharacters(in: .whitespaces).isEmpty {
            throw ValidationError("--api-key is empty (was its variable unset?): give a key, or leave the option out to serve without one")
        }
        guard maxBeam >= 1 else { throw ValidationError("--max-beam must be at least 1") }
        guard maxComputeSeconds >= 0, maxComputeSeconds.isFinite else { throw ValidationError("--max-compute-seconds must be 0 or more") }
        guard maxUploads >= 1 else { throw ValidationError("--max-uploads must be at least 1") }
        guard minUploadKbps >= 0, minUploadKbps.isFinite else { throw ValidationError("--min-upload-kbps must be 0 or more") }
        for alias in modelAlias {
            let parts = alias.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty, !parts[1].isEmpty else {
                throw ValidationError("--model-alias '\(alias)' is not ALIAS=NAME")
            }
        }
        var names = Set<String>()
        for spec in model {
            let (name, _) = Self.split(spec)
            guard !name.isEmpty else { throw ValidationError("--model '\(spec)' has an empty name") }
            guard names.insert(name).inserted else { throw ValidationError("two models are named '\(name)'") }
        }
    }

    /// "NAME=DIR|ID" → (NAME, DIR|ID); "DIR|ID" → (its last path component or the id, DIR|ID).
    static func split(_ spec: String) -> (name: String, location: String) {
        if let equals = spec.firstIndex(of: "="), !spec[..<equals].contains("/") {
            return (String(spec[..<equals]), String(spec[spec.index(after: equals)...]))
        }
        if ModelLocator.isModelID(spec) { return (spec, spec) }
        return (URL(fileURLWithPath: spec).standardizedFileURL.lastPathComponent, spec)
    }

    func run() async throws {
        // The address is tried first (before the models load), so that a taken port is reported in words; the
        // server's own bind error names neither the port nor the option.
        if let problem = Self.cannotListen(host: host, port: port) {
            printError("cannot listen on \(host):\(port): \(problem) (choose another --port, or --host)")
            throw ExitStatus.failure
        }
        let level = Logger.Level(rawValue: logLevel) ?? .info
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = level
            return handler
        }
        var logger = Logger(label: "asr.serve")
        logger.logLevel = level

        var models: [ServedModel] = []
        let recipe: DecoderRecipe
        do {
            recipe = try decoderOptions.recipe
            for spec in model.isEmpty ? [nil] : model.map(Optional.some) {
                let (name, location) = spec.map(Self.split) ?? ("builtin", "")
                // Loaded exactly as `asr transcribe --model DIR|ID --threads N` loads it (the built-in model without
                // --model), by the same function; its warnings go to stderr as there.
                let transcriber = try ModelOptions.load(
                    model: spec == nil ? nil : location, language: language, precision: precision, threads: threads,
                    logger: ModelOptions.logger(verbose: false), quiet: false)
                let languageModel = try decoderOptions.loadLanguageModel(for: transcriber)
                // Built once, so that a bad --hotword or option fails here rather than in every request.
                _ = try recipe.makeDecoder(vocabulary: transcriber.vocabulary, languageModel: languageModel)
                models.append(ServedModel(name: name, transcriber: transcriber, languageModel: languageModel))
                logger.info("model '\(name)': \(transcriber.location)\(languageModel == nil ? "" : " with a language model")")
            }
        } catch {
            throw report(error)
        }

        var options = ServerOptions()
        options.host = host
        options.port = port
        options.apiKey = apiKey ?? ProcessInfo.processInfo.environment["ASR_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        options.maxUploadBytes = Int(maxUploadMb * 1_048_576)
        options.maxAudioSeconds = maxAudioSeconds
        options.maxConcurrency = maxConcurrency
        options.queueSize = queue
        options.uploadTimeout = .milliseconds(Int64(uploadTimeoutSeconds * 1000))
        options.gracePeriod = .milliseconds(Int64(graceSeconds * 1000))
        options.decoder = recipe
        options.maxBeam = maxBeam
        options.maxComputeSeconds = maxComputeSeconds > 0 ? maxComputeSeconds : nil
        options.maxUploads = maxUploads
        options.minUploadBytesPerSecond = Int(minUploadKbps * 1024)
        for alias in modelAlias {
            let parts = alias.split(separator: "=", maxSplits: 1).map(String.init)
            guard models.contains(where: { $0.name == parts[1] }) else {
                printError("--model-alias \(alias): no served model is named '\(parts[1])' (served: \(models.map(\.name).joined(separator: ", ")))")
                throw ExitStatus.usage
            }
            guard !models.contains(where: { $0.name == parts[0] }) else {
                printError("--model-alias \(alias): '\(parts[0])' is already a served model's name")
                throw ExitStatus.usage
            }
            options.modelAliases[parts[0]] = parts[1]
        }
        let server = TranscriptionServer(models: models, options: options, logger: logger)
        do {
            try await server.run()
        } catch {
            let text = "\(error)"
            if text.contains("bind(") || text.contains("Address already in use") {
                printError("cannot listen on \(host):\(port) (--host/--port): \(text)")
                throw ExitStatus.failure
            }
            throw report(error)
        }
        logger.info("stopped")
    }

    /// Why a listening socket cannot be bound to `host`:`port` (nil when it can, or when `port` is 0: any free one).
    static func cannotListen(host: String, port: Int) -> String? {
        guard port != 0 else { return nil }
        var hints = addrinfo()
        hints.ai_flags = AI_PASSIVE
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(host, String(port), &hints, &list)
        guard status == 0, let first = list else {
            return "the address cannot be resolved (\(String(cString: gai_strerror(status))))"
        }
        defer { freeaddrinfo(list) }
        let fd = socket(first.pointee.ai_family, first.pointee.ai_socktype, first.pointee.ai_protocol)
        guard fd >= 0 else { return nil }  // no socket to try with: let the server report it
        defer { close(fd) }
        var one: Int32 = 1
        // As the server binds (SO_REUSEADDR): a port in TIME_WAIT is not "in use".
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<Int32>.size))
        guard bind(fd, first.pointee.ai_addr, first.pointee.ai_addrlen) == 0 else {
            return String(cString: strerror(errno)).lowercased()
        }
        return nil
    }
}
