"""The official `openai` Python SDK's realtime client (`client.realtime.connect`, over `websockets`) against a running
`asr serve`'s `/v1/realtime?intent=transcription`, following OpenAI's realtime transcription events. Checks:

- client-side commit (turn_detection null): the deltas add up to the completed transcript, which equals the
  HTTP endpoint's transcript of the same audio (sent as a WAV file);
- server VAD (the default): speech started/stopped around each of two utterances separated by silence, each item
  committed on silence, and each completed transcript equals the HTTP transcript of exactly that item's audio
  (audio_start_ms … audio_end_ms of what was sent);
- G.711 μ-law input; errors as `error` events (empty commit, unknown event); a wrong key refused with 401;
- a client that leaves during a long item stops its work (the next request is served at its usual latency).
Run by scripts/test-openai-client.sh."""
import argparse
import base64
import io
import json
import math
import os
import struct
import sys
import time
import urllib.request
import wave

import openai
from openai import OpenAI

parser = argparse.ArgumentParser()
parser.add_argument("--base-url", required=True)
parser.add_argument("--api-key", required=True)
parser.add_argument("--model", default="builtin")
parser.add_argument("--server-pid", type=int, help="the server's PID: its CPU time shows whether work stopped")
parser.add_argument("first", help="a 16 kHz mono 16-bit WAV of speech")
parser.add_argument("second", help="another one")
args = parser.parse_args()

client = OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=0, timeout=120)
failures = []


def check(condition, what):
    print(("ok   " if condition else "FAIL ") + what)
    if not condition:
        failures.append(what)


def read_wav(path):
    with wave.open(path, "rb") as w:
        assert w.getnchannels() == 1 and w.getsampwidth() == 2, path
        rate = w.getframerate()
        frames = w.readframes(w.getnframes())
    return list(struct.unpack("<%dh" % (len(frames) // 2), frames)), rate


def to_24k(samples, rate):
    """Linear interpolation to 24 kHz: the client's own resampling (the test compares the server with itself)."""
    n = len(samples) * 24000 // rate
    out = []
    for j in range(n):
        t = j * rate / 24000
        i = int(t)
        a = samples[i]
        b = samples[min(i + 1, len(samples) - 1)]
        out.append(int(round(a + (b - a) * (t - i))))
    return out


def pcm(samples):
    return struct.pack("<%dh" % len(samples), *samples)


def wav_bytes(samples, rate=24000):
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm(samples))
    return buffer.getvalue()


def http_transcript(samples, rate=24000):
    result = client.audio.transcriptions.create(model=args.model, file=("item.wav", wav_bytes(samples, rate), "audio/wav"))
    return result.text


def connect():
    return client.realtime.connect(extra_query={"intent": "transcription"})


def events_until(connection, done, limit=120):
    """Events until `done(event)` is true (inclusive), as plain dicts."""
    seen = []
    deadline = time.time() + limit
    while time.time() < deadline:
        event = connection.recv().to_dict()
        seen.append(event)
        if done(event):
            return seen
    raise TimeoutError("no final event within %d s: %s" % (limit, [e["type"] for e in seen]))


def append_all(connection, data, piece=4800):
    for start in range(0, len(data), piece):
        connection.input_audio_buffer.append(audio=base64.b64encode(data[start:start + piece]).decode())


first, rate = read_wav(args.first)
second, _ = read_wav(args.second)
first24, second24 = to_24k(first, rate), to_24k(second, rate)

# 1. Client-side commit.
with connect() as connection:
    created = connection.recv().to_dict()
    check(created["type"] == "session.created" and created["session"]["type"] == "transcription", "session.created first")
    connection.session.update(session={"type": "transcription", "audio": {"input": {
        "format": {"type": "audio/pcm", "rate": 24000}, "turn_detection": None,
        "transcription": {"model": args.model}}}})
    updated = events_until(connection, lambda e: e["type"] in ("session.updated", "error"))[-1]
    check(updated["type"] == "session.updated" and updated["session"]["audio"]["input"]["turn_detection"] is None,
          "session.updated turns server VAD off")
    append_all(connection, pcm(first24))
    connection.input_audio_buffer.commit()
    events = events_until(connection, lambda e: e["type"] in ("conversation.item.input_audio_transcription.completed", "error"))
    types = [e["type"] for e in events]
    check(types[0] == "input_audio_buffer.committed" and types[-1].endswith(".completed"), "committed … completed: %s" % types)
    completed = events[-1]
    deltas = "".join(e["delta"] for e in events if e["type"].endswith(".delta"))
    expected = http_transcript(first24)
    check(completed.get("transcript") == expected and expected, "commit: %r == HTTP %r" % (completed.get("transcript"), expected))
    check(deltas == completed.get("transcript"), "deltas add up to the transcript")
    check(all(e.get("item_id") == events[0]["item_id"] for e in events if "item_id" in e), "one item id throughout")
    check(completed.get("usage", {}).get("type") == "duration", "usage by duration")
    # Errors are events, and the session goes on.
    connection.input_audio_buffer.commit()
    empty = events_until(connection, lambda e: e["type"] == "error")[-1]
    check(empty["error"]["code"] == "input_audio_buffer_commit_empty", "empty commit: %s" % empty["error"]["code"])
    connection.send({"type": "response.create"})
    unknown = events_until(connection, lambda e: e["type"] == "error")[-1]
    check(unknown["error"]["code"] == "unknown_event_type", "unknown event: %s" % unknown["error"]["code"])

# 2. Server VAD: two utterances with silence after each.
silence = [0] * (24000 * 3 // 2)
stream = silence[:4800] + first24 + silence + second24 + silence
with connect() as connection:
    connection.recv()
    append_all(connection, pcm(stream))
    events = []
    while sum(e["type"].endswith(".completed") for e in events) < 2:
        events += events_until(connection, lambda e: e["type"].endswith(".completed") or e["type"] == "error")
        if events[-1]["type"] == "error":
            break
    types = [e["type"] for e in events]
    check(types.count("input_audio_buffer.speech_started") == 2 and types.count("input_audio_buffer.speech_stopped") == 2,
          "server VAD: two utterances, started and stopped: %s" % [t for t in types if t.startswith("input")])
    starts = [e for e in events if e["type"] == "input_audio_buffer.speech_started"]
    stops = [e for e in events if e["type"] == "input_audio_buffer.speech_stopped"]
    completed = [e for e in events if e["type"].endswith(".completed")]
    for k, (start, stop, done) in enumerate(zip(starts, stops, completed)):
        item = stream[start["audio_start_ms"] * 24:stop["audio_end_ms"] * 24]
        expected = http_transcript(item)
        check(start["item_id"] == stop["item_id"] == done["item_id"], "item %d: one id" % k)
        check(done["transcript"] == expected and expected,
              "VAD item %d (%d…%d ms): %r == HTTP of that audio %r" % (k, start["audio_start_ms"], stop["audio_end_ms"], done["transcript"], expected))

# 3. G.711 μ-law at 8 kHz.
def mulaw(sample):
    sign = 0x80 if sample < 0 else 0
    magnitude = min(abs(sample), 32635) + 0x84
    exponent = max(0, min(7, int(math.log2(magnitude)) - 7))
    mantissa = (magnitude >> (exponent + 3)) & 0x0F
    return ~(sign | (exponent << 4) | mantissa) & 0xFF


first8k = first[::2] if rate == 16000 else first  # (the μ-law check's input: 8 kHz, no filter: a rough phone line)
with connect() as connection:
    connection.recv()
    connection.session.update(session={"type": "transcription", "audio": {"input": {"format": {"type": "audio/pcmu"}, "turn_detection": None}}})
    events_until(connection, lambda e: e["type"] == "session.updated")
    append_all(connection, bytes(mulaw(s) for s in first8k), piece=800)
    connection.input_audio_buffer.commit()
    done = events_until(connection, lambda e: e["type"].endswith(".completed") or e["type"] == "error")[-1]
    check(done["type"].endswith(".completed") and len(done["transcript"]) > 0, "μ-law at 8 kHz: %r" % done.get("transcript"))

# 4. A wrong key: one `error` event (invalid_api_key), then the server closes the socket.
with OpenAI(base_url=args.base_url, api_key="wrong", max_retries=0).realtime.connect(extra_query={"intent": "transcription"}) as connection:
    refused = connection.recv().to_dict()
    check(refused["type"] == "error" and refused["error"]["code"] == "invalid_api_key", "a wrong key: %s" % refused)
    try:
        connection.recv()
        check(False, "the socket is closed after a refusal")
    except Exception as error:
        check(True, "the socket is closed after a refusal (%s)" % type(error).__name__)

# 5. A client that leaves during a long item stops its work.
def timed_request():
    started = time.time()
    http_transcript(first24)
    return time.time() - started


def metric(name):
    base = args.base_url.rsplit("/v1", 1)[0]
    for line in urllib.request.urlopen(base + "/metrics").read().decode().splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


baseline = timed_request()
abandoned = metric("asr_abandoned_requests_total")
noise = pcm([int(8000 * math.sin(j * 0.05) * math.sin(j * 0.0007)) for j in range(24000 * 60)])
with connect() as connection:
    connection.recv()
    connection.session.update(session={"type": "transcription", "audio": {"input": {"turn_detection": None}}})
    events_until(connection, lambda e: e["type"] == "session.updated")
    # Ten minutes of audio sent at once (the server transcribes its chunks as they arrive), then the client leaves.
    for _ in range(10):
        append_all(connection, noise, piece=48000)
    time.sleep(0.5)
# (Closed while ten minutes of audio were being transcribed.)
def cpu_seconds(pid):
    fields = open("/proc/%d/stat" % pid).read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


if args.server_pid:
    time.sleep(1.0)
    before = cpu_seconds(args.server_pid)
    time.sleep(2.0)
    used = cpu_seconds(args.server_pid) - before
    check(used < 0.5, "after the client left the server used %.2f s of CPU in 2 s (its work stopped)" % used)
after = timed_request()
check(after < baseline + 4, "after a client left mid-item the next request took %.2f s (alone %.2f s)" % (after, baseline))
time.sleep(0.5)
check(metric("asr_abandoned_requests_total") > abandoned, "the abandoned item is counted")

if failures:
    print("%d realtime check(s) failed" % len(failures), file=sys.stderr)
    sys.exit(1)
print("realtime client checks passed")
