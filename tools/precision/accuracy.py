#!/usr/bin/env python3
"""Accuracy of the reduced precisions (development only; needs torch, transformers, soundfile).

For `asr --precision bf16|int8` and, on the same input, transformers' own reduced precisions (bf16 autocast:
torch.autocast("cpu", dtype=torch.bfloat16); int8: torch.ao.quantization.quantize_dynamic on the Linear layers),
each measured against the same engine's fp32:

1. Logits, on every fixture checkpoint (fixtures/models/*, their input_values.npy) and on the full-size random
   models of benchmarks/compare.py (base-960h and large-960h-lv60-self architectures, on synthetic speech): the share
   of frames whose argmax differs from fp32, and max |Δlogit|.
2. Transcripts, on the built-in model's evaluation sets (tools/train/make_corpus.py --train 0: 300 seen-voice and
   300 held-out-voice sentences): CER and WER per precision, and how many transcripts change against fp32.

    python tools/precision/accuracy.py [--asr .build/release/asr] [--corpus DIR] [--full-size DIR] [--limit N]
"""
import argparse
import glob
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import soundfile as sf
import torch
from transformers import AutoModelForCTC

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "train"))
sys.path.insert(0, os.path.join(ROOT, "tools"))
from evaluate import ours, rates, rows  # noqa: E402
from train import greedy, normalize  # noqa: E402

PRECISIONS = ["bf16", "int8"]


def torch_int8(model):
    """transformers' dynamic int8: quantize_dynamic of the Linear layers (a quantized copy; done once per model)."""
    import copy
    return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)


def torch_logits(model, x, precision):
    """transformers' logits for normalised input x: `model` as given (fp32 or already quantized), or bf16 autocast."""
    context = torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16" else torch.autocast("cpu", enabled=False)
    with torch.inference_mode(), context:
        return model(torch.from_numpy(x)[None]).logits[0].float().numpy()


def our_logits(asr, model_dir, x, precision, tmp):
    """Our logits for normalised input x (written as a float WAV; our own normalisation of it changes ~1e-7)."""
    wav = os.path.join(tmp, "input.wav")
    sf.write(wav, x, 16000, subtype="FLOAT")
    out = os.path.join(tmp, f"{precision}.npy")
    # One pass, as transformers runs it (the inputs here are at most a minute long).
    subprocess.run([asr, "logits", wav, "--model", model_dir, "--precision", precision, "-o", out,
                    "--chunk-seconds", "3600", "--stride-seconds", "1"], check=True, capture_output=True)
    return np.load(out)


def compare(reference, other):
    frames = min(len(reference), len(other))
    reference, other = reference[:frames], other[:frames]
    changed = float(np.mean(reference.argmax(-1) != other.argmax(-1))) if frames else 0.0
    return changed, float(np.abs(reference - other).max()) if frames else 0.0


def synthetic_speech(seconds):
    text = ("the quick brown fox jumps over the lazy dog while seven wizards quietly judge the boxing match "
            "and a large fawn jumped quickly over white zinc boxes")
    with tempfile.TemporaryDirectory() as tmp:
        raw, wav = os.path.join(tmp, "raw.wav"), os.path.join(tmp, "speech.wav")
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", raw, text], check=True)
        subprocess.run(["sox", raw, "-r", "16000", "-c", "1", "-b", "16", wav, "pad", "0", str(seconds),
                        "trim", "0", str(seconds)], check=True)
        audio, _ = sf.read(wav, dtype="int16")
    return normalize(audio)


def logits_table(args):
    cases = []
    for directory in sorted(glob.glob(os.path.join(ROOT, "fixtures", "models", "*"))):
        values = os.path.join(directory, "input_values.npy")
        if not os.path.exists(values):  # w2v-BERT fixtures take filterbank features (input_features.npy): not here
            continue
        cases.append((os.path.basename(directory), directory, np.load(values).reshape(-1)))
    if args.full_size:
        from compare_full_size import build
        x = synthetic_speech(10)
        for name in ["base-960h", "large-960h-lv60-self"]:
            directory = os.path.join(args.full_size, name)
            build(name, directory)
            cases.append((f"{name} (full size, random)", directory, x))
    print("\n## Logits against the same engine's fp32\n")
    print("| checkpoint | frames | asr fp32 vs transformers fp32 (max abs) | "
          + " | ".join(f"asr {p}: argmax changed, max abs | transformers {p}: argmax changed, max abs" for p in PRECISIONS)
          + " |")
    print("|---|---|---|" + "---|---|" * len(PRECISIONS))
    worse = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, directory, x in cases:
            x = x.astype(np.float32)
            model = AutoModelForCTC.from_pretrained(directory, dtype=torch.float32).eval()
            reference = torch_logits(model, x, "fp32")
            mine = our_logits(args.asr, directory, x, "fp32", tmp)
            cells = [str(len(reference)), f"{np.abs(reference[:len(mine)] - mine[:len(reference)]).max():.2e}"]
            for precision in PRECISIONS:
                ours_changed, ours_delta = compare(mine, our_logits(args.asr, directory, x, precision, tmp))
                try:
                    theirs = torch_int8(model) if precision == "int8" else model
                    theirs_changed, theirs_delta = compare(reference, torch_logits(theirs, x, precision))
                except Exception as error:  # quantize_dynamic breaks WavLM (its attention reads q_proj.bias directly)
                    cells += [f"{ours_changed:.2%}, {ours_delta:.3g}", f"fails ({type(error).__name__})"]
                    continue
                cells += [f"{ours_changed:.2%}, {ours_delta:.3g}", f"{theirs_changed:.2%}, {theirs_delta:.3g}"]
                if ours_changed > theirs_changed or ours_delta > theirs_delta:
                    worse.append(f"{name} {precision}: ours {ours_changed:.2%} / {ours_delta:.3g}, "
                                 f"transformers {theirs_changed:.2%} / {theirs_delta:.3g}")
            print(f"| {name} | " + " | ".join(cells) + " |", flush=True)
    print("\nWhere ours moved more than transformers' own:", "none" if not worse else "")
    for line in worse:
        print("-", line)


def transcript_table(args):
    items = rows(args.corpus, "eval_seen", args.limit) + rows(args.corpus, "eval_heldout", args.limit)
    model_dir = os.path.join(ROOT, "Sources", "CBuiltinModel", "model")
    model = AutoModelForCTC.from_pretrained(model_dir, dtype=torch.float32).eval()
    inputs = [normalize(sf.read(item["path"], dtype="int16")[0]) for item in items]
    engines = {}
    for precision in ["fp32"] + PRECISIONS:
        engines[f"asr {precision}"] = ours(args.asr, None, items, ["--precision", precision])
        theirs = torch_int8(model) if precision == "int8" else model
        engines[f"transformers {precision}"] = [greedy(torch.from_numpy(torch_logits(theirs, x, precision)))
                                                for x in inputs]
    print(f"\n## Built-in model, {len(items)} evaluation sentences (seen and held-out voices)\n")
    print("| engine | CER | WER | transcripts changed vs its fp32 |")
    print("|---|---|---|---|")
    for name, hyps in engines.items():
        cer, wer = rates(list(zip(hyps, [item["text"] for item in items])))
        base = engines[name.replace("bf16", "fp32").replace("int8", "fp32")]
        changed = sum(a != b for a, b in zip(hyps, base))
        print(f"| {name} | {cer:.4f} | {wer:.4f} | {changed}/{len(items)} ({changed / len(items):.1%}) |", flush=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--asr", default=os.path.join(ROOT, ".build", "release", "asr"))
    parser.add_argument("--corpus", help="evaluation corpus of make_corpus.py (skipped when absent)")
    parser.add_argument("--full-size", help="directory for the full-size random models (built if absent)")
    parser.add_argument("--limit", type=int, default=None, help="sentences per evaluation set")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-logits", action="store_true", help="only the transcript table")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}; asr: {subprocess.run([args.asr, 'kernels'], capture_output=True, text=True).stdout.strip()}")
    if not args.no_logits:
        logits_table(args)
    if args.corpus:
        transcript_table(args)


if __name__ == "__main__":
    main()
