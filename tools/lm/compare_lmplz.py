"""Compares `asr lm build` with KenLM's lmplz: builds both models from the same training text, loads both ARPA files
with the kenlm module and reports held-out perplexity (including and excluding OOVs, as KenLM's `query` reports
them), the relative difference, build times, n-gram counts and the largest per-n-gram difference.

    /work/venv/bin/python tools/lm/compare_lmplz.py TRAIN.txt --heldout HELDOUT.txt [--orders 3,4]
    /work/venv/bin/python tools/lm/compare_lmplz.py CORPUS.txt            # every 10th line held out

Development only (needs the kenlm Python module and an lmplz binary). The issue's bar: perplexities within 1 %.
"""
import argparse
import math
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def default_asr():
    for configuration in ("release", "debug"):
        path = os.path.join(ROOT, ".build", configuration, "asr")
        if os.access(path, os.X_OK):
            return path
    return "asr"


def read_lines(path):
    with open(path, encoding="utf-8") as f:
        return f.read().splitlines()


def write_lines(path, lines):
    # A final newline: lmplz drops the </s> of a last line without one.
    with open(path, "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def run_timed(command):
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    return result, time.perf_counter() - start


def build_lmplz(lmplz, order, train, arpa, memory):
    command = [lmplz, "-o", str(order), "-S", memory, "-T", os.path.dirname(arpa), "--text", train, "--arpa", arpa]
    result, seconds = run_timed(command)
    fallback = False
    if result.returncode != 0 and "discount_fallback" in result.stderr:
        fallback = True
        result, seconds = run_timed(command + ["--discount_fallback"])
    if result.returncode != 0:
        sys.exit(f"lmplz failed:\n{result.stderr}")
    return seconds, fallback


def build_ours(asr, order, train, arpa, extra):
    result, seconds = run_timed([asr, "lm", "build", train, "-o", arpa, "--order", str(order)] + extra)
    if result.returncode != 0:
        sys.exit(f"asr lm build failed:\n{result.stderr}")
    if result.stderr.strip():
        print("  asr:", result.stderr.strip().replace("\n", "\n  asr: "))
    return seconds, result.stdout.strip()


def perplexity(model, sentences):
    """KenLM's `query` figures: log10 probabilities of every word and </s>, OOVs included or left out."""
    total, words, oov_total, oovs = 0.0, 0, 0.0, 0
    for sentence in sentences:
        for log10_probability, _, is_oov in model.full_scores(sentence, bos=True, eos=True):
            total += log10_probability
            words += 1
            if is_oov:
                oov_total += log10_probability
                oovs += 1
    including = 10 ** (-total / words)
    excluding = 10 ** (-(total - oov_total) / (words - oovs)) if words > oovs else float("nan")
    return including, excluding, words, oovs


def read_arpa(path):
    entries, section = {}, 0
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.rstrip("\n")
            if line.endswith("-grams:"):
                section = int(line[1:line.index("-")])
            elif section and line and line != "\\end\\":
                fields = line.split("\t")
                entries[fields[1]] = (float(fields[0]), float(fields[2]) if len(fields) > 2 else None)
    return entries


def largest_difference(ours_path, lmplz_path):
    ours, theirs = read_arpa(ours_path), read_arpa(lmplz_path)
    worst = 0.0
    for key, (probability, backoff) in theirs.items():
        if key in ours:
            worst = max(worst, abs(ours[key][0] - probability))
            if backoff is not None and ours[key][1] is not None:
                worst = max(worst, abs(ours[key][1] - backoff))
    return len(set(ours) ^ set(theirs)), worst


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("corpus", help="training text, one sentence per line")
    parser.add_argument("--heldout", help="held-out text (default: every 10th line of the corpus, not trained on)")
    parser.add_argument("--orders", default="3,4")
    parser.add_argument("--asr", default=default_asr(), help="asr binary (default: .build/release or .build/debug)")
    parser.add_argument("--asr-args", default="", help="extra `asr lm build` options, space-separated")
    parser.add_argument("--lmplz", default="/tmp/kenlm-0.3.0/build/bin/lmplz")
    parser.add_argument("--memory", default="2G", help="lmplz -S")
    parser.add_argument("--ngram-diff-limit", type=int, default=5_000_000,
                        help="compare the ARPA files n-gram by n-gram when lmplz's model has at most this many")
    parser.add_argument("--keep", help="directory to keep the split and the models in (default: a temporary one)")
    args = parser.parse_args()

    import kenlm

    lines = read_lines(args.corpus)
    if args.heldout:
        train, heldout = lines, read_lines(args.heldout)
    else:
        train = [line for i, line in enumerate(lines) if i % 10 != 9]
        heldout = [line for i, line in enumerate(lines) if i % 10 == 9]
    heldout = [" ".join(line.split()) for line in heldout if line.split()]

    work = args.keep or tempfile.mkdtemp(prefix="lm-compare-")
    os.makedirs(work, exist_ok=True)
    train_path = os.path.join(work, "train.txt")
    write_lines(train_path, train)
    words = sum(len(line.split()) for line in train)
    print(f"corpus {args.corpus}: {len(train)} training lines, {words} words; {len(heldout)} held-out lines")
    print(f"asr: {args.asr}; lmplz: {args.lmplz}")

    for order in (int(o) for o in args.orders.split(",")):
        ours_path = os.path.join(work, f"ours.order{order}.arpa")
        lmplz_path = os.path.join(work, f"lmplz.order{order}.arpa")
        ours_seconds, summary = build_ours(args.asr, order, train_path, ours_path, args.asr_args.split())
        lmplz_seconds, fallback = build_lmplz(args.lmplz, order, train_path, lmplz_path, args.memory)
        ours_model, lmplz_model = kenlm.Model(ours_path), kenlm.Model(lmplz_path)
        ours_ppl, lmplz_ppl = perplexity(ours_model, heldout), perplexity(lmplz_model, heldout)
        print(f"\norder {order}{' (lmplz needed --discount_fallback)' if fallback else ''}")
        print(f"  ours : {summary}")
        print(f"  build: ours {ours_seconds:.2f} s, lmplz {lmplz_seconds:.2f} s")
        print(f"  held-out: {ours_ppl[2]} tokens (words + </s>), {ours_ppl[3]} OOVs")
        for label, index in (("perplexity including OOVs", 0), ("perplexity excluding OOVs", 1)):
            ours_value, lmplz_value = ours_ppl[index], lmplz_ppl[index]
            relative = (ours_value - lmplz_value) / lmplz_value
            print(f"  {label}: ours {ours_value:.4f}, lmplz {lmplz_value:.4f}, relative difference {relative:+.2e}")
        if sum(1 for _ in open(lmplz_path, encoding="utf-8")) <= args.ngram_diff_limit:
            differing, worst = largest_difference(ours_path, lmplz_path)
            print(f"  n-grams in only one model: {differing}; largest |Δ log10| of probabilities and backoffs: {worst:.2e}")
        if not math.isfinite(ours_ppl[0]):
            sys.exit("our perplexity is not finite")


if __name__ == "__main__":
    main()
