#!/usr/bin/env bash
# Rewrites fixtures/golden/ from the current build: the exact CLI outputs the tests compare against. Run it only
# after checking that a change of output is intended.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build
rm -rf fixtures/golden && mkdir -p fixtures/golden
.build/debug/asr transcribe fixtures/speech_16k.wav --model fixtures/models/base-layout \
    -f txt -f json -f srt -f vtt -f tsv -o fixtures/golden --quiet
ls fixtures/golden
