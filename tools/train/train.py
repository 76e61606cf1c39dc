#!/usr/bin/env python3
"""Trains the built-in model: a scaled-down Wav2Vec2ForCTC in the base-960h layout, from scratch, with CTC, on the
synthetic corpus of make_corpus.py. Development only (torch + transformers).

Resumable: each run trains for --minutes of wall time, checkpoints every few minutes and at the end (model,
optimizer, schedule, data order, RNG), and appends its evaluations to tools/train/learning_curve.tsv. Run it again
with the same --work to continue. Uses a CUDA GPU when one is present.

    python tools/train/train.py --corpus /work/corpus --work /work/train --minutes 60
"""
import argparse
import csv
import json
import math
import os
import random
import sys
import time

import numpy as np
import soundfile as sf
import torch
from transformers import Wav2Vec2Config, Wav2Vec2ForCTC

HERE = os.path.dirname(os.path.abspath(__file__))
CURVE = os.path.join(HERE, "learning_curve.tsv")
VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|"] + list("ETAONIHSRDLUMWCFGYPBVK'XJQZ")
CHAR_TO_ID = {c: i for i, c in enumerate(VOCAB)}


def model_config():
    """The base-960h layout (group-norm conv front end, post-LN encoder, same kernels and strides: 20 ms frames),
    scaled down to about 5.6 M parameters. The early conv layers run at 3200-400 frames per second and dominate
    CPU training time (profiled: conv backward+forward ~45 % with 64-128 channels there), so they are narrow;
    dropout masks cost another 13 % and are off (SpecAugment time masking stays as the regulariser)."""
    return Wav2Vec2Config(
        vocab_size=len(VOCAB), pad_token_id=0, bos_token_id=1, eos_token_id=2,
        feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False,
        conv_dim=(32, 64, 64, 128, 128, 256, 256), conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        hidden_size=256, num_hidden_layers=6, num_attention_heads=4, intermediate_size=1024,
        num_conv_pos_embeddings=128, num_conv_pos_embedding_groups=16,
        hidden_dropout=0.0, attention_dropout=0.0, activation_dropout=0.0, feat_proj_dropout=0.0,
        final_dropout=0.0, layerdrop=0.0, mask_time_prob=0.05, mask_time_length=10,
        ctc_loss_reduction="mean", ctc_zero_infinity=True)


def encode(text):
    return [CHAR_TO_ID["|"] if c == " " else CHAR_TO_ID[c] for c in text]


def greedy(logits):
    ids = logits.argmax(-1).tolist()
    out, previous = [], None
    for i in ids:
        if i != previous and i != 0:
            out.append(" " if i == 4 else VOCAB[i])
        previous = i
    return "".join(out).strip()


def edit_distance(a, b):
    row = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        previous, row[0] = row[0], i
        for j, cb in enumerate(b, 1):
            previous, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, previous + (ca != cb))
    return row[-1]


def error_rates(pairs):
    chars = sum(edit_distance(h, r) for h, r in pairs) / max(1, sum(len(r) for _, r in pairs))
    words = sum(edit_distance(h.split(), r.split()) for h, r in pairs) / max(1, sum(len(r.split()) for _, r in pairs))
    return chars, words


def load_split(corpus, name, limit=None):
    rows = []
    with open(os.path.join(corpus, f"{name}.tsv")) as f:
        for path, text, voice, seconds in csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE):
            rows.append((os.path.join(corpus, path), text, voice, float(seconds)))
    return rows[:limit] if limit else rows


def read_audio(path):
    audio, rate = sf.read(path, dtype="int16")
    assert rate == 16000, path
    return audio


def normalize(x):
    x = x.astype(np.float32)
    return (x - x.mean()) / np.sqrt(x.var() + 1e-7)


def augment(x, rng):
    """On-the-fly additive noise (white, pink or brown) at 5-40 dB SNR, and random gain (normalisation undoes it
    for the model, but it changes the noise level relative to the signal)."""
    x = x.astype(np.float32) / 32768
    if rng.random() < 0.4:
        kind = rng.choice(["white", "pink", "brown"])
        noise = rng.standard_normal(len(x)).astype(np.float32)
        if kind != "white":
            spectrum = np.fft.rfft(noise)
            f = np.arange(len(spectrum)) + 1.0
            spectrum /= np.sqrt(f) if kind == "pink" else f
            noise = np.fft.irfft(spectrum, len(x)).astype(np.float32)
        snr = rng.uniform(5, 40)
        power = np.mean(x ** 2) + 1e-10
        noise *= np.sqrt(power / (np.mean(noise ** 2) + 1e-12) / 10 ** (snr / 10))
        x = x + noise
    return x


def batches(rows, seconds_per_batch, rng):
    """Length-sorted batches of about seconds_per_batch audio (little padding, which matters for group norm)."""
    order = list(range(len(rows)))
    rng.shuffle(order)
    out = []
    chunk = 2000
    for start in range(0, len(order), chunk):
        part = sorted(order[start:start + chunk], key=lambda i: rows[i][3])
        batch, longest = [], 0.0
        for i in part:
            longest_next = max(longest, rows[i][3])
            if batch and longest_next * (len(batch) + 1) > seconds_per_batch:
                out.append(batch)
                batch, longest_next = [], rows[i][3]
            batch.append(i)
            longest = longest_next
        if batch:
            out.append(batch)
    rng.shuffle(out)
    return out


def long_batch(rows, by_voice, seconds_per_batch, rng):
    """A batch of long examples: each concatenates utterances of one voice, separated by 0.15-1 s of silence, up to a
    target length of 15-45 s (the same for the whole batch, so padding stays small). Utterances are all under ~10 s;
    without these the model never sees the context length of a 30 s inference chunk, nor pauses between sentences,
    and transcribes long audio much worse than the same sentences one by one (and differently chunked vs one pass)."""
    target = rng.uniform(15, 45)
    voices = list(by_voice)
    examples = []
    for _ in range(max(1, int(seconds_per_batch // target))):
        pool = by_voice[voices[rng.integers(len(voices))]]
        parts, gaps, total = [], [], 0.0
        while total < target:
            i = pool[rng.integers(len(pool))]
            gap = rng.uniform(0.15, 1.0) if parts else 0.0
            parts.append(i)
            gaps.append(gap)
            total += gap + rows[i][3]
        examples.append((parts, gaps))
    return examples


def collate_long(examples, rows, audio, rng):
    waves, texts = [], []
    for parts, gaps in examples:
        pieces = []
        for i, gap in zip(parts, gaps):
            pieces.append(np.zeros(int(gap * 16000), dtype=np.int16))
            pieces.append(audio[i])
        waves.append(normalize(augment(np.concatenate(pieces), rng)))
        texts.append(" ".join(rows[i][1] for i in parts))
    return pad_batch(waves, texts)


def collate(indices, rows, audio, rng, train):
    waves = [normalize(augment(audio[i], rng) if train else audio[i]) for i in indices]
    return pad_batch(waves, [rows[i][1] for i in indices])


def pad_batch(waves, texts):
    length = max(len(w) for w in waves)
    inputs = np.zeros((len(waves), length), dtype=np.float32)
    for k, w in enumerate(waves):
        inputs[k, :len(w)] = w
    labels = [encode(text) for text in texts]
    label_length = max(len(l) for l in labels)
    label_array = np.full((len(labels), label_length), -100, dtype=np.int64)
    for k, l in enumerate(labels):
        label_array[k, :len(l)] = l
    return torch.from_numpy(inputs), torch.from_numpy(label_array)


def evaluate(model, rows, audio, device, limit=None):
    model.eval()
    pairs = []
    with torch.no_grad():
        for i, row in enumerate(rows[:limit] if limit else rows):
            x = torch.from_numpy(normalize(audio[i]))[None].to(device)
            pairs.append((greedy(model(x).logits[0]), row[1]))
    model.train()
    return error_rates(pairs)


def learning_rate(step, peak, warmup, total):
    """Linear warm-up, then cosine decay to 5 % of the peak at `total` steps, flat after."""
    if step < warmup:
        return peak * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return peak * (0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * progress)))


def save_checkpoint(path, state):
    tmp = path + ".tmp"
    torch.save(state, tmp)
    os.replace(tmp, path)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--corpus", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--minutes", type=float, default=60)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--peak-lr", type=float, default=8e-4)
    parser.add_argument("--warmup", type=int, default=800)
    parser.add_argument("--total-steps", type=int, default=12000, help="length of the cosine schedule")
    parser.add_argument("--batch-seconds", type=float, default=90)
    parser.add_argument("--eval-every", type=float, default=10, help="minutes between evaluations")
    parser.add_argument("--eval-limit", type=int, default=100)
    parser.add_argument("--long-fraction", type=float, default=0.0,
                        help="fraction of extra steps on long examples (15-45 s of one voice's utterances with pauses)")
    parser.add_argument("--max-cpu-hours", type=float, default=8.0,
                        help="stop when the process CPU time of all runs together reaches this budget")
    parser.add_argument("--init", default=None,
                        help="without a checkpoint in --work, start from an exported model directory (e.g. "
                             "Sources/CBuiltinModel/model) and its training.json, with a fresh optimizer")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    os.makedirs(args.work, exist_ok=True)
    checkpoint_path = os.path.join(args.work, "checkpoint.pt")

    train_rows = load_split(args.corpus, "train")
    by_voice = {}
    for i, row in enumerate(train_rows):
        by_voice.setdefault(row[2], []).append(i)
    seen_rows = load_split(args.corpus, "eval_seen", args.eval_limit)
    heldout_rows = load_split(args.corpus, "eval_heldout", args.eval_limit)
    t0 = time.time()
    train_audio = [read_audio(r[0]) for r in train_rows]
    seen_audio = [read_audio(r[0]) for r in seen_rows]
    heldout_audio = [read_audio(r[0]) for r in heldout_rows]
    hours = sum(r[3] for r in train_rows) / 3600
    print(f"corpus: {len(train_rows)} utterances, {hours:.2f} h, loaded in {time.time() - t0:.0f} s", flush=True)

    model = Wav2Vec2ForCTC(model_config()).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.peak_lr, betas=(0.9, 0.98), weight_decay=0.01)
    state = {"step": 0, "epoch": 0, "batch_in_epoch": 0, "audio_seconds": 0.0, "train_seconds": 0.0, "seed": 17}
    if not os.path.exists(checkpoint_path) and args.init:
        exported = Wav2Vec2ForCTC.from_pretrained(args.init, dtype=torch.float32)
        model.load_state_dict(exported.state_dict())
        record = json.load(open(os.path.join(args.init, "training.json")))
        state.update(step=record["step"], audio_seconds=record["audio_hours_seen"] * 3600,
                     train_seconds=record["train_minutes"] * 60, epoch=record.get("epoch", 0))
        print(f"initialised from {args.init}: step {state['step']}, {record['audio_hours_seen']} audio hours seen", flush=True)
    if os.path.exists(checkpoint_path):
        saved = torch.load(checkpoint_path, map_location=device, weights_only=False)
        model.load_state_dict(saved["model"])
        optimizer.load_state_dict(saved["optimizer"])
        state = saved["state"]
        print(f"resumed at step {state['step']}, epoch {state['epoch']}, "
              f"{state['audio_seconds'] / 3600:.1f} audio hours seen, {state['train_seconds'] / 60:.0f} min trained", flush=True)
    print(f"parameters: {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M, device {device}, "
          f"threads {torch.get_num_threads()}", flush=True)

    model.train()
    run_audio_start = state["audio_seconds"]
    start = time.time()
    last_eval = start
    last_save = start
    losses = []
    deadline = start + args.minutes * 60

    def checkpoint():
        state["train_seconds"] += time.time() - checkpoint.mark
        checkpoint.mark = time.time()
        # Process CPU time over all threads: the honest "CPU-hours" figure (wall time also counts pauses).
        state["cpu_seconds"] = cpu_spent()
        checkpoint.cpu_mark = time.process_time()
        save_checkpoint(checkpoint_path, {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                                          "state": state, "config": model.config.to_dict()})
    checkpoint.mark = start
    checkpoint.cpu_mark = time.process_time()

    def log_eval():
        seen = evaluate(model, seen_rows, seen_audio, device)
        heldout = evaluate(model, heldout_rows, heldout_audio, device)
        trained = state["train_seconds"] + time.time() - checkpoint.mark
        loss = float(np.mean(losses)) if losses else float("nan")
        line = (f"{trained / 60:.1f}\t{state['step']}\t{state['audio_seconds'] / 3600:.2f}\t{loss:.4f}\t"
                f"{seen[0]:.4f}\t{seen[1]:.4f}\t{heldout[0]:.4f}\t{heldout[1]:.4f}\t{device}")
        new = not os.path.exists(CURVE)
        with open(CURVE, "a") as f:
            if new:
                f.write("train_minutes\tstep\taudio_hours_seen\ttrain_loss\tcer_seen\twer_seen\tcer_heldout\twer_heldout\tdevice\n")
            f.write(line + "\n")
        print("eval: " + line, flush=True)
        losses.clear()

    def cpu_spent():
        return state.get("cpu_seconds", state["train_seconds"] * args.threads) + time.process_time() - checkpoint.cpu_mark

    def budget_left():
        return time.time() < deadline and cpu_spent() < args.max_cpu_hours * 3600

    while budget_left():
        rng = np.random.default_rng(state["seed"] + state["epoch"])
        epoch_batches = batches(train_rows, args.batch_seconds, random.Random(state["seed"] + state["epoch"]))
        while state["batch_in_epoch"] < len(epoch_batches) and budget_left():
            # Long steps are drawn from their own generator (seeded by step) so the regular data order is unchanged.
            long_rng = np.random.default_rng([state["seed"], state["step"]])
            is_long = long_rng.random() < args.long_fraction
            if is_long:
                examples = long_batch(train_rows, by_voice, args.batch_seconds, long_rng)
                inputs, labels = collate_long(examples, train_rows, train_audio, long_rng)
                step_seconds = sum(gap + train_rows[i][3] for parts, gaps in examples for i, gap in zip(parts, gaps))
            else:
                indices = epoch_batches[state["batch_in_epoch"]]
                inputs, labels = collate(indices, train_rows, train_audio, rng, train=True)
                step_seconds = sum(train_rows[i][3] for i in indices)
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(state["step"], args.peak_lr, args.warmup, args.total_steps)
            loss = model(inputs.to(device), labels=labels.to(device)).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
            optimizer.step()
            losses.append(loss.item())
            state["step"] += 1
            if not is_long:
                state["batch_in_epoch"] += 1
            state["audio_seconds"] += step_seconds
            if state["step"] % 25 == 0:
                elapsed = time.time() - start
                print(f"step {state['step']} epoch {state['epoch']} loss {np.mean(losses[-25:]):.3f} "
                      f"lr {optimizer.param_groups[0]['lr']:.2e} {state['audio_seconds'] / 3600:.2f} h seen "
                      f"({(state['audio_seconds'] - run_audio_start) / elapsed:.1f} audio-s/s)", flush=True)
            if time.time() - last_eval > args.eval_every * 60:
                log_eval()
                last_eval = time.time()
            if time.time() - last_save > 300:
                checkpoint()
                last_save = time.time()
        if state["batch_in_epoch"] >= len(epoch_batches):
            state["epoch"] += 1
            state["batch_in_epoch"] = 0
    checkpoint()
    log_eval()
    checkpoint()


if __name__ == "__main__":
    main()
