// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "asr",
    platforms: [.macOS(.v13)],
    products: [
        .library(name: "ASRKit", targets: ["ASRKit"]),
        .library(name: "ASRBuiltinModel", targets: ["ASRBuiltinModel"]),
        .executable(name: "asr", targets: ["asr"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
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
            name: "CFFTW", path: "Sources/CFFTW", pkgConfig: "fftw3f",
            providers: [.apt(["libfftw3-dev"]), .brew(["fftw"])]),
        .systemLibrary(
            name: "CZlib", path: "Sources/CZlib", pkgConfig: "zlib",
            providers: [.apt(["zlib1g-dev"]), .brew(["zlib"])]),
        // Vectorised element-wise kernels (exp, GELU), compiled for AVX-512, AVX2 and baseline x86-64.
        .target(name: "CKernels", path: "Sources/CKernels"),
        // bf16 and int8 products on oneDNN (Debian's libdnnl-dev; OpenMP runtime), behind our own C functions.
        .target(
            name: "CLowPrecision", path: "Sources/CLowPrecision",
            linkerSettings: [.linkedLibrary("dnnl"), .linkedLibrary("gomp")]),
        .target(
            name: "ASRKit",
            dependencies: ["CSndFile", "CBLAS", "CFFTW", "CZlib", "CKernels", "CLowPrecision"],
            path: "Sources/ASRKit"),
        // The built-in model's files linked into the binary (model/ is read by .incbin, through the search path).
        .target(
            name: "CBuiltinModel", path: "Sources/CBuiltinModel", exclude: ["model"],
            cSettings: [.headerSearchPath(".")]),
        .target(
            name: "ASRBuiltinModel", dependencies: ["ASRKit", "CBuiltinModel"], path: "Sources/ASRBuiltinModel"),
        .executableTarget(
            name: "asr",
            dependencies: ["ASRKit", "ASRBuiltinModel", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            path: "Sources/asr"),
        .testTarget(
            name: "ASRKitTests", dependencies: ["ASRKit"], path: "Tests/ASRKitTests"),
        .testTarget(
            name: "asrTests", dependencies: ["ASRKit", "ASRBuiltinModel", "asr"], path: "Tests/asrTests"),
    ]
)
