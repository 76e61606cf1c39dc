#!/usr/bin/env python3
"""Exactness at full size (development only; not part of `swift test`).

Builds random models with the exact facebook/wav2vec2-base-960h (94.4 M parameters) and
wav2vec2-large-960h-lv60-self architectures with transformers, runs 10 s of audio through transformers and through
our `asr logits`, and prints max |Δ| of the logits and whether the argmax paths agree.

    swift build -c release
    python tools/compare_full_size.py [--asr .build/release/asr] [--work /tmp/asr-full-size] [--seconds 10]
"""
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np
import soundfile as sf
import torch
from transformers import Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|"] + list("ETAONIHSRDLUMWCFGYPBVK'XJQZ")

ARCHITECTURES = {
    # facebook/wav2vec2-base-960h
    "base-960h": dict(feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False, hidden_size=768,
                      num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
    # facebook/wav2vec2-large-960h-lv60-self
    "large-960h-lv60-self": dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True,
                                 hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                                 intermediate_size=4096),
}


def build(name, directory):
    if os.path.exists(os.path.join(directory, "model.safetensors")):
        return
    torch.manual_seed(0)
    config = Wav2Vec2Config(vocab_size=32, pad_token_id=0, **ARCHITECTURES[name])
    model = Wav2Vec2ForCTC(config).eval()
    with torch.no_grad():  # random heads give near-ties everywhere; spread the logits like a trained model's
        model.lm_head.weight.mul_(50)
    model.save_pretrained(directory)
    with open(os.path.join(directory, "vocab.json"), "w") as f:
        json.dump({t: i for i, t in enumerate(VOCAB)}, f)
    Wav2Vec2CTCTokenizer(os.path.join(directory, "vocab.json")).save_pretrained(directory)
    Wav2Vec2FeatureExtractor(return_attention_mask=False).save_pretrained(directory)


def speech(path, seconds):
    text = ("the quick brown fox jumps over the lazy dog while seven wizards quietly judge the boxing match "
            "and a large fawn jumped quickly over white zinc boxes")
    with tempfile.TemporaryDirectory() as tmp:
        raw = os.path.join(tmp, "raw.wav")
        subprocess.run(["espeak-ng", "-v", "en-us", "-w", raw, text], check=True)
        subprocess.run(["sox", raw, "-r", "16000", "-c", "1", "-b", "16", path, "pad", "0", str(seconds),
                        "trim", "0", str(seconds)], check=True)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--asr", default=".build/release/asr")
    parser.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "asr-full-size"))
    parser.add_argument("--seconds", type=float, default=10)
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    wav = os.path.join(args.work, f"speech_{args.seconds:g}s.wav")
    speech(wav, args.seconds)
    audio, _ = sf.read(wav, dtype="float32")
    extractor = Wav2Vec2FeatureExtractor(return_attention_mask=False)
    inputs = extractor(audio, sampling_rate=16000, return_tensors="pt").input_values

    for name in ARCHITECTURES:
        directory = os.path.join(args.work, name)
        build(name, directory)
        model = Wav2Vec2ForCTC.from_pretrained(directory).eval()
        params = sum(p.numel() for p in model.parameters())
        with torch.no_grad():
            reference = model(inputs).logits[0].numpy()
        out = os.path.join(args.work, f"{name}.npy")
        subprocess.run([args.asr, "logits", wav, "--model", directory, "-o", out], check=True)
        ours = np.load(out)
        delta = np.abs(ours - reference).max()
        same = (ours.argmax(1) == reference.argmax(1)).mean()
        print(f"{name}: {params / 1e6:.1f} M parameters, {args.seconds:g} s, logits {reference.shape}, "
              f"max |logit| {np.abs(reference).max():.2f}, max |Δ| {delta:.2e}, argmax agreement {same:.2%}")


if __name__ == "__main__":
    main()
