#!/usr/bin/env python3
"""Forced-alignment accuracy, speed and memory (development only; not part of `swift test`).

Synthetic speech with known word times: festival (kal_diphone) synthesises sentences the built-in model never saw
(tools/train/sentences.py, another seed) at three speaking rates and reports every segment's end, so each word's
true start and end are known; utterances are joined with pauses of 0.3-1.2 s into recordings of 1, 10 and 60
minutes, each with its transcript (one line per utterance).

For each recording: `asr align` (the default exact Viterbi) and torchaudio 2.8's `functional.forced_align` (removed
in 2.9, so it runs from its own venv, --torchaudio-python) on the same emissions (`asr logits`, the same tokens: each
word's letters, the word delimiter between words). Printed: mean |Δ| of word starts and ends against the truth, the
share within 20 ms and 50 ms, wall time and peak RSS (`/usr/bin/time`; torchaudio's is its forced_align process,
emissions loaded from a file, the forward pass not included). Then the confidence of words that are spoken against
words added to the transcript that are not (what the low-confidence flag must separate).

    apt install festival sox
    python3 -m venv /work/venv-ta && /work/venv-ta/bin/pip install torch==2.8.0 torchaudio==2.8.0 numpy
    python3 benchmarks/align.py --asr .build/release/asr --torchaudio-python /work/venv-ta/bin/python [--minutes 1 10 60]

`--word-ends`: the `asr align --word-ends acoustic` experiment (its constants chosen on kal_diphone, measured on
ked_diphone and cmu_us_slt_arctic_hts too, under white noise at -60 and -45 dBFS; README):

    apt install festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts sox
    python3 benchmarks/align.py --asr .build/release/asr --word-ends
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import wave

import numpy as np

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tools", "train"))
import sentences as S  # noqa: E402

RATE = 16000

TORCHAUDIO = r"""
import json, sys, time
import numpy as np, torch, torchaudio.functional as F
logits = torch.from_numpy(np.load(sys.argv[1]))
vocab = json.load(open(sys.argv[2]))
words = open(sys.argv[3]).read().split()
start = time.perf_counter()
log_probs = torch.log_softmax(logits, dim=-1)[None]
tokens, owner = [], []
for i, w in enumerate(words):
    if i: tokens.append(vocab["|"]); owner.append(-1)
    for ch in w.upper():
        if ch in vocab: tokens.append(vocab[ch]); owner.append(i)
path, scores = F.forced_align(log_probs, torch.tensor([tokens], dtype=torch.int32), blank=vocab["<pad>"])
spans = F.merge_tokens(path[0], scores[0].exp())
elapsed = time.perf_counter() - start
times = [[None, None] for _ in words]
for span, who in zip(spans, owner):
    if who < 0: continue
    s, e = span.start * 0.02, span.end * 0.02
    times[who][0] = s if times[who][0] is None else min(times[who][0], s)
    times[who][1] = e if times[who][1] is None else max(times[who][1], e)
json.dump({"seconds": elapsed, "words": times}, sys.stdout)
"""


def festival_utterance(text, stretch, path, voice=None):
    """Synthesises `text` into `path` (16 kHz mono); returns [(word, start, end)] from festival's own segment times."""
    raw = path + ".raw.wav"
    script = f"""
{f"(voice_{voice})" if voice else ""}
(Parameter.set 'Duration_Stretch {stretch})
(set! utt (SynthText "{text}"))
(utt.save.wave utt "{raw}" 'riff)
(mapcar (lambda (s) (format t "%s\\t%s\\t%s\\t%f\\n" (item.name s) (item.feat s "R:SylStructure.parent.parent.id")
                           (item.feat s "R:SylStructure.parent.parent.name") (item.feat s "end")))
        (utt.relation.items utt 'Segment))
"""
    with tempfile.NamedTemporaryFile("w", suffix=".scm", delete=False) as f:
        f.write(script)
    out = subprocess.run(["festival", "-b", f.name], capture_output=True, text=True, check=True).stdout
    os.unlink(f.name)
    subprocess.run(["sox", raw, "-r", str(RATE), "-c", "1", "-b", "16", path], check=True)
    os.unlink(raw)
    words, ids, previous_end = [], [], 0.0
    for line in out.splitlines():
        parts = line.split("\t")
        if len(parts) != 4:
            continue
        item, word, end = parts[1], parts[2], float(parts[3])
        if item != "0":  # a pause belongs to no word
            if ids and ids[-1] == item:
                words[-1] = (word, words[-1][1], end)
            else:
                words.append((word, previous_end, end))
                ids.append(item)
        previous_end = end
    return words


def read_wav(path):
    with wave.open(path) as w:
        assert w.getframerate() == RATE and w.getnchannels() == 1 and w.getsampwidth() == 2
        return np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16)


def write_wav(path, samples):
    with wave.open(path, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(samples.astype(np.int16).tobytes())


def utterances(work, count, seed, voice=None):
    """`count` festival utterances of unseen sentences: (samples, text, [(word, start, end)])."""
    cache = os.path.join(work, "utterances" + (f"-{voice}" if voice else ""))
    os.makedirs(cache, exist_ok=True)
    texts = S.SentenceGenerator(seed, S.common_words()).sentences(count)
    rng = random.Random(seed)
    out = []
    for i, text in enumerate(texts):
        text = re.sub(r"[^a-z' ]", " ", text.lower()).split()
        text = " ".join(text)
        path = os.path.join(cache, f"{i:04d}.wav")
        meta = path + ".json"
        if not os.path.exists(meta):
            stretch = rng.choice([0.85, 1.0, 1.25])
            timed = festival_utterance(text, stretch, path, voice)
            if [w for w, _, _ in timed] != text.split():
                continue  # festival expanded or merged a token: its word times would not match the text
            json.dump({"text": text, "words": timed}, open(meta, "w"))
        if not os.path.exists(meta):
            continue
        m = json.load(open(meta))
        out.append((read_wav(path), m["text"], [tuple(w) for w in m["words"]]))
    return out


def recording(work, pool, minutes, seed):
    """Joins utterances (drawn from `pool`, repeating when needed) with pauses into `minutes` of audio."""
    path = os.path.join(work, f"rec_{minutes:g}min.wav")
    rng = random.Random(seed)
    pieces, lines, truth, t = [], [], [], 0
    while t < minutes * 60 * RATE:
        samples, text, timed = pool[rng.randrange(len(pool))]
        pause = np.zeros(int(rng.uniform(0.3, 1.2) * RATE), dtype=np.int16)
        pieces += [pause, samples]
        t += len(pause)
        truth += [(w, t / RATE + s, t / RATE + e) for w, s, e in timed]
        lines.append(text)
        t += len(samples)
    write_wav(path, np.concatenate(pieces))
    transcript = path[:-4] + ".txt"
    open(transcript, "w", encoding="utf-8").write("\n".join(lines) + "\n")
    return path, transcript, truth


def timed(command):
    """Runs `command` under /usr/bin/time: (stdout, wall seconds, peak RSS MB)."""
    result = subprocess.run(["/usr/bin/time", "-f", "TIME %e %M"] + command, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{command[0]} failed: {result.stderr[-2000:]}")
    wall, rss = re.findall(r"TIME ([0-9.]+) ([0-9]+)", result.stderr)[-1]
    return result.stdout, float(wall), int(rss) / 1024


def accuracy(truth, predicted):
    starts = np.array([abs(p[0] - t[1]) for t, p in zip(truth, predicted)])
    ends = np.array([abs(p[1] - t[2]) for t, p in zip(truth, predicted)])
    both = np.concatenate([starts, ends])
    return (f"mean |Δ| {1000 * both.mean():5.1f} ms (starts {1000 * starts.mean():5.1f}, ends {1000 * ends.mean():5.1f}), "
            f"within 20 ms {100 * (both <= 0.02).mean():5.1f} %, within 50 ms {100 * (both <= 0.05).mean():5.1f} %")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--asr", default=os.path.join(ROOT, ".build", "release", "asr"))
    parser.add_argument("--model", help="a model directory (default: the built-in model)")
    parser.add_argument("--torchaudio-python", help="a python with torch 2.8 and torchaudio 2.8")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "asr-align-bench"))
    parser.add_argument("--minutes", type=float, nargs="+", default=[1, 10, 60])
    parser.add_argument("--torchaudio-max-minutes", type=float, default=30,
                        help="torchaudio's T × (2L + 1) table needs ~4 GB for 30 min: longer recordings skip it")
    parser.add_argument("--utterances", type=int, default=120)
    parser.add_argument("--numbers", action="store_true", help="only the digits-vs-spelled-out experiment")
    parser.add_argument("--word-ends", action="store_true", help="only the --word-ends acoustic experiment")
    args = parser.parse_args()
    if args.word_ends:
        os.makedirs(args.work, exist_ok=True)
        return word_ends_experiment(args, ["--model", args.model] if args.model else [])
    if args.numbers:
        os.makedirs(args.work, exist_ok=True)
        return numbers_experiment(args, ["--model", args.model] if args.model else [])
    os.makedirs(args.work, exist_ok=True)
    model = ["--model", args.model] if args.model else []
    pool = utterances(args.work, args.utterances, seed=20261206)
    print(f"{len(pool)} festival utterances ({sum(len(p[2]) for p in pool)} words)", flush=True)
    vocab_path = os.path.join(args.work, "vocab.json")
    vocab_dir = args.model or os.path.join(ROOT, "Sources", "CBuiltinModel", "model")
    json.dump(json.load(open(os.path.join(vocab_dir, "vocab.json"))), open(vocab_path, "w"))

    for minutes in args.minutes:
        audio, transcript, truth = recording(args.work, pool, minutes, seed=int(minutes * 1000))
        out, wall, rss = timed([args.asr, "align", audio, "--transcript", transcript, "-f", "json"] + model)
        ours = [(w["start"], w["end"]) for w in json.loads(out)["words"]]
        assert len(ours) == len(truth)
        emissions = audio[:-4] + ".npy"
        _, logits_wall, logits_rss = timed([args.asr, "logits", audio, "-o", emissions] + model)
        print(f"\n{minutes:g} min, {len(truth)} words:")
        print(f"  asr align          {accuracy(truth, ours)}; {wall:6.1f} s, {rss:6.0f} MB "
              f"(asr logits alone: {logits_wall:.1f} s, {logits_rss:.0f} MB)", flush=True)
        if args.torchaudio_python and minutes <= args.torchaudio_max_minutes:
            script = os.path.join(args.work, "torchaudio_align.py")
            open(script, "w").write(TORCHAUDIO)
            out, ta_wall, ta_rss = timed([args.torchaudio_python, script, emissions, vocab_path, transcript])
            result = json.loads(out)
            theirs = [tuple(t) for t in result["words"]]
            same = sum(1 for a, b in zip(ours, theirs) if abs(a[0] - b[0]) < 1e-6 and abs(a[1] - b[1]) < 1e-6)
            print(f"  torchaudio 2.8     {accuracy(truth, theirs)}; forced_align {result['seconds']:.1f} s, "
                  f"process {ta_wall:.1f} s, {ta_rss:.0f} MB; identical word times: {same}/{len(truth)}", flush=True)

    # Words added to the transcript that are not spoken: what their confidence looks like beside spoken words'.
    audio, transcript, truth = recording(args.work, pool, 5, seed=7)
    rng = random.Random(3)
    lines = open(transcript).read().rstrip("\n").split("\n")
    extra_words = ["umbrella", "yesterday", "tomorrow", "elephant", "beautiful", "quickly", "seventeen", "garden"]
    for i, line in enumerate(lines):
        words = line.split()
        position = rng.randrange(len(words) + 1)
        lines[i] = " ".join(words[:position] + [rng.choice(extra_words).upper()] + words[position:])
    edited = transcript[:-4] + ".extra.txt"
    open(edited, "w").write("\n".join(lines) + "\n")
    out, _, _ = timed([args.asr, "align", audio, "--transcript", edited, "-f", "json", "-q"] + model)
    words = json.loads(out)["words"]
    spoken = np.array([w["confidence"] for w in words if not w["text"].isupper()])
    added = np.array([w["confidence"] for w in words if w["text"].isupper()])
    flagged_spoken = sum(1 for w in words if not w["text"].isupper() and not w["confident"])
    flagged_added = sum(1 for w in words if w["text"].isupper() and not w["confident"])
    print(f"\nconfidence, 5 min with one unspoken word added to each of its {len(added)} lines:")
    for name, v in (("spoken", spoken), ("added, not spoken", added)):
        print(f"  {name:18s} n={len(v):4d}  median {np.median(v):.3f}  10th pct {np.percentile(v, 10):.3f}  "
              f"90th pct {np.percentile(v, 90):.3f}")
    for threshold in (0.05, 0.1, 0.2, 0.3):
        print(f"  below {threshold:4.2f}: {100 * (added < threshold).mean():5.1f} % of added words, "
              f"{100 * (spoken < threshold).mean():5.1f} % of spoken words")
    print(f"  flagged by asr (\"confident\": false): {flagged_added}/{len(added)} added, {flagged_spoken}/{len(spoken)} spoken")


WORD_END_VOICES = ["kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts"]


def noisy_recording(work, pool, minutes, seed, noise_db):
    """`recording`, with each utterance at a random gain (0 to -12 dB) and white noise at `noise_db` dBFS (RMS) over
    everything: the pauses are not digital silence, as in a real recording."""
    path, transcript, truth = recording(work, pool, minutes, seed)
    samples = read_wav(path).astype(np.float64)
    rng = np.random.default_rng(seed)
    # The gain changes at each pause (runs of exact zeros the recording put between utterances).
    silent = samples == 0
    edges = np.flatnonzero(np.diff(silent.astype(np.int8)) == -1) + 1
    gains = np.ones_like(samples)
    for a, b in zip(np.concatenate([[0], edges]), np.concatenate([edges, [len(samples)]])):
        gains[a:b] = 10 ** (rng.uniform(-12, 0) / 20)
    noise = rng.standard_normal(len(samples)) * 32768 * 10 ** (noise_db / 20)
    noisy = np.clip(samples * gains + noise, -32768, 32767)
    out = path[:-4] + f".noise{-noise_db:g}.wav"
    write_wav(out, noisy)
    return out, transcript, truth


def frame_levels(path, hop=320):
    """dB of each 20 ms frame, as WordEnds.swift's AudioLevels (a final partial frame over its own samples)."""
    x = read_wav(path).astype(np.float64) / 32768
    ms = [(x[i:i + hop] ** 2).mean() for i in range(0, len(x), hop)]
    return 10 * np.log10(np.maximum(np.array(ms), 1e-12))


def extend_ends(words, levels, drop, margin, limit, stride=0.02):
    """The acoustic word-end rule of WordEnds.swift, in Python, for choosing its constants."""
    quiet = np.sort(levels)[len(levels) // 10] + margin
    frames = [(int(round(w[0] / stride)), int(round(w[1] / stride))) for w in words]
    out = []
    for n, (a, e) in enumerate(frames):
        if a >= len(levels) or e <= a:
            out.append(words[n])
            continue
        threshold = max(levels[a:min(e, len(levels))].max() - drop, quiet)
        nxt = frames[n + 1][0] if n + 1 < len(frames) else len(levels)
        stop = min(nxt, e + int(round(limit / stride)), len(levels))
        f = e
        while f < stop and levels[f] >= threshold:
            f += 1
        out.append((words[n][0], f * stride))
    return out


def end_errors(truth, predicted):
    d = np.array([p[1] - t[2] for t, p in zip(truth, predicted)])
    a = np.abs(d)
    return (f"ends: mean |Δ| {1000 * a.mean():5.1f} ms (mean Δ {1000 * d.mean():+6.1f}), within 20 ms "
            f"{100 * (a <= 0.02).mean():5.1f} %, within 50 ms {100 * (a <= 0.05).mean():5.1f} %"), a.mean()


def word_ends_experiment(args, model):
    """Does moving word ends over the frames that still sound like the word (`--word-ends acoustic`) bring them
    closer to the truth? The rule's constants are chosen on one voice (kal_diphone; a sweep of the same rule in
    Python over asr's Viterbi times), then asr itself is measured on every voice, the others held out of the choice,
    at two noise levels. Starts are not changed by the rule."""
    print("word ends: festival voices, 4 min each of unseen sentences, utterances at random gains, white noise")
    results = {}
    for voice in WORD_END_VOICES:
        pool = utterances(os.path.join(args.work, "word-ends"), 80, seed=4242, voice=voice)
        for noise_db in (-60, -45):
            work = os.path.join(args.work, "word-ends-" + voice)
            os.makedirs(work, exist_ok=True)
            audio, transcript, truth = noisy_recording(work, pool, 4, seed=17, noise_db=noise_db)
            runs = {}
            for mode in ("viterbi", "acoustic"):
                out, _, _ = timed([args.asr, "align", audio, "--transcript", transcript, "-f", "json", "-q",
                                   "--word-ends", mode] + model)
                runs[mode] = [(w["start"], w["end"]) for w in json.loads(out)["words"]]
            results[(voice, noise_db)] = (audio, truth, runs)
    # The sweep, on the tuning voice only.
    audio, truth, runs = results[(WORD_END_VOICES[0], -60)]
    levels = frame_levels(audio)
    best = None
    print(f"\nsweep on {WORD_END_VOICES[0]} (noise -60 dBFS), the Viterbi ends: {end_errors(truth, runs['viterbi'])[0]}")
    for drop in (10, 20, 30, 40, 50, 60):
        best_here = None
        for margin in (3, 6, 10, 15):
            for limit in (0.2, 0.3, 0.4, 0.6):
                text, err = end_errors(truth, extend_ends(runs["viterbi"], levels, drop, margin, limit))
                if best is None or err < best[0]:
                    best = (err, drop, margin, limit, text)
                if best_here is None or err < best_here[0]:
                    best_here = (err, margin, limit, text)
        print(f"  drop {drop:2d} dB, best margin {best_here[1]:2d} dB, limit {best_here[2]} s: {best_here[3]}")
    print(f"  best: drop {best[1]} dB, margin {best[2]} dB, limit {best[3]} s: {best[4]}")
    print("\nasr align (WordEnds.swift's constants), every voice:")
    for (voice, noise_db), (audio, truth, runs) in results.items():
        held = "tuning" if voice == WORD_END_VOICES[0] else "held out"
        starts = np.array([abs(p[0] - t[1]) for t, p in zip(truth, runs["acoustic"])]).mean()
        print(f"  {voice:22s} ({held:8s}) noise {noise_db} dBFS, {len(truth)} words; starts |Δ| {1000 * starts:.1f} ms")
        for mode in ("viterbi", "acoustic"):
            print(f"    --word-ends {mode:8s} {end_errors(truth, runs[mode])[0]}")


def numbers_experiment(args, model):
    """Should digits be spelled out for alignment ("280" → TWO HUNDRED AND EIGHTY) where the vocabulary is English
    letters? Sentences with numbers are synthesised from their spelled form (festival says what is written), then
    aligned three times: the number in fullwidth digits (which asr does not spell: the wildcard, what it did before),
    in ASCII digits (what asr does now: spelled out), and spelled out in the transcript (the exact words spoken).
    Compared: the number's own start and end, and the other words'."""
    work = os.path.join(args.work, "numbers")
    os.makedirs(work, exist_ok=True)
    rng = random.Random(11)

    issued = []   # the numbers drawn, in order; a sentence names one by a marker of letters (normalize keeps letters)

    def number(self):
        r = self.rng
        n = r.choice([r.randint(0, 20), r.randint(21, 99), r.randint(100, 999), r.randint(1000, 99999), r.randint(100000, 9999999)])
        issued.append(n)
        index, letters = len(issued) - 1, ""
        while True:
            letters = chr(ord("a") + index % 26) + letters
            index //= 26
            if index == 0:
                break
        return "qzx" + letters + "xzq"

    def marked(match):
        index = 0
        for c in match.group(1).lower():
            index = index * 26 + ord(c) - ord("a")
        n = issued[index]
        return "<%d:%s>" % (n, S.spell_number(n).replace(" ", "_"))

    S.SentenceGenerator.number = number
    # (sentences() upper-cases what it returns)
    texts = [re.sub(r"QZX([A-Z]+)XZQ", marked, t) for t in S.SentenceGenerator(777, S.common_words()).sentences(3000)]
    texts = [t for t in texts if "<" in t][:80]
    pieces, truth_digits, truth_spelled, digit_lines, spelled_lines, is_number = [], [], [], [], [], []
    t = 0
    for i, text in enumerate(texts):
        tokens = text.lower().split()
        spoken, digits, spans = [], [], []   # spans: (first spoken word, count) per digit-transcript token
        for token in tokens:
            m = re.fullmatch(r"<(\d+):([a-z_']+)>[.,!?]*", token)
            words = m.group(2).split("_") if m else [re.sub(r"[^a-z']", "", token)]
            words = [w for w in words if w]
            if not words:
                continue
            spans.append((len(spoken), len(words), bool(m)))
            digits.append(m.group(1) if m else words[0])
            spoken += words
        path = os.path.join(work, f"{i:03d}.wav")
        meta = path + ".json"
        if not os.path.exists(meta):
            said = festival_utterance(" ".join(spoken), 1.0, path)
            if [w for w, _, _ in said] != spoken:
                continue
            json.dump(said, open(meta, "w"))
        if not os.path.exists(meta):
            continue
        said = json.load(open(meta))
        samples = read_wav(path)
        pause = np.zeros(int(rng.uniform(0.3, 1.0) * RATE), dtype=np.int16)
        pieces += [pause, samples]
        t += len(pause)
        offset = t / RATE
        for first, count, numeric in spans:
            truth_digits.append((said[first][1] + offset, said[first + count - 1][2] + offset))
            is_number.append(numeric)
        truth_spelled += [(s + offset, e + offset) for _, s, e in said]
        digit_lines.append(" ".join(digits))
        spelled_lines.append(" ".join(spoken))
        t += len(samples)
    audio = os.path.join(work, "numbers.wav")
    write_wav(audio, np.concatenate(pieces))
    results = {}
    fullwidth = [" ".join("".join(chr(ord(c) + 0xFEE0) for c in w) if w.isdigit() else w for w in line.split()) for line in digit_lines]
    for name, lines in (("wildcard", fullwidth), ("digits", digit_lines), ("spelled out", spelled_lines)):
        transcript = os.path.join(work, name.split()[0] + ".txt")
        # (UTF-8: fullwidth digits)
        open(transcript, "w").write("\n".join(lines) + "\n")
        out, _, _ = timed([args.asr, "align", audio, "--transcript", transcript, "-f", "json", "-q"] + model)
        results[name] = json.loads(out)["words"]
    # Map the spelled alignment back onto the digit transcript's tokens (a number = its words' union).
    spelled_words = results["spelled out"]
    mapped, k = [], 0
    for line in digit_lines:
        for token in line.split():
            if token.isdigit():
                count = len(S.spell_number(int(token)).split())
            else:
                count = 1
            words = spelled_words[k:k + count]
            mapped.append((words[0]["start"], words[-1]["end"]))
            k += count
    rows = [("fullwidth digits: the wildcard", [(w["start"], w["end"]) for w in results["wildcard"]]),
            ("ASCII digits: spelled by asr", [(w["start"], w["end"]) for w in results["digits"]]),
            ("spelled in the transcript", mapped)]
    flagged = sum(1 for w, n in zip(results["wildcard"], is_number) if n and not w["confident"])
    print(f"\nnumbers, {len(digit_lines)} sentences, {sum(is_number)} numbers (festival says them spelled out):")
    for name, predicted in rows:
        numbers = [(tr, p) for tr, p, n in zip(truth_digits, predicted, is_number) if n]
        others = [(tr, p) for tr, p, n in zip(truth_digits, predicted, is_number) if not n]
        def err(pairs):
            e = np.array([abs(p[0] - tr[0]) for tr, p in pairs] + [abs(p[1] - tr[1]) for tr, p in pairs])
            return f"{1000 * e.mean():6.1f} ms mean, {100 * (e <= 0.05).mean():5.1f} % within 50 ms"
        print(f"  {name:31s} numbers: {err(numbers)};  other words: {err(others)}")
    print(f"  numbers through the wildcard flagged \"confident\": false: {flagged}/{sum(is_number)}")


if __name__ == "__main__":
    main()
