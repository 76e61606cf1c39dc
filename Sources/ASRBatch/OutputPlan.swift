import Foundation

/// Where every input of a batch writes each of its outputs, decided before any audio is read, with every clash
/// found up front: two inputs that would write one file (`a/x.wav` and `b/x.flac` into one output folder), an output
/// that would replace something that must not be replaced (an input, a transcript), a manifest that is also an
/// output. A batch with clashes should do nothing: which input wins would depend on the order, and the loser's
/// work would be lost.
public struct OutputPlan<Format: Sendable>: Sendable {
    /// One output of one input.
    public struct Destination: Sendable {
        /// What is written.
        public let format: Format
        /// Where: next to the input, or under the output folder at the input's relative path.
        public let path: String
    }

    /// Per input (in the order of ``BatchInputs/items``), its outputs; empty when the outputs go to standard output.
    public let destinations: [[Destination]]
    /// Each clash between outputs in words; the plan can run when this and ``manifestClashes`` are empty.
    public let clashes: [String]
    /// What is wrong with the manifest's path, each as a predicate ("is also the output of a/x.wav", "would replace
    /// the input x.wav") for the caller to put after its own name for the manifest.
    public let manifestClashes: [String]

    /// Plans `formats` for every input.
    ///
    /// - Parameters:
    ///   - inputs: the batch's inputs.
    ///   - formats: the outputs of each input, in order.
    ///   - fileExtension: the file extension of a format.
    ///   - outputDirectory: the folder outputs go under (at each input's relative path); next to each input when nil.
    ///   - toStandardOutput: the one output goes to standard output (no files are planned).
    ///   - manifest: the manifest's path, checked against every output and protected path (`-` is not a file).
    ///   - protected: paths no output may replace, each with what it is in words ("the input talk.wav").
    public init(
        inputs: BatchInputs, formats: [Format], fileExtension: (Format) -> String, outputDirectory: String?,
        toStandardOutput: Bool, manifest: String?, protected: [String: String] = [:]
    ) {
        func key(_ path: String) -> String { URL(fileURLWithPath: path).standardizedFileURL.path }
        let protected = Dictionary(protected.map { (key($0.key), $0.value) }, uniquingKeysWith: { first, _ in first })
        destinations = inputs.items.map { input in
            toStandardOutput ? [] : formats.map {
                Destination(format: $0, path: input.output(extension: fileExtension($0), under: outputDirectory))
            }
        }
        var owners: [String: Int] = [:]
        var clashes: [String] = []
        for (index, outputs) in destinations.enumerated() {
            for destination in outputs {
                let path = key(destination.path)
                if let what = protected[path] {
                    clashes.append("\(inputs.items[index].displayPath): its output \(destination.path) would replace \(what)")
                } else if let other = owners[path] {
                    clashes.append("\(inputs.items[other].displayPath) and \(inputs.items[index].displayPath) would both be written to \(destination.path)")
                } else {
                    owners[path] = index
                }
            }
        }
        var manifestClashes: [String] = []
        if let manifest, manifest != "-" {
            let path = key(manifest)
            if let owner = owners[path] { manifestClashes.append("is also the output of \(inputs.items[owner].displayPath)") }
            if let what = protected[path] { manifestClashes.append("would replace \(what)") }
        }
        self.clashes = clashes
        self.manifestClashes = manifestClashes
    }

    /// The inputs' own files, protected from being replaced by an output or the manifest.
    public static func inputsProtected(_ inputs: BatchInputs) -> [String: String] {
        var protected: [String: String] = [:]
        for item in inputs.items where !item.isStandardInput { protected[item.url.path] = "the input \(item.displayPath)" }
        return protected
    }
}
