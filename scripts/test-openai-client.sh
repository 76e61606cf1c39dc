#!/usr/bin/env bash
# The official OpenAI Python client (`openai` from PyPI, in a venv under .build-openai/, which git ignores) against
# `asr serve` on a free loopback port: json, text, srt, vtt and verbose_json with word timestamps, compared with the
# CLI's output for the same files; then its realtime client against /v1/realtime (scripts/realtime_client_check.py); the server is stopped with SIGTERM (and killed on any exit) and must exit 0.
#
# Usage: scripts/test-openai-client.sh   (after a build; ASR_BIN overrides the binary, ASR_OPENAI_VENV the venv)
set -euo pipefail
cd "$(dirname "$0")/.."
bin="${ASR_BIN:-$(swift build -Xswiftc -O -Xcc -O2 --show-bin-path)/asr}"
venv="${ASR_OPENAI_VENV:-.build-openai/venv}"
[ -x "$bin" ] || { echo "test-openai-client: no asr binary at $bin (build first)" >&2; exit 1; }

if [ ! -x "$venv/bin/python" ]; then
    python3 -m venv "$venv"
fi
# openai[realtime] adds websockets, for the SDK's realtime client.
"$venv/bin/python" -c 'import openai, websockets' 2>/dev/null || "$venv/bin/pip" install --quiet --disable-pip-version-check "openai[realtime]"

log="$(mktemp "${TMPDIR:-/tmp}/asr-serve-log.XXXXXX")"
"$bin" serve --host 127.0.0.1 --port 0 --api-key openai-client-test 2>"$log" &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -f "$log"' EXIT

port=""
for _ in $(seq 1 300); do
    port="$(sed -n 's|.*listening on http://127\.0\.0\.1:\([0-9][0-9]*\).*|\1|p' "$log" | head -n 1)"
    [ -n "$port" ] && break
    kill -0 "$pid" 2>/dev/null || { cat "$log" >&2; echo "test-openai-client: asr serve exited" >&2; exit 1; }
    sleep 0.1
done
[ -n "$port" ] || { cat "$log" >&2; echo "test-openai-client: asr serve did not start" >&2; exit 1; }

"$venv/bin/python" scripts/openai_client_check.py --base-url "http://127.0.0.1:$port/v1" --api-key openai-client-test \
    --asr "$bin" fixtures/audio/builtin/08.wav fixtures/audio/builtin/03.wav fixtures/audio/long_speech_60s.ogg

# The realtime WebSocket endpoint with the SDK's realtime client (its CPU check reads the server's /proc entry).
"$venv/bin/python" scripts/realtime_client_check.py --base-url "http://127.0.0.1:$port/v1" --api-key openai-client-test \
    --server-pid "$pid" fixtures/audio/builtin/08.wav fixtures/audio/builtin/05.wav

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
trap 'rm -f "$log"' EXIT
if [ "$status" -ne 0 ]; then
    cat "$log" >&2
    echo "test-openai-client: asr serve exited $status after SIGTERM (expected 0)" >&2
    exit 1
fi
echo "test-openai-client: the openai client got the CLI's transcripts in every format; asr serve stopped cleanly" >&2
