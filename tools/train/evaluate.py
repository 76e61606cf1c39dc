#!/usr/bin/env python3
"""Evaluates the built-in model on the held-out sets of the synthetic corpus: CER and WER per voice and per engine
family, for our Swift engine (`asr`), transformers (same checkpoint), and pocketsphinx (PyPI, its bundled en-us
model and language model). Also reports how often our transcripts equal transformers'. Development only.

    python tools/train/evaluate.py --corpus /work/corpus [--asr .build/release/asr]
        [--model Sources/CBuiltinModel/model] [--no-pocketsphinx] [--limit N]
"""
import argparse
import collections
import csv
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import soundfile as sf
import torch
from transformers import Wav2Vec2ForCTC

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train import edit_distance, greedy, normalize  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def rows(corpus, split, limit):
    out = []
    with open(os.path.join(corpus, f"{split}.tsv")) as f:
        for path, text, voice, seconds in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            out.append({"path": os.path.join(corpus, path), "text": text, "voice": voice, "split": split})
    return out[:limit] if limit else out


def ours(asr, model, items, extra=()):
    with tempfile.TemporaryDirectory() as tmp:
        listing = os.path.join(tmp, "in")
        os.makedirs(listing)
        for i, item in enumerate(items):
            os.symlink(item["path"], os.path.join(listing, f"{i:05d}.wav"))
        manifest = os.path.join(tmp, "m.jsonl")
        command = [asr, "transcribe", listing, "-o", os.path.join(tmp, "out"), "--jsonl", manifest, "--quiet"]
        if model:
            command += ["--model", model]
        subprocess.run(command + list(extra), check=False)
        results = {}
        for line in open(manifest):
            entry = json.loads(line)
            results[int(os.path.basename(entry.get("file", entry.get("path", ""))).split(".")[0])] = entry.get("transcript", "")
    return [results.get(i, "") for i in range(len(items))]


def reference(model_dir, items):
    model = Wav2Vec2ForCTC.from_pretrained(model_dir, dtype=torch.float32).eval()
    out = []
    with torch.no_grad():
        for item in items:
            audio, rate = sf.read(item["path"], dtype="int16")
            x = torch.from_numpy(normalize(audio))[None]
            out.append(greedy(model(x).logits[0]))
    return out


def pocketsphinx(items):
    from pocketsphinx import Decoder
    decoder = Decoder(loglevel="FATAL")
    out = []
    for item in items:
        audio, rate = sf.read(item["path"], dtype="int16")
        decoder.start_utt()
        decoder.process_raw(audio.tobytes(), full_utt=True)
        decoder.end_utt()
        hyp = decoder.hyp()
        text = hyp.hypstr.upper() if hyp else ""
        out.append(" ".join(w.split("(")[0] for w in text.replace("<SIL>", " ").split()))
    return out


def rates(pairs):
    chars = sum(edit_distance(h, r) for h, r in pairs) / max(1, sum(len(r) for _, r in pairs))
    words = sum(edit_distance(h.split(), r.split()) for h, r in pairs) / max(1, sum(len(r.split()) for _, r in pairs))
    return chars, words


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--asr", default=os.path.join(ROOT, ".build", "release", "asr"))
    parser.add_argument("--model", default=None, help="model directory for asr (default: its built-in model)")
    parser.add_argument("--reference-model", default=os.path.join(ROOT, "Sources", "CBuiltinModel", "model"))
    parser.add_argument("--no-pocketsphinx", action="store_true")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--lm", help="also decode with this ARPA LM (beam search), e.g. one built from the training sentences")
    parser.add_argument("--beam", type=int, default=32)
    parser.add_argument("--alpha", type=float, default=None)
    parser.add_argument("--beta", type=float, default=None)
    parser.add_argument("--no-reference", action="store_true", help="skip transformers")
    args = parser.parse_args()

    items = rows(args.corpus, "eval_seen", args.limit) + rows(args.corpus, "eval_heldout", args.limit)
    engines = {"asr (ours)": ours(args.asr, args.model, items)}
    if not args.no_reference:
        engines["transformers"] = reference(args.model or args.reference_model, items)
    if args.lm:
        extra = ["--lm", args.lm, "--beam", str(args.beam)]
        if args.alpha is not None:
            extra += ["--alpha", str(args.alpha)]
        if args.beta is not None:
            extra += ["--beta", str(args.beta)]
        engines["asr + LM beam search"] = ours(args.asr, args.model, items, extra)
    if not args.no_pocketsphinx:
        engines["pocketsphinx"] = pocketsphinx(items)

    groups = collections.OrderedDict()
    for i, item in enumerate(items):
        family = item["voice"].split(":")[0]
        keys = ["all", f"{item['split']}", f"{item['split']} / {family}"]
        if item["split"] == "eval_heldout":
            keys.append(f"held-out voice {item['voice']}")
        for key in keys:
            groups.setdefault(key, []).append(i)
    header = f"{'set':42s} {'n':>4s}  " + "  ".join(f"{name:>22s}" for name in engines)
    print(header)
    print(f"{'':42s} {'':>4s}  " + "  ".join(f"{'CER':>10s} {'WER':>11s}" for _ in engines))
    for key, indices in groups.items():
        cells = []
        for name, hyps in engines.items():
            c, w = rates([(hyps[i], items[i]["text"]) for i in indices])
            cells.append(f"{c:10.3f} {w:11.3f}")
        print(f"{key:42s} {len(indices):4d}  " + "  ".join(cells))
    if "transformers" in engines:
        same = sum(a == b for a, b in zip(engines["asr (ours)"], engines["transformers"]))
        print(f"\nour transcripts identical to transformers': {same}/{len(items)} ({same / len(items):.2%})")


if __name__ == "__main__":
    main()
