#!/usr/bin/env python3
"""Speed comparison on this machine (development only; not part of `swift test`).

Builds random models with the exact architectures of tools/compare_full_size.py (wav2vec2 base-960h and
large-lv60 by default; --models also takes wavlm, data2vec, unispeech-sat and mms) with transformers (if absent),
then in one run times, on the same audio and with the same thread count: transformers fp32, bf16 autocast and dynamic int8 (torch), ONNX Runtime fp32 and dynamic int8 (exported from the
same model), and our `asr bench` in each --precision. Prints, per model and length, the median real-time factors
(processing seconds / audio seconds) and each engine's speed relative to the fastest peer configuration, and for each
of our precisions its limit on this CPU: `asr bench`'s whole pass with every product at the measured peak of its
number format and everything else free, as a speed relative to the same fastest peer (in the number formats each stage runs in now, no kernel can pass it).

    swift build -c release
    pip install torch transformers onnx onnxruntime
    python benchmarks/compare.py [--threads 2] [--runs 5] [--rounds 3] [--seconds 10 30] [--models base large]
"""
import argparse
import contextlib
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import torch
from transformers import AutoModelForCTC

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from compare_full_size import ARCHITECTURES, build  # noqa: E402

NAMES = {"base": "base-960h", "large": "large-960h-lv60-self", "wavlm": "wavlm-base-plus",
         "data2vec": "data2vec-audio-base-960h", "unispeech-sat": "unispeech-sat-base", "mms": "mms-1b-all",
         "conformer-rope": "conformer-rope-large", "conformer-rel-pos": "conformer-rel-pos-large",
         "w2v-bert": "w2v-bert-2.0", "w2v-bert-adapter": "w2v-bert-2.0-adapter"}


def audio(seconds):
    rng = np.random.default_rng(0)
    x = rng.standard_normal(int(16000 * seconds)).astype(np.float32)
    return (x - x.mean()) / x.std()


def time_torch(model, x, runs, bf16=False):
    """transformers as people run it: fp32, or bf16 autocast (torch.autocast("cpu", dtype=torch.bfloat16)).
    w2v-BERT reads filterbank features: its SeamlessM4TFeatureExtractor runs inside the timed region, as `asr bench`
    times its own filterbank."""
    if model.config.model_type == "wav2vec2-bert":
        from transformers import SeamlessM4TFeatureExtractor
        extractor = SeamlessM4TFeatureExtractor()
        prepare = lambda: extractor(x, sampling_rate=16000, return_tensors="pt")  # noqa: E731
    else:
        values = torch.from_numpy(x)[None]
        prepare = lambda: {"input_values": values}  # noqa: E731
    context = torch.autocast("cpu", dtype=torch.bfloat16) if bf16 else contextlib.nullcontext()
    with torch.inference_mode(), context:
        model(**prepare())
        times = []
        for _ in range(runs):
            start = time.perf_counter()
            model(**prepare())
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def torch_int8(model):
    """transformers with dynamic int8 quantization of its Linear layers (torch.ao.quantization.quantize_dynamic)."""
    import copy
    return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)


def onnx_int8(directory):
    """ONNX Runtime on the dynamically quantized (int8) export of the same model."""
    from onnxruntime.quantization import QuantType, quantize_dynamic
    path = os.path.join(directory, "model.onnx")
    quantized = os.path.join(directory, "model.int8.onnx")
    if not os.path.exists(quantized):
        quantize_dynamic(path, quantized, weight_type=QuantType.QInt8)
    return quantized


def time_onnx(model, directory, x, runs, threads, int8=False):
    import onnxruntime as ort
    path = os.path.join(directory, "model.onnx")
    if not os.path.exists(path):
        torch.onnx.export(model, (torch.from_numpy(x)[None],), path, input_names=["input_values"],
                          output_names=["logits"], dynamic_axes={"input_values": {1: "samples"}, "logits": {1: "frames"}},
                          opset_version=17, dynamo=False)
    if int8:
        path = onnx_int8(directory)
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


def time_ours(asr, directory, seconds, runs, threads, attention=None, precision="fp32"):
    env = dict(os.environ, ASR_ATTENTION=attention) if attention else None
    out = subprocess.run([asr, "bench", "--model", directory, "--seconds", str(seconds), "--runs", str(runs),
                          "--threads", str(threads), "--precision", precision],
                         check=True, capture_output=True, text=True, env=env).stdout
    median = float(re.search(r"median: ([0-9.]+) s", out).group(1))
    peak = re.search(r"peak RSS: ([0-9.]+) MB", out)
    # The whole pass at this CPU's measured peaks (every product at the peak of its format, everything else free):
    # no kernel beats it, so it bounds what any tuning can reach.
    limit = re.search(r"whole pass at the measured peaks: ([0-9.]+) s", out)
    return median, float(peak.group(1)) if peak else None, float(limit.group(1)) if limit else None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--asr", default=os.path.join(ROOT, ".build", "release", "asr"))
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "asr-full-size"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=float, nargs="+", default=[10, 30])
    parser.add_argument("--models", nargs="+", default=["base", "large"], choices=list(NAMES))
    parser.add_argument("--no-onnx", action="store_true")
    parser.add_argument("--no-torch-bf16", action="store_true",
                        help="skip transformers' bf16 autocast (on CPUs without AVX512_BF16 torch emulates it: ~25x slower)")
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16", "int8"],
                        help="our precisions to time (asr bench --precision)")
    parser.add_argument("--blas-attention", action="store_true",
                        help="also time our binary with ASR_ATTENTION=blas (attention as two sgemm calls and a softmax "
                             "per head instead of the fused kernel), to show what the fused kernel gains")
    parser.add_argument("--rounds", type=int, default=3,
                        help="engines take turns this many times; the table shows the median over rounds of each "
                             "engine's median (this machine's speed drifts by 10-20 %% over minutes)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    engines = ["transformers fp32"] + ([] if args.no_torch_bf16 else ["transformers bf16"]) + ["transformers int8"]
    if not args.no_onnx:
        engines += ["onnxruntime fp32", "onnxruntime int8"]
    ours_engines = [f"asr {p}" for p in args.precisions]
    if args.blas_attention:
        ours_engines.append("asr fp32, BLAS attention")
    rows = []
    for key in args.models:
        directory = os.path.join(args.work, NAMES[key])
        build(NAMES[key], directory)
        model = AutoModelForCTC.from_pretrained(directory).eval()
        quantized = torch_int8(model)
        for seconds in args.seconds:
            x = audio(seconds)
            # (w2v-BERT has no raw-sample ONNX export to compare with.)
            peers = [e for e in engines if not (e.startswith("onnxruntime") and key.startswith("w2v-bert"))]
            times = {name: [] for name in peers + ours_engines}
            peaks = {name: [] for name in ours_engines}
            limits = {name: [] for name in ours_engines}
            for round_number in range(args.rounds):
                # Engines take turns within each round, so drift in the machine's speed hits them alike.
                for precision in args.precisions:
                    median, peak, limit = time_ours(args.asr, directory, seconds, args.runs, args.threads, precision=precision)
                    times[f"asr {precision}"].append(median)
                    peaks[f"asr {precision}"].append(peak)
                    limits[f"asr {precision}"].append(limit)
                if args.blas_attention:
                    times["asr fp32, BLAS attention"].append(
                        time_ours(args.asr, directory, seconds, args.runs, args.threads, "blas")[0])
                times["transformers fp32"].append(time_torch(model, x, args.runs))
                if not args.no_torch_bf16:
                    times["transformers bf16"].append(time_torch(model, x, args.runs, bf16=True))
                try:
                    times["transformers int8"].append(time_torch(quantized, x, args.runs))
                except Exception as error:  # quantize_dynamic breaks some models (WavLM reads q_proj.bias directly)
                    print(f"{key}: transformers int8 failed: {type(error).__name__}: {error}", flush=True)
                    times["transformers int8"].append(float("nan"))
                if not args.no_onnx and "onnxruntime fp32" in times:
                    times["onnxruntime fp32"].append(time_onnx(model, directory, x, args.runs, args.threads))
                    times["onnxruntime int8"].append(time_onnx(model, directory, x, args.runs, args.threads, int8=True))
                print(f"{key} {seconds:.0f}s round {round_number + 1}: "
                      + ", ".join(f"{name} {t[-1]:.3f} s" for name, t in times.items()), flush=True)
            medians = {name: statistics.median(t) for name, t in times.items() if not any(v != v for v in t)}
            fastest_peer = min((name for name in peers if name in medians), key=lambda name: medians[name])
            rows.append((key, seconds, medians, fastest_peer,
                         {name: max(p) for name, p in peaks.items() if p and None not in p},
                         {name: statistics.median(v) for name, v in limits.items() if v and None not in v}))
    print(f"threads: {args.threads}, runs: {args.runs} per round, rounds: {args.rounds} (median of medians), "
          f"torch {torch.__version__}")
    for key, seconds, medians, fastest_peer, peaks, limits in rows:
        print(f"\n{key}, {seconds:.0f} s of audio: RTF (processing seconds / audio seconds)")
        print(f"  {'engine':28s} {'RTF':>8s} {'vs fastest peer':>16s} {'peak RSS':>9s}")
        for name, t in medians.items():
            ratio = medians[fastest_peer] / t
            mark = " (fastest peer)" if name == fastest_peer else ""
            peak = f"{peaks[name]:7.0f} MB" if name in peaks else ""
            print(f"  {name:28s} {t / seconds:8.4f} {ratio:15.2f}× {peak:>9s}{mark}")
        # Ours with every product at the CPU's measured peak and everything else free: the most any tuning could give.
        for name, limit in limits.items():
            print(f"  {name + ' at the peaks (limit)':28s} {limit / seconds:8.4f} {medians[fastest_peer] / limit:15.2f}×"
                  f"  ({100 * limit / medians[name]:.0f} % of peak reached)")


if __name__ == "__main__":
    main()
