#!/usr/bin/env python3
"""Bounded load test of `asr serve` from a second process, on loopback only.

1. CLI baseline: `asr transcribe FILES --jsonl` gives each file's transcription time inside the CLI (model loaded).
2. Concurrency 1: each good file sent --rounds times, one at a time: p50 latency per file against the CLI's time
   for the same file → server overhead (HTTP, upload to a temporary file, multipart parsing, response).
3. Mixed load: --requests requests, --concurrency at once: good uploads (transcripts compared with the CLI's),
   streamed ones (stream=true: Server-Sent Events, the done event's text compared with the CLI's), unreadable
   audio, empty files, oversized uploads, bad fields, clients that disconnect mid-upload, clients that send their
   whole upload and leave while it is computed, and clients that upload over a slow link (20 KB/s, completed);
   meanwhile --trickle connections send one byte a second (slowloris: each must be cut by --min-upload-kbps).
   Checks: no 5xx other than 429/503, every good and streamed transcript identical to the CLI's, every trickling
   sender cut, RSS not growing over the second half of the run (within 5 %: a leak grows with the requests, the
   high-water mark of concurrent work does not), no temporary files and no file
   descriptors left, exit 0 on SIGTERM.

Usage: benchmarks/serve_load.py [--asr .build/release/asr] [--requests 300] [--concurrency 8] [--rounds 5]
"""
import argparse
import glob
import http.client
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def multipart(fields, file_bytes, filename="audio.wav"):
    boundary = "load-" + uuid.uuid4().hex
    out = bytearray()
    for name, value in fields:
        out += f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    out += (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n").encode()
    out += file_bytes + f"\r\n--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", bytes(out)


def post(port, fields, data, timeout=300):
    content_type, body = multipart(fields, data)
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", "/v1/audio/transcriptions", body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        payload = response.read()
        return response.status, payload, time.perf_counter() - started
    except (ConnectionError, OSError) as error:
        return -1, str(error).encode(), time.perf_counter() - started
    finally:
        conn.close()


def raw_head(content_type, length, close=False):
    """The head of a transcription upload, for the clients that write to the socket themselves."""
    connection = "Connection: close\r\n" if close else ""
    return (f"POST /v1/audio/transcriptions HTTP/1.1\r\nHost: x\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {length}\r\n{connection}\r\n").encode()


def disconnect_mid_upload(port, data):
    content_type, body = multipart([("response_format", "text")], data)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(raw_head(content_type, len(body)) + body[: len(body) // 2])
        time.sleep(0.05)
    return 0, b"", 0.0


def leave_while_computing(port, data):
    """The whole upload, then the client closes without reading the answer (the server should stop its work)."""
    content_type, body = multipart([("response_format", "text")], data)
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(raw_head(content_type, len(body)) + body)
        time.sleep(0.02)
    return 0, b"", 0.0


def slow_upload(port, data, bytes_per_second=20480):
    """An upload over a slow link (20 KB/s, above --min-upload-kbps' 16 KB/s): served like any other."""
    content_type, body = multipart([("response_format", "text")], data)
    started = time.perf_counter()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=120) as s:
            s.sendall(raw_head(content_type, len(body), close=True))
            piece = bytes_per_second // 10
            for start in range(0, len(body), piece):
                s.sendall(body[start:start + piece])
                time.sleep(0.1)
            reply = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                reply += chunk
        head, _, payload = reply.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1]) if head.startswith(b"HTTP/1.1 ") else -1
        return status, payload, time.perf_counter() - started
    except OSError as error:
        return -1, str(error).encode(), time.perf_counter() - started


def streamed(port, data):
    """stream=true: the SSE events; returns the done event's text (with a newline, as response_format=text) and the
    time to the first event."""
    content_type, body = multipart([("stream", "true")], data)
    started = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    try:
        conn.request("POST", "/v1/audio/transcriptions", body=body, headers={"Content-Type": content_type})
        response = conn.getresponse()
        if response.status != 200:
            return response.status, response.read(), time.perf_counter() - started, None
        first, text, deltas = None, None, ""
        for line in response:
            if not line.startswith(b"data: "):
                continue
            first = first or time.perf_counter() - started
            event = json.loads(line[6:])
            if event.get("type") == "transcript.text.delta":
                deltas += event["delta"]
            elif event.get("type") == "transcript.text.done":
                text = event["text"]
        ok = text is not None and deltas == text
        return (200 if ok else 299), ((text or "") + "\n").encode(), time.perf_counter() - started, first
    except (ConnectionError, OSError) as error:
        return -1, str(error).encode(), time.perf_counter() - started, None
    finally:
        conn.close()


def trickle(port, stop, cut):
    """Slowloris on the body: a byte a second until the server closes the connection (or the run ends)."""
    content_type, _ = multipart([], b"")
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(raw_head(content_type, 1000000))
            s.settimeout(1.0)
            while not stop.is_set():
                s.sendall(b"x")
                try:
                    if s.recv(65536) == b"":
                        cut.append(True)
                        return
                except socket.timeout:
                    pass
                except OSError:
                    cut.append(True)
                    return
    except OSError:
        cut.append(True)


def rss_kb(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def abandoned(port):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/metrics")
    text = conn.getresponse().read().decode()
    conn.close()
    match = re.search(r"^asr_abandoned_requests_total (\S+)", text, re.M)
    return int(float(match.group(1))) if match else 0


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))] if values else float("nan")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--asr", default=os.path.join(ROOT, ".build/release/asr"))
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--trickle", type=int, default=20, help="slowloris connections during the mixed load")
    args = parser.parse_args()
    assert args.requests <= 5000 and args.concurrency <= 64, "bounded by design"
    random.seed(args.seed)

    good = sorted(glob.glob(os.path.join(ROOT, "fixtures/audio/builtin/*.wav")))[:12]
    good.append(os.path.join(ROOT, "fixtures/audio/builtin/long_speech.flac"))
    blobs = {path: open(path, "rb").read() for path in good}
    bad_audio = open(os.path.join(ROOT, "fixtures/audio/broken_text.wav"), "rb").read()

    # 1. The CLI on the same files (one process, model loaded once; per-file transcription time from --jsonl).
    work = tempfile.mkdtemp(prefix="asr-load-")
    manifest = os.path.join(work, "cli.jsonl")
    expected, cli_seconds, durations = {}, {}, {}
    for _ in range(max(1, args.rounds)):
        subprocess.run([args.asr, "transcribe", *good, "--format", "txt", "-o", os.path.join(work, "out"), "--overwrite",
                        "--jsonl", manifest, "--quiet"], check=True)
        for line in open(manifest):
            record = json.loads(line)
            cli_seconds.setdefault(record["file"], []).append(record["elapsed"])
            durations[record["file"]] = record["duration"]
            expected[record["file"]] = record["transcript"] + "\n"

    # The server: loopback, its own temporary directory, a 2 MB upload limit for the oversized uploads.
    tmpdir = os.path.join(work, "tmp")
    os.makedirs(tmpdir)
    log_path = os.path.join(work, "serve.log")
    log = open(log_path, "w")
    server = subprocess.Popen([args.asr, "serve", "--host", "127.0.0.1", "--port", "0", "--max-upload-mb", "2",
                               "--queue", str(max(16, 2 * args.concurrency))],
                              stderr=log, env={**os.environ, "TMPDIR": tmpdir})
    try:
        port = None
        for _ in range(600):
            match = re.search(r"listening on http://127\.0\.0\.1:(\d+)", open(log_path).read())
            if match:
                port = int(match.group(1))
                break
            time.sleep(0.05)
        assert port, open(log_path).read()

        # 2. Concurrency 1.
        latency = {path: [] for path in good}
        for _ in range(args.rounds):
            for path in good:
                status, body, seconds = post(port, [("response_format", "text")], blobs[path])
                assert status == 200 and body.decode() == expected[path], (path, status, body[:200])
                latency[path].append(seconds)
        print(f"concurrency 1, {args.rounds} rounds over {len(good)} files (median per file):")
        print(f"  {'file':<20} {'audio s':>8} {'CLI s':>8} {'server s':>9} {'overhead':>9}")
        total_cli = total_server = 0.0
        for path in good:
            cli_s, server_s = statistics.median(cli_seconds[path]), statistics.median(latency[path])
            total_cli += cli_s
            total_server += server_s
            print(f"  {os.path.basename(path):<20} {durations[path]:8.2f} {cli_s:8.3f} {server_s:9.3f} {100 * (server_s / cli_s - 1):8.1f}%")
        audio_total = sum(durations[p] for p in good)
        print(f"  all files: CLI {total_cli:.3f} s, server {total_server:.3f} s → overhead {100 * (total_server / total_cli - 1):.1f}% "
              f"(throughput CLI {audio_total / total_cli:.1f}, server {audio_total / total_server:.1f} audio s/s)")

        # 3. Mixed load.
        kinds = (["good"] * 60 + ["sse"] * 10 + ["bad_audio"] * 6 + ["empty"] * 4 + ["oversize"] * 4 + ["bad_field"] * 5
                 + ["disconnect"] * 5 + ["leave_computing"] * 4 + ["slow"] * 2)
        plan = [random.choice(kinds) for _ in range(args.requests)]
        results = [None] * len(plan)
        rss_after_20, rss_half = [None], [None]
        done = [0]
        lock = threading.Lock()

        def one(index):
            kind = plan[index]
            path = random.choice(good[:-1] if kind == "slow" else good)
            if kind == "good":
                outcome = post(port, [("response_format", "text"), ("model", "builtin")], blobs[path])
            elif kind == "bad_audio":
                outcome = post(port, [], bad_audio)
            elif kind == "empty":
                outcome = post(port, [], b"")
            elif kind == "oversize":
                outcome = post(port, [], os.urandom(3 * 1024 * 1024))
            elif kind == "bad_field":
                outcome = post(port, [("response_format", "docx")], blobs[path])
            elif kind == "sse":
                status, body, seconds, first = streamed(port, blobs[path])
                if first is not None:
                    with lock:
                        first_event.append(first)
                outcome = (status, body, seconds)
            elif kind == "slow":
                outcome = slow_upload(port, blobs[path])
            elif kind == "leave_computing":
                outcome = leave_while_computing(port, blobs[long_file])
            else:
                outcome = disconnect_mid_upload(port, blobs[path])
            with lock:
                done[0] += 1
                if done[0] == 20:
                    rss_after_20[0] = rss_kb(server.pid)
                if done[0] == len(plan) // 2:
                    rss_half[0] = rss_kb(server.pid)
            results[index] = (kind, path, *outcome)

        first_event = []
        long_file = good[-1]
        fds_before = open_fds(server.pid)
        stop, cut = threading.Event(), []
        tricklers = [threading.Thread(target=trickle, args=(port, stop, cut)) for _ in range(args.trickle)]
        for thread in tricklers:
            thread.start()
        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            list(pool.map(one, range(len(plan))))
        wall = time.perf_counter() - started
        # The slow senders are cut 10 s after they start at the latest (--min-upload-kbps); give them that.
        deadline = time.perf_counter() + 15
        while len(cut) < args.trickle and time.perf_counter() < deadline:
            time.sleep(0.2)
        stop.set()
        for thread in tricklers:
            thread.join()
        time.sleep(0.5)
        rss_end = rss_kb(server.pid)
        fds_after = open_fds(server.pid)

        statuses = {}
        unexpected, mismatched = [], []
        good_latency, good_audio = [], 0.0
        for kind, path, status, body, seconds in results:
            statuses.setdefault(kind, {}).setdefault(status, 0)
            statuses[kind][status] += 1
            if kind in ("good", "sse", "slow"):
                if status == 200:
                    good_latency.append(seconds)
                    good_audio += durations[path]
                    if body.decode() != expected[path]:
                        mismatched.append((kind, os.path.basename(path), body[:80]))
                elif status not in (429, 503):
                    unexpected.append((kind, status, body[:200]))
            elif kind not in ("disconnect", "leave_computing") and (status >= 500 and status not in (429, 503) or status in (-1, 200)):
                # An oversized upload may see the connection closed before it reads the 413: allowed (-1).
                if not (kind == "oversize" and status == -1):
                    unexpected.append((kind, status, body[:200]))
        leftovers = os.listdir(tmpdir)
        growth = 100 * (rss_end / rss_after_20[0] - 1)
        # A leak grows with the requests; a high-water mark of concurrent work (uploads, 20 slowloris connections,
        # streams) is reached early and stays: the second half of the run must not grow it.
        late_growth = 100 * (rss_end / rss_half[0] - 1)
        print(f"mixed load: {len(plan)} requests, {args.concurrency} concurrent, {wall:.1f} s")
        print(f"  statuses by kind: {json.dumps(statuses, sort_keys=True)}")
        print(f"  good: {len(good_latency)} answered, p50 {percentile(good_latency, 50):.3f} s, p95 {percentile(good_latency, 95):.3f} s, "
              f"throughput {good_audio / wall:.1f} audio s/s (CLI alone: {audio_total / total_cli:.1f})")
        if first_event:
            print(f"  stream=true: first event after p50 {percentile(first_event, 50):.3f} s")
        print(f"  slowloris senders cut: {len(cut)} of {args.trickle}; abandoned requests (server's count): {abandoned(port)}")
        print(f"  transcripts differing from the CLI: {len(mismatched)} {mismatched[:3]}; unexpected statuses: {len(unexpected)} {unexpected[:3]}")
        print(f"  RSS after 20 requests {rss_after_20[0] / 1024:.1f} MB, after half {rss_half[0] / 1024:.1f} MB, after the run "
              f"{rss_end / 1024:.1f} MB ({growth:+.1f}% overall, {late_growth:+.1f}% over the second half)")
        print(f"  temporary files left: {len(leftovers)}; open fds before {fds_before}, after {fds_after}")

        server.send_signal(signal.SIGTERM)
        code = server.wait(timeout=60)
        print(f"  SIGTERM → exit {code}")
        ok = not mismatched and not unexpected and len(cut) == args.trickle and late_growth <= 5 and not leftovers and code == 0 and fds_after <= fds_before + 2
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
