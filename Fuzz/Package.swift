// swift-tools-version:6.0
// libFuzzer harnesses for the parsers that read untrusted files. Kept out of the main package because they
// have no main function: libFuzzer provides it. Build and run them with ../scripts/fuzz.sh, which compiles every
// target (ASRKit included, so that coverage guides the fuzzer) with -sanitize=fuzzer,address.
import PackageDescription

let harnesses = ["FuzzSafeTensors", "FuzzConfig", "FuzzVocabulary", "FuzzAudio", "FuzzPickle"]

let package = Package(
    name: "asr-fuzz",
    dependencies: [.package(name: "asr", path: "..")],
    targets: [.target(name: "FuzzDriver", path: "Sources/FuzzDriver")] + harnesses.map { name in
        .executableTarget(
            name: name,
            dependencies: ["FuzzDriver", .product(name: "ASRKit", package: "asr")],
            path: "Sources/\(name)")
    }
)
