#!/usr/bin/env bash
# Installs the system libraries asr links against, when they are missing (Debian/Ubuntu, apt).
set -euo pipefail
# sox: the live-input tests pipe raw PCM from it.
packages=(libsndfile1-dev libopenblas-dev libdnnl-dev zlib1g-dev libfftw3-dev pkg-config sox)
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}" >&2
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
command -v swift >/dev/null || { echo "error: no Swift toolchain on PATH (Swift 6 is needed: https://swift.org/install)" >&2; exit 1; }
