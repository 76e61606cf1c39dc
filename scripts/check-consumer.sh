#!/usr/bin/env bash
# Uses ASRKit the way another package does: a throw-away consumer package depends on a tagged clone of this
# checkout *by version* (`.package(url:from:)`), once with ASRKit alone and once with ASRKit + ASRBuiltinModel,
# builds both and runs them on bundled samples. SwiftPM refuses unsafe build flags in versioned dependencies, so this
# fails if any product target gains one. The ASRKit consumer's main.swift is the README's library example, taken
# from the README itself (between `<!-- consumer: ASRKit -->` and the end of its code block), and likewise the
# built-in model's example: the README cannot drift from code that compiles against the released package.
#
# Usage: scripts/check-consumer.sh   (commits only: the clone is of HEAD, not of uncommitted changes)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d "${TMPDIR:-/tmp}/asr-consumer.XXXXXX")"
trap 'rm -rf "$work"' EXIT
version=0.1.0

# A clone of HEAD, tagged, so that `from: "0.1.0"` resolves it as a released version.
git clone -q --no-local "$repo" "$work/asr"
git -C "$work/asr" -c user.name=check -c user.email=check@localhost tag -a "$version" -m "consumer check" HEAD

# The README's code blocks, by marker.
extract() {  # extract MARKER → the swift block that follows the marker line
    awk -v marker="<!-- consumer: $1 -->" '
        $0 == marker { armed = 1; next }
        armed && /^```swift/ { inside = 1; next }
        inside && /^```/ { exit }
        inside { print }' "$repo/README.md"
}

mkdir -p "$work/consumer/Sources/UsesASRKit" "$work/consumer/Sources/UsesBuiltinModel"
extract ASRKit > "$work/consumer/Sources/UsesASRKit/main.swift"
extract ASRBuiltinModel > "$work/consumer/Sources/UsesBuiltinModel/main.swift"
for f in "$work"/consumer/Sources/*/main.swift; do
    [ -s "$f" ] || { echo "check-consumer: README has no block for $(basename "$(dirname "$f")")" >&2; exit 1; }
done

cat > "$work/consumer/Package.swift" <<EOF
// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "consumer",
    dependencies: [
        .package(url: "file://$work/asr", from: "$version"),
    ],
    targets: [
        .executableTarget(
            name: "UsesASRKit", dependencies: [.product(name: "ASRKit", package: "asr")]),
        .executableTarget(
            name: "UsesBuiltinModel",
            dependencies: [.product(name: "ASRKit", package: "asr"), .product(name: "ASRBuiltinModel", package: "asr")]),
    ]
)
EOF

cd "$work/consumer"
echo "check-consumer: building a package that depends on asr $version (ASRKit; ASRKit + ASRBuiltinModel)" >&2
swift build -c release 2>&1 | tail -n 20

fixtures="$repo/fixtures"
expected="$(head -n 1 "$fixtures/models/base-layout/transcript.txt")"
first="$(.build/release/UsesASRKit "$fixtures/models/base-layout" "$fixtures/speech_16k.wav" \
    "$fixtures/lm/tiny_corpus.lmplz.order3.arpa" "$fixtures/speech_16k.wav" "$fixtures/audio/broken_text.wav" | head -n 1)"
if [ "$first" != "$expected" ]; then
    echo "check-consumer: ASRKit consumer printed '$first', expected '$expected'" >&2
    exit 1
fi
builtin="$(.build/release/UsesBuiltinModel "$fixtures/audio/builtin/08.wav")"
if [ "$builtin" != "THE TEMPERATURE TODAY IS SEVENTY ONE DEGREES" ]; then
    echo "check-consumer: ASRBuiltinModel consumer printed '$builtin'" >&2
    exit 1
fi
echo "check-consumer: both consumers built against asr $version by version and transcribed correctly" >&2
