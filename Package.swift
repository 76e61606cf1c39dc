// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "asr",
    // macOS 14: Hummingbird 2 (the server) marks its API available from macOS 14 (its availability macro), whatever
    // its own platforms say; swift-prometheus needs 13. Linux has no minimum.
    platforms: [.macOS(.v14)],
    products: [
        .library(name: "ASRKit", targets: ["ASRKit"]),
        .library(name: "ASRBuiltinModel", targets: ["ASRBuiltinModel"]),
        // Batches over many files: input discovery, output plans, atomic writes, resumable manifests, shards.
        .library(name: "ASRBatch", targets: ["ASRBatch"]),
        .executable(name: "asr", targets: ["asr"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        // Diagnostics of ASRKit (and the server's logs).
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        // The server (ASRServer and `asr serve` only: ASRKit does not depend on these).
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.0.0"),
        // The realtime transcription endpoint (a WebSocket upgrade on the same port).
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.0.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.65.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.34.1"),
        // `swift package generate-documentation` (the DocC catalog in Sources/ASRKit/ASRKit.docc; scripts/test.sh).
        .package(url: "https://github.com/swiftlang/swift-docc-plugin", from: "1.5.0"),
    ],
    targets: [
        // One system library per C dependency; each is imported by exactly one Swift file in ASRKit.
        .systemLibrary(
            name: "CSndFile", path: "Sources/CSndFile", pkgConfig: "sndfile",
            providers: [.apt(["libsndfile1-dev"]), .brew(["libsndfile"])]),
        .systemLibrary(
            name: "CBLAS", path: "Sources/CBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"]), .brew(["openblas"])]),
        .systemLibrary(
            name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]),
        // w2v-BERT's log-mel filterbank front end (real FFTs of 512 points).
        .systemLibrary(
            name: "CFFTW", path: "Sources/CFFTW", pkgConfig: "fftw3",
            providers: [.apt(["libfftw3-dev"]), .brew(["fftw"])]),
        // Vectorised element-wise kernels (exp, GELU), compiled for AVX-512, AVX2 and baseline x86-64.
        .target(name: "CKernels", path: "Sources/CKernels"),
        // bf16 and int8 products on oneDNN (Debian's libdnnl-dev; OpenMP runtime), behind our own C functions.
        .target(
            name: "CLowPrecision", path: "Sources/CLowPrecision",
            linkerSettings: [.linkedLibrary("dnnl"), .linkedLibrary("gomp")]),
        .target(
            name: "ASRKit",
            dependencies: [
                "CSndFile", "CBLAS", "CZlib", "CFFTW", "CKernels", "CLowPrecision",
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/ASRKit"),
        // Batches over many files (shards of an array job, JSON Lines manifests that survive a kill), used by the CLI;
        // apart from ASRKit so that a library user who transcribes does not compile them.
        .target(name: "ASRBatch", dependencies: ["ASRKit"], path: "Sources/ASRBatch"),
        // The built-in model's files linked into the binary (model/ is read by .incbin, through the search path).
        .target(
            name: "CBuiltinModel", path: "Sources/CBuiltinModel", exclude: ["model"],
            cSettings: [.headerSearchPath(".")]),
        .target(
            name: "ASRBuiltinModel",
            dependencies: ["ASRKit", "CBuiltinModel", .product(name: "Logging", package: "swift-log")], path: "Sources/ASRBuiltinModel"),
        // The OpenAI-compatible HTTP server behind `asr serve` (Hummingbird 2, swift-log, swift-metrics + Prometheus,
        // swift-service-lifecycle; MultipartKit's streaming parser, vendored with a crash fix).
        .target(
            name: "ASRServer",
            dependencies: [
                "ASRKit",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                // (Hummingbird's own dependency: its HTTP part types, to answer `Expect: 100-continue`.)
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
            ],
            path: "Sources/ASRServer"),
        .executableTarget(
            name: "asr",
            dependencies: [
                "ASRKit", "ASRBatch", "ASRBuiltinModel", "ASRServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Sources/asr"),
        .testTarget(
            name: "ASRKitTests", dependencies: ["ASRKit", "ASRBatch", .product(name: "Logging", package: "swift-log")],
            path: "Tests/ASRKitTests"),
        .testTarget(
            name: "asrTests", dependencies: ["ASRKit", "ASRBatch", "ASRBuiltinModel", "CKernels", "asr"], path: "Tests/asrTests"),
        .testTarget(
            name: "ASRServerTests",
            dependencies: [
                "ASRKit", "ASRBuiltinModel", "ASRServer", "asr",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Tests/ASRServerTests"),
    ]
)
