#!/usr/bin/env python3
"""Parity of `asr decode` (our CTC beam search with an ARPA LM) with pyctcdecode + kenlm on the same emissions.

Development tool, not part of `swift test`. Needs pyctcdecode and the kenlm Python module (pip install pyctcdecode
kenlm). Emissions come from `asr logits` on the audio files of a corpus TSV (path<TAB>text...), so both decoders see
exactly the same numbers.

    python tools/lm/compare_pyctcdecode.py --asr .build/release/asr --lm /work/lm/train3.arpa \
        --tsv /work/corpus/eval_seen.tsv --tsv /work/corpus/eval_heldout.tsv --work /tmp/parity
"""
import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--asr", required=True)
    p.add_argument("--model", help="model directory (default: the built-in model)")
    p.add_argument("--vocab", help="vocab.json (default: the model's, or the built-in model's)")
    p.add_argument("--lm", help="ARPA file (omit: beam search without LM)")
    p.add_argument("--tsv", action="append", required=True)
    p.add_argument("--work", required=True)
    p.add_argument("--limit", type=int, default=0)
    p.add_argument("--beam", type=int, default=32)
    p.add_argument("--alpha", type=float, default=0.5)
    p.add_argument("--beta", type=float, default=1.5)
    p.add_argument("--hotword", action="append", default=[])
    p.add_argument("--hotword-weight", type=float, default=10.0)
    args = p.parse_args()

    from pyctcdecode import build_ctcdecoder

    os.makedirs(args.work, exist_ok=True)
    rows = []
    for tsv in args.tsv:
        base = os.path.dirname(tsv)
        for line in open(tsv):
            fields = line.rstrip("\n").split("\t")
            rows.append(os.path.join(base, fields[0]))
    if args.limit:
        rows = rows[: args.limit]
    model_args = ["--model", args.model] if args.model else []

    npys = []
    for i, audio in enumerate(rows):
        out = os.path.join(args.work, f"{i:05d}.npy")
        if not os.path.exists(out):
            subprocess.run([args.asr, "logits", audio, "-o", out] + model_args, check=True)
        npys.append(out)

    vocab_path = args.vocab or os.path.join(args.model or "Sources/CBuiltinModel/model", "vocab.json")
    vocab = json.load(open(vocab_path))
    labels = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    decoder = build_ctcdecoder(labels, kenlm_model_path=args.lm, alpha=args.alpha, beta=args.beta)

    ours_cmd = [args.asr, "decode", "--beam", str(args.beam), "--alpha", str(args.alpha), "--beta", str(args.beta)] + model_args
    if args.lm:
        ours_cmd += ["--lm", args.lm]
    for h in args.hotword:
        ours_cmd += ["--hotword", f"{h}:{args.hotword_weight}"]
    started = time.time()
    out = subprocess.run(ours_cmd + npys, check=True, capture_output=True, text=True).stdout
    ours_seconds = time.time() - started
    ours = {}
    for line in out.splitlines():
        path, _, text = line.partition("\t")
        ours[path] = text

    same = 0
    theirs_seconds = 0.0
    differences = []
    for npy in npys:
        logits = np.load(npy)
        started = time.time()
        beams = decoder.decode_beams(logits, beam_width=args.beam, hotwords=args.hotword or None,
                                     hotword_weight=args.hotword_weight)
        theirs_seconds += time.time() - started
        theirs = beams[0][0]
        if theirs == ours[npy]:
            same += 1
        else:
            differences.append((npy, ours[npy], theirs))
    for npy, a, b in differences[:20]:
        print(f"DIFF {npy}\n  ours:        {a}\n  pyctcdecode: {b}")
    print(f"identical best hypotheses: {same}/{len(npys)} ({100 * same / len(npys):.1f} %)")
    print(f"decoding time: ours {ours_seconds:.2f} s (one process, model load included), pyctcdecode {theirs_seconds:.2f} s")


if __name__ == "__main__":
    main()
