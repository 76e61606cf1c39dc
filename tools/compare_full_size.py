#!/usr/bin/env python3
"""Exactness at full size (development only; not part of `swift test`).

Builds random models with the exact architectures of released checkpoints of every family we run (wav2vec2
base-960h and large-lv60, WavLM base-plus, data2vec-audio base, UniSpeechSat base, both large Conformers, MMS 1B
with two languages, w2v-BERT 2.0 with and without the fine-tuning adapter) with
transformers, runs 10 s of audio through transformers and through our `asr logits`, and prints max |Δ| of the
logits and whether the argmax paths agree.

    swift build -c release
    python tools/compare_full_size.py [--asr .build/release/asr] [--work /tmp/asr-full-size] [--seconds 10] [--models NAME ...]
"""
import argparse
import json
import os
import subprocess
import tempfile

import numpy as np
import soundfile as sf
import torch
from safetensors.torch import save_file
from transformers import (AutoModelForCTC, SeamlessM4TFeatureExtractor, Wav2Vec2BertConfig, Wav2Vec2BertForCTC, Data2VecAudioConfig, Data2VecAudioForCTC, UniSpeechSatConfig,
                          UniSpeechSatForCTC, Wav2Vec2Config, Wav2Vec2ConformerConfig, Wav2Vec2ConformerForCTC, Wav2Vec2CTCTokenizer, Wav2Vec2FeatureExtractor,
                          Wav2Vec2ForCTC, WavLMConfig, WavLMForCTC)

VOCAB = ["<pad>", "<s>", "</s>", "<unk>", "|"] + list("ETAONIHSRDLUMWCFGYPBVK'XJQZ")

CLASSES = {
    "wav2vec2": (Wav2Vec2Config, Wav2Vec2ForCTC),
    "wavlm": (WavLMConfig, WavLMForCTC),
    "data2vec-audio": (Data2VecAudioConfig, Data2VecAudioForCTC),
    "unispeech-sat": (UniSpeechSatConfig, UniSpeechSatForCTC),
    "wav2vec2-conformer": (Wav2Vec2ConformerConfig, Wav2Vec2ConformerForCTC),
    "wav2vec2-bert": (Wav2Vec2BertConfig, Wav2Vec2BertForCTC),
}

LARGE = dict(feat_extract_norm="layer", do_stable_layer_norm=True, conv_bias=True, hidden_size=1024,
             num_hidden_layers=24, num_attention_heads=16, intermediate_size=4096)
ARCHITECTURES = {
    # facebook/wav2vec2-base-960h
    "base-960h": ("wav2vec2", dict(feat_extract_norm="group", do_stable_layer_norm=False, conv_bias=False,
                                   hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072)),
    # facebook/wav2vec2-large-960h-lv60-self
    "large-960h-lv60-self": ("wav2vec2", LARGE),
    # microsoft/wavlm-base-plus fine-tunes (transformers' WavLMConfig defaults: group norm, post-LN, 320/800 buckets)
    "wavlm-base-plus": ("wavlm", dict()),
    # facebook/data2vec-audio-base-960h (Data2VecAudioConfig defaults)
    "data2vec-audio-base-960h": ("data2vec-audio", dict()),
    # microsoft/unispeech-sat-base-100h-libri-ft (UniSpeechSatConfig defaults)
    "unispeech-sat-base": ("unispeech-sat", dict()),
    # facebook/mms-1b-all: 48 layers × 1280, attention adapters of width 16; languages eng (stored) and fra
    # facebook/wav2vec2-conformer-rope-large-960h-ft and -rel-pos-large-960h-ft
    "conformer-rope-large": ("wav2vec2-conformer", dict(LARGE, hidden_act="swish", position_embeddings_type="rotary")),
    "conformer-rel-pos-large": ("wav2vec2-conformer", dict(LARGE, hidden_act="swish", position_embeddings_type="relative")),
    # facebook/w2v-bert-2.0 (Wav2Vec2BertConfig defaults: 24 × 1024, relative-key) as released, and as the
    # fine-tuning recipe (huggingface.co/blog/fine-tune-w2v2-bert) sets it up: one adapter layer (40 ms frames)
    "w2v-bert-2.0": ("wav2vec2-bert", dict(layerdrop=0.0, mask_time_prob=0.0)),
    "w2v-bert-2.0-adapter": ("wav2vec2-bert", dict(layerdrop=0.0, mask_time_prob=0.0, add_adapter=True, num_adapter_layers=1)),
    "mms-1b-all": ("wav2vec2", dict(LARGE, hidden_size=1280, num_hidden_layers=48, intermediate_size=5120,
                                    adapter_attn_dim=16)),
}
MMS_LANGUAGES = {"eng": VOCAB, "fra": ["<pad>", "<s>", "</s>", "<unk>", "|"] + list("esaitnrulodcmpévqfbghjàxèyêzçôùâûîœëïk'")}


def build(name, directory):
    if os.path.exists(os.path.join(directory, "model.safetensors")):
        return
    family, kwargs = ARCHITECTURES[name]
    config_class, model_class = CLASSES[family]
    torch.manual_seed(0)
    config = config_class(vocab_size=32, pad_token_id=0, **kwargs)
    model = model_class(config).eval()
    with torch.no_grad():  # random heads give near-ties everywhere; spread the logits like a trained model's
        model.lm_head.weight.mul_(50)
    model.save_pretrained(directory)
    if "adapter_attn_dim" in kwargs:
        # Another language: its own adapters and a head of another size, as load_adapter expects them.
        state = model.state_dict()
        adapter = {k: torch.randn_like(v) * v.std().clamp(min=0.02) + v.mean() for k, v in state.items() if ".adapter_layer." in k}
        head = torch.nn.Linear(config.hidden_size, len(MMS_LANGUAGES["fra"]))
        adapter["lm_head.weight"] = head.weight.detach() * 50
        adapter["lm_head.bias"] = head.bias.detach()
        save_file({k: v.contiguous() for k, v in adapter.items()}, os.path.join(directory, "adapter.fra.safetensors"))
        with open(os.path.join(directory, "vocab.json"), "w") as f:
            json.dump({lang: {t: i for i, t in enumerate(v)} for lang, v in MMS_LANGUAGES.items()}, f)
        Wav2Vec2CTCTokenizer(os.path.join(directory, "vocab.json"), target_lang="eng").save_pretrained(directory)
    else:
        with open(os.path.join(directory, "vocab.json"), "w") as f:
            json.dump({t: i for i, t in enumerate(VOCAB)}, f)
        Wav2Vec2CTCTokenizer(os.path.join(directory, "vocab.json")).save_pretrained(directory)
    if family == "wav2vec2-bert":
        SeamlessM4TFeatureExtractor(padding_value=1.0).save_pretrained(directory)
    else:
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
    parser.add_argument("--models", nargs="+", default=list(ARCHITECTURES), choices=list(ARCHITECTURES))
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    wav = os.path.join(args.work, f"speech_{args.seconds:g}s.wav")
    if not os.path.exists(wav):
        speech(wav, args.seconds)
    audio, _ = sf.read(wav, dtype="float32")
    extractor = Wav2Vec2FeatureExtractor(return_attention_mask=False)
    inputs = extractor(audio, sampling_rate=16000, return_tensors="pt").input_values
    # w2v-BERT: the filterbank and its attention mask, as the processor gives them to model(**inputs)
    features = SeamlessM4TFeatureExtractor(padding_value=1.0)(audio, sampling_rate=16000, return_tensors="pt")

    for name in args.models:
        directory = os.path.join(args.work, name)
        build(name, directory)
        languages = [None, "fra"] if "adapter_attn_dim" in ARCHITECTURES[name][1] else [None]
        for language in languages:
            extra = {} if language is None else dict(target_lang=language, ignore_mismatched_sizes=True)
            model = AutoModelForCTC.from_pretrained(directory, **extra).eval()
            params = sum(p.numel() for p in model.parameters())
            with torch.no_grad():
                reference = (model(**features) if ARCHITECTURES[name][0] == "wav2vec2-bert" else model(inputs)).logits[0].numpy()
            del model
            out = os.path.join(args.work, f"{name}.npy")
            flags = [] if language is None else ["--language", language]
            subprocess.run([args.asr, "logits", wav, "--model", directory, "-o", out] + flags, check=True)
            ours = np.load(out)
            delta = np.abs(ours - reference).max()
            same = (ours.argmax(1) == reference.argmax(1)).mean()
            label = name + ("" if language is None else f" --language {language}")
            print(f"{label}: {params / 1e6:.1f} M parameters, {args.seconds:g} s, logits {reference.shape}, "
                  f"max |logit| {np.abs(reference).max():.2f}, max |Δ| {delta:.2e}, argmax agreement {same:.2%}", flush=True)


if __name__ == "__main__":
    main()
