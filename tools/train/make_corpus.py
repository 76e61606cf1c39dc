#!/usr/bin/env python3
"""Synthesises the built-in model's speech corpus (development only; the corpus is generated, never committed).

Voices: every English espeak-ng dialect × its voice variants (speed and pitch varied), flite (kal, kal16, awb, rms,
slt) and festival (kal_diphone, ked_diphone, cmu_us_slt_arctic_hts). Augmentation with sox per utterance: pitch
shift (a crude vocal-tract change), tempo, light reverb, telephone band (8 kHz µ-law), gain. Additive noise is added
on the fly during training.

Held out for evaluation: the flite `rms` voice (never in training) and a set of sentences (never in training).

    python tools/train/make_corpus.py --out /data/asr-corpus --train 14000 --eval 300 --jobs 2

Writes OUT/wav/*.wav (16 kHz mono 16-bit) and OUT/train.tsv, OUT/eval_seen.tsv, OUT/eval_heldout.tsv
(path, text, voice, seconds).
"""
import argparse
import os
import random
import subprocess
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor

sys.path.insert(0, os.path.dirname(__file__))
import sentences as S  # noqa: E402

ESPEAK_DIALECTS = ["en-us", "en-gb", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029",
                   "en-us-nyc"]
# Voice variants that still sound like speech (the whisper and robot-effect ones are left out).
ESPEAK_VARIANTS = ["", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "f1", "f2", "f3", "f4", "f5", "klatt",
                   "klatt2", "klatt3", "klatt4", "klatt6", "adam", "Alex", "Alicia", "Andrea", "Andy", "Annie",
                   "aunty", "belinda", "benjamin", "caleb", "david", "Denis", "ed", "edward", "Gene", "gustave",
                   "Henrique", "Hugo", "iven", "iven2", "Jacky", "john", "Lee", "linda", "marcelo", "Marco", "max",
                   "Michael", "michel", "Mike", "Mr", "Nguyen", "norbert", "pablo", "paul", "pedro", "quincy", "rob",
                   "robert", "sandro", "shelby", "steph", "travis", "victor", "zac", "grandma", "grandpa", "croak"]
FLITE_TRAIN = ["kal", "kal16", "awb", "slt"]
FESTIVAL = ["kal_diphone", "ked_diphone", "cmu_us_slt_arctic_hts"]
HELDOUT_VOICE = ("flite", "rms")


def pick_voice(rng):
    family = rng.choices(["espeak", "flite", "festival"], weights=[0.45, 0.30, 0.25])[0]
    if family == "espeak":
        variant = rng.choice(ESPEAK_VARIANTS)
        return ("espeak", rng.choice(ESPEAK_DIALECTS) + ("+" + variant if variant else ""))
    if family == "flite":
        return ("flite", rng.choice(FLITE_TRAIN))
    return ("festival", rng.choice(FESTIVAL))


def synthesize(voice, text, path, rng):
    family, name = voice
    words = text.lower()
    if family == "espeak":
        subprocess.run(["espeak-ng", "-v", name, "-s", str(rng.randint(130, 210)), "-p", str(rng.randint(25, 75)),
                        "-w", path, words], check=True, capture_output=True)
    elif family == "flite":
        subprocess.run(["flite", "-voice", name, "--setf", f"duration_stretch={rng.uniform(0.85, 1.2):.2f}",
                        "-t", words, "-o", path], check=True, capture_output=True)
    else:
        stretch = rng.uniform(0.85, 1.2)
        script = path + ".scm"
        with open(script, "w") as f:
            f.write(f"(voice_{name})\n(Parameter.set (quote Duration_Stretch) {stretch:.2f})\n"
                    f"(utt.save.wave (utt.synth (Utterance Text \"{words}\")) \"{path}\" (quote riff))\n")
        subprocess.run(["festival", "--batch", script], check=True, capture_output=True)
        if not os.path.exists(path):
            raise subprocess.CalledProcessError(1, ["festival", name], stderr=b"no output")


def augment_chain(rng, clean):
    """sox effects after synthesis: resample to 16 kHz mono, then (unless clean) random perturbations."""
    effects = []
    if not clean:
        if rng.random() < 0.5:
            effects += ["pitch", str(rng.randint(-300, 300))]
        if rng.random() < 0.3:
            effects += ["tempo", "-s", f"{rng.uniform(0.88, 1.12):.3f}"]
        if rng.random() < 0.2:
            effects += ["reverb", str(rng.randint(10, 50)), "50", str(rng.randint(20, 60))]
    effects += ["rate", "16000"]
    telephone = not clean and rng.random() < 0.12
    return effects, telephone


def render(job):
    try:
        return render_one(job)
    except subprocess.CalledProcessError as e:
        print(f"failed: {job[2]} {job[1]!r}: {e.cmd[:3]}... {e.stderr.decode(errors='replace')[-300:]}",
              file=sys.stderr, flush=True)
        return None


def render_one(job):
    index, text, voice, clean, out_dir, seed = job
    rng = random.Random(seed)
    name = f"{index:06d}.wav"
    path = os.path.join(out_dir, "wav", name)
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.wav")
        synthesize(voice, text, raw, rng)
        effects, telephone = augment_chain(rng, clean)
        gain = ["gain", "-n", str(-rng.uniform(1, 12) if not clean else -3)]
        if telephone:
            tel = os.path.join(tmp, "tel.wav")
            subprocess.run(["sox", raw, "-r", "8000", "-c", "1", "-e", "u-law", tel, "sinc", "300-3400", "rate", "8000"]
                           + [], check=True, capture_output=True)
            raw = tel
        subprocess.run(["sox", raw, "-c", "1", "-b", "16", "-e", "signed", path] + effects + gain + ["pad", "0.1", "0.1"],
                       check=True, capture_output=True)
    seconds = float(subprocess.run(["soxi", "-D", path], check=True, capture_output=True, text=True).stdout)
    return (f"wav/{name}", text, f"{voice[0]}:{voice[1]}", f"{seconds:.3f}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", required=True)
    parser.add_argument("--train", type=int, default=14000)
    parser.add_argument("--eval", type=int, default=300)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--seed", type=int, default=1234)
    args = parser.parse_args()
    os.makedirs(os.path.join(args.out, "wav"), exist_ok=True)
    words = S.common_words()
    eval_sentences = S.SentenceGenerator(args.seed + 1, words).sentences(args.eval)
    train_sentences = S.SentenceGenerator(args.seed, words).sentences(args.train, exclude=frozenset(eval_sentences))
    rng = random.Random(args.seed)

    jobs = {"train": [], "eval_seen": [], "eval_heldout": []}
    index = 0
    for text in train_sentences:
        jobs["train"].append((index, text, pick_voice(rng), False, args.out, rng.randrange(1 << 30)))
        index += 1
    for text in eval_sentences:   # seen voices, unseen sentences, clean
        jobs["eval_seen"].append((index, text, pick_voice(rng), True, args.out, rng.randrange(1 << 30)))
        index += 1
    for text in eval_sentences:   # the held-out voice, same unseen sentences, clean
        jobs["eval_heldout"].append((index, text, HELDOUT_VOICE, True, args.out, rng.randrange(1 << 30)))
        index += 1

    with ProcessPoolExecutor(args.jobs) as pool:
        for split, split_jobs in jobs.items():
            rows = [r for r in pool.map(render, split_jobs, chunksize=16) if r is not None]
            with open(os.path.join(args.out, f"{split}.tsv"), "w") as f:
                for row in rows:
                    f.write("\t".join(row) + "\n")
            hours = sum(float(r[3]) for r in rows) / 3600
            print(f"{split}: {len(rows)} utterances ({len(split_jobs) - len(rows)} failed), {hours:.2f} h", flush=True)


if __name__ == "__main__":
    main()
