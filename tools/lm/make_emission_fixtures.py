#!/usr/bin/env python3
"""Writes fixtures/emissions/: 24 emission matrices of the built-in model on corpus utterances (from
tools/lm/compare_pyctcdecode.py's work directory) and pyctcdecode's best hypothesis for each under three decoder
configurations, for the Swift parity test (Tests/ASRKitTests/BeamSearchParityTests.swift). Development only; needs
pyctcdecode and kenlm.

    python tools/lm/make_emission_fixtures.py --emissions /tmp/parity
"""
import argparse
import json
import random
import shutil

import numpy as np
from pyctcdecode import build_ctcdecoder

CONFIGS = [
    ("lm", dict(alpha=0.5, beta=1.5), dict(beam_width=32)),
    ("lm-hotwords", dict(alpha=1.0, beta=0.5), dict(beam_width=16, hotwords=["THE", "SEVEN"], hotword_weight=4.0)),
    ("no-lm", None, dict(beam_width=8)),
]


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--emissions", required=True, help="directory of NNNNN.npy from compare_pyctcdecode.py")
    p.add_argument("--count", type=int, default=24)
    args = p.parse_args()
    random.seed(5)
    picks = sorted(random.sample(range(600), args.count))
    vocab = json.load(open("Sources/CBuiltinModel/model/vocab.json"))
    labels = [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])]
    lm = "fixtures/lm/tiny_corpus.lmplz.order3.arpa"
    for i in picks:
        shutil.copy(f"{args.emissions}/{i:05d}.npy", f"fixtures/emissions/builtin_{i:05d}.npy")
    lines = ["# file\tconfig\tpyctcdecode 0.5.0 best hypothesis (kenlm 0.3.0); configs in tools/lm/make_emission_fixtures.py"]
    for name, lm_args, decode_args in CONFIGS:
        decoder = build_ctcdecoder(labels, kenlm_model_path=lm, **lm_args) if lm_args else build_ctcdecoder(labels)
        for i in picks:
            logits = np.load(f"fixtures/emissions/builtin_{i:05d}.npy")
            lines.append(f"builtin_{i:05d}.npy\t{name}\t{decoder.decode_beams(logits, **decode_args)[0][0]}")
    open("fixtures/emissions/pyctcdecode_best.tsv", "w").write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
