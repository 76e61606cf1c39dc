"""Writes the language-model test fixtures: fixtures/lm/tiny_corpus.txt (a few hundred varied English sentences from
the training corpus's sentence generator, with a fixed seed, plus lines that exercise tokenisation: an empty line, tabs
and runs of spaces) and the reference models KenLM's lmplz makes from it (fixtures/lm/tiny_corpus.lmplz.orderN.arpa),
which Tests/ASRKitTests/KneserNeyTests.swift compares with `asr lm build`. fixtures/lm/fallback_corpus.txt (its first
dozen lines) is too small for closed-form discounts: its reference is lmplz with --discount_fallback.

    /work/venv/bin/python tools/lm/make_tiny_corpus.py [--lmplz PATH]

Development only: the tests read the committed files and need neither Python nor lmplz.
"""
import argparse
import os
import subprocess
import sys

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "train"))
import sentences as S  # noqa: E402

SEED = 20240607
COUNT = 400


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lmplz", default="/tmp/kenlm-0.3.0/build/bin/lmplz")
    parser.add_argument("--orders", default="3,4")
    args = parser.parse_args()

    lines = S.SentenceGenerator(SEED, S.common_words(5000)).sentences(COUNT)
    # Tokenisation cases lmplz and we must agree on: an empty line is the sentence "<s> </s>"; tabs and runs of
    # spaces separate words like one space.
    lines[100] = ""
    lines[200] = lines[200].replace(" ", "\t", 1).replace(" ", "   ", 1)
    out_dir = os.path.join(ROOT, "fixtures", "lm")
    os.makedirs(out_dir, exist_ok=True)
    corpus = os.path.join(out_dir, "tiny_corpus.txt")
    with open(corpus, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")

    fallback = os.path.join(out_dir, "fallback_corpus.txt")
    with open(fallback, "w", encoding="utf-8") as f:
        f.write("\n".join(lines[:12]) + "\n")

    jobs = [(corpus, int(o)) for o in args.orders.split(",")] + [(fallback, 3)]
    for corpus, order in jobs:
        arpa = corpus[:-len(".txt")] + f".lmplz.order{order}.arpa"
        command = [args.lmplz, "-o", str(order), "--text", corpus, "--arpa", arpa]
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0 and "discount_fallback" in result.stderr:
            # Too little text for this order's closed-form discounts: lmplz's fallback, which is our default too.
            print(f"order {order}: lmplz needs --discount_fallback", file=sys.stderr)
            result = subprocess.run(command + ["--discount_fallback"], capture_output=True, text=True)
        if result.returncode != 0:
            sys.exit(result.stderr)
        print(arpa)


if __name__ == "__main__":
    main()
