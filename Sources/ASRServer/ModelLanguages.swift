import ASRKit
import Foundation
import NIOConcurrencyHelpers

/// A multilingual (MMS) model's languages as the server runs them: a request's `language` picks the adapters, head
/// and vocabulary (``Transcriber/switching(to:)``; the 1B-parameter body is shared), kept for the next request.
package final class ModelLanguages: Sendable {
    private let base: Transcriber
    private let cache = NIOLockedValueBox<[(language: String, transcriber: Transcriber)]>([])
    /// Languages kept loaded besides the default one (least recently used dropped first): a few megabytes each.
    static let capacity = 8

    package init(_ base: Transcriber) { self.base = base }

    /// The transcriber for a request's `language`. A model with one vocabulary ignores it (OpenAI's field is a hint,
    /// and clients send it by habit); a multilingual one takes the checkpoint's own codes (ISO 639-3, "fra") or the
    /// ISO 639-1 codes OpenAI's clients send ("fr") for languages whose 639-3 code the checkpoint has.
    package func transcriber(for requested: String?) throws -> Transcriber {
        guard let requested, base.language != nil else { return base }
        let code = requested.lowercased()
        // The default language runs its stored adapters even where the checkpoint has no adapter file for it.
        let known = Set(base.languages + [base.language].compactMap { $0 })
        guard let language = known.contains(code) ? code : Self.iso639_3[code].flatMap({ known.contains($0) ? $0 : nil })
        else {
            let all = known.sorted()
            let shown = all.count > 24 ? all.prefix(24).joined(separator: ", ") + ", … (\(all.count) in all)" : all.joined(separator: ", ")
            throw APIError.badRequest("language '\(requested)' is not one of this model's: \(shown).", param: "language",
                                      code: "unsupported_language")
        }
        if language == base.language { return base }
        if let hit = cache.withLockedValue({ entries -> Transcriber? in
            guard let index = entries.firstIndex(where: { $0.language == language }) else { return nil }
            let entry = entries.remove(at: index)
            entries.append(entry)
            return entry.transcriber
        }) {
            return hit
        }
        let loaded: Transcriber
        do {
            loaded = try base.switching(to: language)
        } catch {
            throw APIError.badRequest("language '\(requested)': \(error)", param: "language", code: "unsupported_language")
        }
        cache.withLockedValue { entries in
            entries.removeAll { $0.language == language }
            entries.append((language, loaded))
            if entries.count > Self.capacity { entries.removeFirst(entries.count - Self.capacity) }
        }
        return loaded
    }

    /// ISO 639-1 → ISO 639-3 for languages with a two-letter code (macrolanguages map to the macrolanguage's code).
    static let iso639_3: [String: String] = [
        "af": "afr", "am": "amh", "ar": "ara", "as": "asm", "az": "aze", "be": "bel", "bg": "bul", "bn": "ben", "bo": "bod",
        "br": "bre", "bs": "bos", "ca": "cat", "cs": "ces", "cy": "cym", "da": "dan", "de": "deu", "el": "ell", "en": "eng",
        "eo": "epo", "es": "spa", "et": "est", "eu": "eus", "fa": "fas", "fi": "fin", "fo": "fao", "fr": "fra", "ga": "gle",
        "gl": "glg", "gu": "guj", "ha": "hau", "he": "heb", "hi": "hin", "hr": "hrv", "ht": "hat", "hu": "hun", "hy": "hye",
        "id": "ind", "ig": "ibo", "is": "isl", "it": "ita", "ja": "jpn", "jv": "jav", "ka": "kat", "kk": "kaz", "km": "khm",
        "kn": "kan", "ko": "kor", "ky": "kir", "la": "lat", "lb": "ltz", "ln": "lin", "lo": "lao", "lt": "lit", "lv": "lav",
        "mg": "mlg", "mi": "mri", "mk": "mkd", "ml": "mal", "mn": "mon", "mr": "mar", "ms": "msa", "mt": "mlt", "my": "mya",
        "ne": "nep", "nl": "nld", "nn": "nno", "no": "nor", "oc": "oci", "pa": "pan", "pl": "pol", "ps": "pus", "pt": "por",
        "ro": "ron", "ru": "rus", "sa": "san", "sd": "snd", "si": "sin", "sk": "slk", "sl": "slv", "sn": "sna", "so": "som",
        "sq": "sqi", "sr": "srp", "su": "sun", "sv": "swe", "sw": "swa", "ta": "tam", "te": "tel", "tg": "tgk", "th": "tha",
        "tk": "tuk", "tl": "tgl", "tr": "tur", "tt": "tat", "uk": "ukr", "ur": "urd", "uz": "uzb", "vi": "vie", "yi": "yid",
        "yo": "yor", "zh": "zho", "zu": "zul", "xh": "xho", "rw": "kin", "ny": "nya", "om": "orm", "ti": "tir", "wo": "wol",
    ]
}
