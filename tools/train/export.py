#!/usr/bin/env python3
"""Exports a training checkpoint as the built-in model: a Hugging Face Wav2Vec2ForCTC directory (save_pretrained,
safetensors with F16 storage, vocab.json, tokenizer_config.json, preprocessor_config.json) written into
Sources/CBuiltinModel/model/, from where it is linked into the `asr` binary. Development only.

    python tools/train/export.py --work /work/train [--out Sources/CBuiltinModel/model] [--dtype float16]
"""
import argparse
import json
import os
import shutil
import sys
import tempfile

import torch
from transformers import Wav2Vec2Config, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor, Wav2Vec2ForCTC

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from train import VOCAB  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FILES = ["config.json", "model.safetensors", "vocab.json", "tokenizer_config.json", "preprocessor_config.json"]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--work", required=True)
    parser.add_argument("--out", default=os.path.join(ROOT, "Sources", "CBuiltinModel", "model"))
    parser.add_argument("--dtype", default="float16", choices=["float16", "float32"])
    args = parser.parse_args()
    saved = torch.load(os.path.join(args.work, "checkpoint.pt"), map_location="cpu", weights_only=False)
    config = Wav2Vec2Config.from_dict(saved["config"])
    model = Wav2Vec2ForCTC(config)
    model.load_state_dict(saved["model"])
    model.eval()
    if args.dtype == "float16":
        model = model.half()
    with tempfile.TemporaryDirectory() as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        with open(os.path.join(tmp, "vocab.json"), "w") as f:
            json.dump({t: i for i, t in enumerate(VOCAB)}, f, indent=2)
        Wav2Vec2CTCTokenizer(os.path.join(tmp, "vocab.json")).save_pretrained(tmp)
        Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000, padding_value=0.0, do_normalize=True,
                                 return_attention_mask=False).save_pretrained(tmp)
        os.makedirs(args.out, exist_ok=True)
        for name in FILES:
            shutil.copyfile(os.path.join(tmp, name), os.path.join(args.out, name))
    state = saved["state"]
    info = {"step": state["step"], "epoch": state["epoch"], "audio_hours_seen": round(state["audio_seconds"] / 3600, 2),
            "train_minutes": round(state["train_seconds"] / 60, 1),
            "cpu_hours": round(state.get("cpu_seconds", 0) / 3600, 2), "dtype": args.dtype,
            "parameters": sum(p.numel() for p in model.parameters())}
    with open(os.path.join(args.out, "training.json"), "w") as f:
        json.dump(info, f, indent=2)
    # The build does not track .incbin inputs: touch the assembly file so the next build embeds the new files.
    os.utime(os.path.join(ROOT, "Sources", "CBuiltinModel", "builtin_model.S"))
    size = sum(os.path.getsize(os.path.join(args.out, n)) for n in FILES)
    print(f"exported to {args.out}: {size / 1e6:.1f} MB, {info}")


if __name__ == "__main__":
    main()
