#!/usr/bin/env python3
"""Grid over α/β (and beam) for `asr decode` on saved emissions, reporting CER/WER against reference transcripts.
Development only. Emissions: NNNNN.npy from tools/lm/compare_pyctcdecode.py, in the order of the TSV rows.

    python tools/lm/tune.py --asr .build/release/asr --lm lm.arpa --emissions /tmp/parity \
        --tsv /work/corpus/eval_seen.tsv --tsv /work/corpus/eval_heldout.tsv --alpha 0.5 1 1.5 --beta 0 1.5 3
"""
import argparse
import itertools
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "train"))


from evaluate import rates  # noqa: E402  (CER/WER as the evaluation reports them)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--asr", required=True)
    p.add_argument("--lm", required=True)
    p.add_argument("--emissions", required=True)
    p.add_argument("--tsv", action="append", required=True)
    p.add_argument("--alpha", type=float, nargs="+", default=[0.5])
    p.add_argument("--beta", type=float, nargs="+", default=[1.5])
    p.add_argument("--beam", type=int, nargs="+", default=[32])
    args = p.parse_args()
    rows = []
    for tsv in args.tsv:
        for line in open(tsv):
            f = line.rstrip("\n").split("\t")
            rows.append((f[1], f[2].split(":")[0], os.path.basename(tsv)))
    npys = [os.path.join(args.emissions, f"{i:05d}.npy") for i in range(len(rows))]

    def run(extra):
        out = subprocess.run([args.asr, "decode"] + extra + npys, check=True, capture_output=True, text=True).stdout
        texts = {}
        for line in out.splitlines():
            path, _, text = line.partition("\t")
            texts[path] = text
        return [texts[n] for n in npys]

    def report(name, hyps):
        cells = []
        for split in sorted({r[2] for r in rows}):
            c, w = rates([(h, r[0]) for h, r in zip(hyps, rows) if r[2] == split])
            cells.append(f"{split} CER {c:.3f} WER {w:.3f}")
        print(f"{name:28s} " + "   ".join(cells), flush=True)

    report("greedy", run([]))
    for a, b, k in itertools.product(args.alpha, args.beta, args.beam):
        report(f"alpha {a} beta {b} beam {k}", run(["--lm", args.lm, "--alpha", str(a), "--beta", str(b), "--beam", str(k)]))


if __name__ == "__main__":
    main()
