#!/usr/bin/env bash
# Builds the libFuzzer harnesses (Fuzz/) and runs each for SECONDS (default 60), starting from the committed seed
# corpora in Fuzz/corpus/NAME. New interesting inputs go to a scratch corpus, crashes to Fuzz/crashes/.
#   scripts/fuzz.sh [SECONDS] [HARNESS...]
set -euo pipefail
cd "$(dirname "$0")/../Fuzz"
seconds=${1:-60}; shift || true
harnesses=("$@")
[ ${#harnesses[@]} -gt 0 ] || harnesses=(FuzzSafeTensors FuzzConfig FuzzVocabulary FuzzAudio FuzzPickle)
flags=(-Xswiftc -sanitize=fuzzer,address -Xcc -fsanitize=fuzzer-no-link,address -Xswiftc -use-ld=lld)
swift build --scratch-path .build-fuzz "${flags[@]}" 2>&1 | grep -E "error|Compiling|Build" | tail -3
mkdir -p crashes
for h in "${harnesses[@]}"; do
    scratch=$(mktemp -d)
    echo "== $h: ${seconds}s"
    LSAN_OPTIONS=suppressions=lsan.supp .build-fuzz/debug/$h "$scratch" "corpus/$h" -max_total_time="$seconds" -max_len=65536 -rss_limit_mb=4096 \
        -artifact_prefix=crashes/$h- -print_final_stats=1 2>&1 | grep -E "stat::number_of_executed_units|Done|ERROR|SUMMARY" || true
    rm -rf "$scratch"
done
