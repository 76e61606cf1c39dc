#!/usr/bin/env python3
"""Checks that `asr download` writes a cache huggingface_hub itself can read (development only).

Serves the base-layout fixture as acme/tiny-ctc from a local HTTP server that answers like the hub
(/ORG/NAME/resolve/REV/FILE with X-Repo-Commit, ETag, X-Linked-Etag, X-Linked-Size), runs
`asr download acme/tiny-ctc` with HF_ENDPOINT pointing at it, then opens the cache with
huggingface_hub.snapshot_download(local_files_only=True) and compares every file.

    python tools/check_hf_cache_layout.py [--asr .build/debug/asr]
"""
import argparse
import hashlib
import http.server
import os
import subprocess
import tempfile
import threading

from huggingface_hub import snapshot_download

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
MODEL = os.path.join(ROOT, "fixtures", "models", "base-layout")
COMMIT = "1234567890abcdef1234567890abcdef12345678"
FILES = ["config.json", "vocab.json", "tokenizer_config.json", "preprocessor_config.json", "model.safetensors"]


class Hub(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def serve(self, body_wanted):
        prefix = "/acme/tiny-ctc/resolve/main/"
        name = self.path[len(prefix):] if self.path.startswith(prefix) else None
        if name not in FILES:
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        data = open(os.path.join(MODEL, name), "rb").read()
        self.send_response(200)
        self.send_header("X-Repo-Commit", COMMIT)
        if name.endswith(".safetensors"):
            self.send_header("X-Linked-Etag", '"%s"' % hashlib.sha256(data).hexdigest())
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("ETag", '"%s"' % hashlib.sha1(b"pointer").hexdigest())
        else:
            self.send_header("ETag", '"%s"' % hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest())
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if body_wanted:
            self.wfile.write(data)

    def do_HEAD(self):
        self.serve(False)

    def do_GET(self):
        self.serve(True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--asr", default=os.path.join(ROOT, ".build", "debug", "asr"))
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, HF_ENDPOINT=f"http://127.0.0.1:{server.server_port}", HF_HUB_CACHE=cache)
        subprocess.run([args.asr, "download", "acme/tiny-ctc"], env=env, check=True)
        path = snapshot_download("acme/tiny-ctc", cache_dir=cache, local_files_only=True)
        for name in FILES:
            same = open(os.path.join(path, name), "rb").read() == open(os.path.join(MODEL, name), "rb").read()
            print(f"{name}: {'identical' if same else 'DIFFERENT'}")
            assert same
        print(f"huggingface_hub.snapshot_download(local_files_only=True) -> {path}: OK")
    server.shutdown()


if __name__ == "__main__":
    main()
