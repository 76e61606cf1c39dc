import Foundation

/// MMS checkpoints (facebook/mms-1b-all and its kin): one body shared by every language, and per language an
/// attention adapter in each layer plus a CTC head, stored in `adapter.<lang>.safetensors` (or `.bin`), with the
/// languages' vocabularies nested in one `vocab.json` (`{lang: {token: id}}`).
///
/// This follows transformers: with no language, the adapters and head stored in the main weights run, decoded with
/// the tokenizer's `target_lang`; with a language, its adapter file replaces every adapter and the head
/// (`load_adapter`), and its vocabulary decodes.
enum LanguageAdapters {
    /// The file of `language`'s adapter and head, nil when the checkpoint has none.
    static func file(_ language: String, in files: ModelFiles) -> String? {
        let names = Set(files.fileNames)
        return ["adapter.\(language).safetensors", "adapter.\(language).bin"].first(where: names.contains)
    }

    /// Every language with an adapter file, sorted.
    static func adapterLanguages(_ files: ModelFiles) -> [String] {
        files.fileNames.compactMap { name -> String? in
            guard name.hasPrefix("adapter."), name.hasSuffix(".safetensors") || name.hasSuffix(".bin") else { return nil }
            let language = name.dropFirst("adapter.".count).split(separator: ".").first.map(String.init)
            return language.flatMap { $0.isEmpty ? nil : $0 }
        }.reduce(into: Set<String>()) { $0.insert($1) }.sorted()
    }

    /// Whether a tensor belongs to a language: an adapter layer's or the CTC head's.
    static func isLanguageTensor(_ name: String) -> Bool {
        name.contains(".adapter_layer.") || name.hasPrefix("lm_head.")
    }

    /// `base` with `language`'s adapters and head in place of the stored ones, and the head's vocabulary size.
    /// Refuses a model without adapters or per-language vocabularies (`vocabularies` nil), a language `vocab.json`
    /// lacks (naming the `available` ones) or one without an adapter file. As transformers' `load_adapter`, the file
    /// must hold exactly the adapter and head tensors the model has.
    static func weights(_ base: TensorSource, language: String, configuration: Wav2Vec2Configuration, vocabularies: [String]?,
                        available: [String], files: ModelFiles) throws -> (TensorSource, vocabSize: Int) {
        guard configuration.adapterAttnDim != nil, let vocabularies else {
            throw ASRError.invalidLanguage(
                language: language, reason: "this model has one vocabulary and no language adapters "
                    + "(languages are chosen only with MMS-style checkpoints)", available: [])
        }
        guard vocabularies.contains(language) else {
            throw ASRError.invalidLanguage(language: language, reason: "not in this checkpoint", available: available)
        }
        guard let name = file(language, in: files), let adapter = try files.tensors(name) else {
            throw ASRError.invalidLanguage(language: language, reason: "the checkpoint has no adapter.\(language).safetensors",
                                           available: adapterLanguages(files))
        }
        let expected = Set(base.shapes.keys.filter(isLanguageTensor))
        let found = Set(adapter.shapes.keys)
        if let unexpected = found.subtracting(expected).sorted().first {
            throw ASRError.invalidCheckpoint(file: name, reason: "tensor '\(unexpected)' is not an adapter or head tensor of this model")
        }
        if let missing = expected.subtracting(found).sorted().first {
            throw ASRError.invalidCheckpoint(file: name, reason: "tensor '\(missing)' is missing")
        }
        guard let head = adapter.shapes["lm_head.weight"], head.count == 2 else {
            throw ASRError.invalidCheckpoint(file: name, reason: "no 2-D lm_head.weight")
        }
        return (OverlaidTensors(base: base, overlay: adapter), head[0])
    }
}

/// A checkpoint with some of its tensors taken from another file instead.
struct OverlaidTensors: TensorSource {
    let base: TensorSource
    let overlay: TensorSource
    let shapes: [String: [Int]]
    private let overlaid: Set<String>

    init(base: TensorSource, overlay: TensorSource) {
        self.base = base
        self.overlay = overlay
        shapes = base.shapes.merging(overlay.shapes) { _, new in new }
        overlaid = Set(overlay.shapes.keys)
    }

    var storageTypes: [String] { Array(Set(base.storageTypes + overlay.storageTypes)).sorted() }
    private func owner(_ name: String) -> TensorSource { overlaid.contains(name) ? overlay : base }
    func floats(_ name: String) throws -> [Float] { try owner(name).floats(name) }
    func storage(_ name: String) throws -> FloatStorage { try owner(name).storage(name) }
    func raw(_ name: String) -> RawTensor? { owner(name).raw(name) }
    func release(_ name: String) { owner(name).release(name) }
}
