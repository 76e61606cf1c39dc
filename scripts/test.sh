#!/usr/bin/env bash
# The whole test suite: system libraries if missing, then every test (library and command line), then the check that
# another package can depend on this one by version, the OpenAI client check, and the real Slurm check (as root).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
# The tests run real models on real audio (a two-hour file among them), which unoptimised Swift makes 10-50× slower.
# Optimisation is asked for here, on the command line, not with unsafe flags in Package.swift (SwiftPM refuses those
# in a versioned dependency).
swift test -Xswiftc -O -Xcc -O2 "$@"
scripts/check-consumer.sh
python3 scripts/check-public-docs.py
# ASRKit's DocC catalog (Sources/ASRKit/ASRKit.docc) and every public symbol's comment, with warnings as errors
# (broken links, unknown parameters): the swift-docc-plugin's generate-documentation.
scripts/build-docs.sh
scripts/test-openai-client.sh
scripts/test-slurm.sh
