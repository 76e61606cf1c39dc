#!/usr/bin/env python3
"""Speed comparison on this machine (development only; not part of `swift test`).

Builds random models with the exact facebook/wav2vec2-base-960h and wav2vec2-large-960h-lv60-self architectures
with transformers (if absent), then in one run times, on the same audio and with the same thread count:
transformers fp32 (torch), ONNX Runtime fp32 (exported from the same model), and our `asr bench`. Prints a table of
median real-time factors (processing seconds / audio seconds) and the ratios to ours.

    swift build -c release
    pip install torch transformers onnx onnxruntime
    python benchmarks/compare.py [--threads 2] [--runs 5] [--rounds 3] [--seconds 10 30] [--models base large]
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from compare_full_size import ARCHITECTURES, build  # noqa: E402

NAMES = {"base": "base-960h", "large": "large-960h-lv60-self"}


def audio(seconds):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(int(16000 * seconds)).astype(np.float32)
    return (x - x.mean()) / x.std()


def time_torch(model, x, runs):
    inputs = torch.from_numpy(x)[None]
    with torch.inference_mode():
        model(inputs)
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model(inputs)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_onnx(model, directory, x, runs, threads):
    import onnxruntime as ort
    path = os.path.join(directory, "model.onnx")
    if not os.path.exists(path):
        torch.onnx.export(model, (torch.from_numpy(x)[None],), path, input_names=["input_values"],
                          output_names=["logits"], dynamic_axes={"input_values": {1: "samples"}, "logits": {1: "frames"}},
                          opset_version=17, dynamo=False)
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    feed = {"input_values": x[None]}
    session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def time_ours(asr, directory, seconds, runs, threads, attention=None):
    env = dict(os.environ, ASR_ATTENTION=attention) if attention else None
    out = subprocess.run([asr, "bench", "--model", directory, "--seconds", str(seconds), "--runs", str(runs),
                          "--threads", str(threads)], check=True, capture_output=True, text=True, env=env).stdout
    median = float(re.search(r"median: ([0-9.]+) s", out).group(1))
    return median, out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--asr", default=os.path.join(ROOT, ".build", "release", "asr"))
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "asr-full-size"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, nargs="+", default=[10, 30])
    parser.add_argument("--models", nargs="+", default=["base", "large"])
    parser.add_argument("--no-onnx", action="store_true")
    parser.add_argument("--blas-attention", action="store_true",
                        help="also time our binary with ASR_ATTENTION=blas (attention as two sgemm calls and a softmax "
                             "per head instead of the fused kernel), to show what the fused kernel gains")
    parser.add_argument("--rounds", type=int, default=3,
                        help="engines take turns this many times; the table shows the median over rounds of each "
                             "engine's median (this machine's speed drifts by 10-20 %% over minutes)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    for key in args.models:
        directory = os.path.join(args.work, NAMES[key])
        build(NAMES[key], directory)
        model = Wav2Vec2ForCTC.from_pretrained(directory).eval()
        for seconds in args.seconds:
            x = audio(seconds)
            ours, torch_times, onnx_times, blas_times = [], [], [], []
            for round_number in range(args.rounds):
                median, report = time_ours(args.asr, directory, seconds, args.runs, args.threads)
                ours.append(median)
                if args.blas_attention:
                    blas_times.append(time_ours(args.asr, directory, seconds, args.runs, args.threads, "blas")[0])
                torch_times.append(time_torch(model, x, args.runs))
                if not args.no_onnx:
                    onnx_times.append(time_onnx(model, directory, x, args.runs, args.threads))
                print(f"{key} {seconds:.0f}s round {round_number + 1}: ours {median:.3f} s, torch {torch_times[-1]:.3f} s"
                      + (f", onnx {onnx_times[-1]:.3f} s" if onnx_times else "")
                      + (f", ours with BLAS attention {blas_times[-1]:.3f} s" if blas_times else ""), flush=True)
            print(report, flush=True)
            rows.append((key, seconds, statistics.median(torch_times),
                         statistics.median(onnx_times) if onnx_times else None, statistics.median(ours),
                         statistics.median(blas_times) if blas_times else None))
    print(f"threads: {args.threads}, runs: {args.runs} per round, rounds: {args.rounds} (median of medians), "
          f"torch {torch.__version__}")
    print(f"{'model':6s} {'audio':>6s} {'transformers':>13s} {'onnxruntime':>12s} {'asr (ours)':>11s} {'vs torch':>9s} {'vs onnx':>8s}"
          + (f" {'asr, BLAS attention':>20s} {'fused gain':>10s}" if args.blas_attention else ""))
    for key, seconds, t, o, ours, b in rows:
        onnx_rtf = f"{o / seconds:12.4f}" if o else f"{'-':>12s}"
        onnx_ratio = f"{o / ours:7.2f}×" if o else f"{'-':>8s}"
        blas = f" {b / seconds:20.4f} {b / ours:9.2f}×" if b else ""
        print(f"{key:6s} {seconds:5.0f}s {t / seconds:13.4f} {onnx_rtf} {ours / seconds:11.4f} {t / ours:8.2f}× {onnx_ratio}{blas}")


if __name__ == "__main__":
    main()
