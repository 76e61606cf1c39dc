#!/usr/bin/env bash
# The whole test suite under a sanitizer: scripts/sanitize.sh address|thread
# (separate build folder; system-library leaks at exit are suppressed, see lsan-system.supp).
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-address}
export ASR_SANITIZER="$kind"   # tests that measure memory skip that check (sanitizer shadow memory)
export LSAN_OPTIONS="suppressions=$PWD/scripts/lsan-system.supp${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
swift test -Xswiftc -sanitize="$kind" --scratch-path ".build-$kind"
