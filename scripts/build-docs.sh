#!/usr/bin/env bash
# Builds the documentation of ASRKit and ASRBatch (their DocC catalogs Sources/*/*.docc and the symbols' comments) with the
# swift-docc-plugin; any DocC warning fails the build. Output: .build/docs/ASRKit.doccarchive (or the folder given).
set -euo pipefail
cd "$(dirname "$0")/.."
output="${1:-.build/docs}"
mkdir -p "$output"
swift package --allow-writing-to-directory "$output" generate-documentation --target ASRKit \
    --warnings-as-errors --output-path "$output/ASRKit.doccarchive"
swift package --allow-writing-to-directory "$output" generate-documentation --target ASRBatch \
    --warnings-as-errors --output-path "$output/ASRBatch.doccarchive"
