#!/usr/bin/env python3
"""Golden paths of torchaudio's CTC forced alignment, for the tests of CTCViterbi (fixtures/align/viterbi_golden.json).

Run once in a venv with torch 2.8 and torchaudio 2.8 (forced_align was removed in torchaudio 2.9):
    python tools/align/make_goldens.py fixtures/align/viterbi_golden.json
Cases: random log-softmax emissions of several sizes; targets with repeated tokens; transcripts that exactly fill
the frames (T = L + repeats: no room for a blank); emissions rounded to a coarse grid so that many scores tie (the
tie-breaking rules are then what decides the path); one class of a target made unlikely everywhere. Values are
float32, written with 9 significant digits (they read back to the same float32).
"""
import json
import sys

import torch
import torchaudio.functional as F


def case(name, log_probs, targets, blank):
    paths, scores = F.forced_align(log_probs.unsqueeze(0), torch.tensor([targets], dtype=torch.int32), blank=blank)
    return {
        "name": name,
        "frames": log_probs.shape[0],
        "classes": log_probs.shape[1],
        "blank": blank,
        "targets": targets,
        "log_probs": [float("%.9g" % v) for v in log_probs.flatten().tolist()],
        "path": paths[0].tolist(),
    }


def main(out):
    g = torch.Generator().manual_seed(20261205)
    cases = []
    for i, (T, C, L) in enumerate([(12, 5, 3), (30, 8, 10), (50, 6, 20), (80, 12, 30), (120, 32, 40), (200, 29, 60)]):
        for variant in ("random", "repeats", "ties", "tight"):
            logits = torch.randn(T, C, generator=g) * 3
            if variant == "ties":
                logits = torch.round(logits)  # coarse: many exact ties after log-softmax of equal rows
            log_probs = torch.log_softmax(logits, dim=-1).float()
            if variant == "ties":
                log_probs = torch.round(log_probs * 2) / 2
            blank = 0 if i % 2 == 0 else C - 1
            choices = [c for c in range(C) if c != blank]
            length = L
            targets = [choices[int(torch.randint(len(choices), (1,), generator=g))] for _ in range(length)]
            if variant == "repeats":
                for k in range(1, length, 3):
                    targets[k] = targets[k - 1]
            if variant == "tight":
                repeats = sum(1 for k in range(1, length) if targets[k] == targets[k - 1])
                T2 = length + repeats
                log_probs = log_probs[:T2].contiguous()
            cases.append(case(f"{variant}-T{log_probs.shape[0]}-C{C}-L{length}", log_probs.contiguous(), targets, blank))
    # A single token, a single frame, and all frames equal (every choice a tie).
    cases.append(case("one-frame", torch.log_softmax(torch.randn(1, 4, generator=g), -1), [2], 0))
    cases.append(case("all-equal", torch.full((10, 5), -1.6094379425048828), [1, 2, 2, 3], 0))
    cases.append(case("blank-last-class", torch.log_softmax(torch.randn(9, 4, generator=g), -1), [0, 1, 0], 3))
    with open(out, "w") as f:
        json.dump({"generator": "torchaudio %s forced_align (tools/align/make_goldens.py)" % __import__("torchaudio").__version__,
                   "cases": cases}, f, separators=(",", ":"))
        f.write("\n")
    print(f"{len(cases)} cases -> {out}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "fixtures/align/viterbi_golden.json")
