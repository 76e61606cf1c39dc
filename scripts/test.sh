#!/usr/bin/env bash
# The whole test suite: system libraries if missing, then every test (library and command line).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
swift test "$@"
