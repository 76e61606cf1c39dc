#!/usr/bin/env python3
"""Checks `asr quantize` against transformers and an independent reimplementation (development only; needs torch,
transformers, safetensors; not part of `swift test`).

For each model (the fixture checkpoints, and with --full-size the full-size random models that
tools/compare_full_size.py builds):

1. bf16: `asr quantize M OUT --precision bf16`, then transformers' `AutoModelForCTC.from_pretrained(OUT)` must load
   it as bfloat16 with every parameter bit-identical to `AutoModelForCTC.from_pretrained(M).to(torch.bfloat16)`, and
   give the same logits as that model.
2. int8: `asr quantize M OUT --precision int8`; every module listed in config.json's quantization_config must hold
   I8 codes and F32 scales equal to a numpy reimplementation of the quantization (per output row:
   scale = max|w| / 127, code = round-half-away(w / scale) in float32), and every other tensor must be the source's,
   byte for byte.
3. The sizes of the weights before and after.

    swift build -Xswiftc -O -Xcc -O2
    python tools/precision/check_quantized.py [--asr .build/debug/asr] [--full-size /tmp/asr-full-size]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import torch
from safetensors import safe_open
from safetensors.numpy import load_file
from transformers import AutoModelForCTC

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
FIXTURES = ["base-layout", "large-layout", "fp16-community-vocab", "hubert-layout", "hubert-no-projection-norm"]


def quantize(asr, model, out, precision):
    subprocess.run([asr, "quantize", model, out, "--precision", precision, "--overwrite"], check=True,
                   stdout=subprocess.DEVNULL)
    return os.path.getsize(os.path.join(out, "model.safetensors"))


def check_bf16(model, out, inputs):
    reference = AutoModelForCTC.from_pretrained(model).eval().to(torch.bfloat16)
    loaded = AutoModelForCTC.from_pretrained(out).eval()
    assert loaded.dtype == torch.bfloat16, f"transformers loaded {out} as {loaded.dtype}"
    ours, theirs = loaded.state_dict(), reference.state_dict()
    assert ours.keys() == theirs.keys(), set(ours) ^ set(theirs)
    different = [k for k in ours if not torch.equal(ours[k], theirs[k])]
    assert not different, f"parameters differ from .to(torch.bfloat16): {different[:5]}"
    with torch.no_grad():
        a = loaded(inputs.to(torch.bfloat16)).logits
        b = reference(inputs.to(torch.bfloat16)).logits
    assert torch.equal(a, b), "logits differ"


def check_int8(model, out):
    config = json.load(open(os.path.join(out, "config.json")))
    q = config["quantization_config"]
    assert q["quant_method"] == "asr_int8" and q["bits"] == 8, q
    written = load_file(os.path.join(out, "model.safetensors"))
    with safe_open(os.path.join(out, "model.safetensors"), "np") as f:
        assert f.metadata() == {"format": "pt"}
    source = {}
    with safe_open(os.path.join(model, "model.safetensors"), "pt") as f:  # "pt": numpy has no bfloat16
        for k in f.keys():
            source[k] = f.get_tensor(k)
    weights = {m + ".weight" for m in q["modules"]}
    assert weights <= source.keys(), weights - source.keys()
    assert set(written) == set(source) | {w + "_scale" for w in weights}, set(written) ^ set(source)
    mismatched = 0
    for name, tensor in source.items():
        if name not in weights:
            stored = written[name]
            expected = tensor.view(torch.int16).numpy() if tensor.dtype == torch.bfloat16 else tensor.numpy()
            assert stored.dtype == expected.dtype and np.array_equal(stored.view(np.uint8), expected.view(np.uint8)), name
            continue
        w = tensor.float().numpy()
        codes, scales = written[name], written[name + "_scale"]
        assert codes.dtype == np.int8 and codes.shape == w.shape, name
        assert scales.dtype == np.float32 and scales.shape == (w.shape[0],), name
        amax = np.abs(w).max(axis=1)
        scale = np.where(amax > 0, amax / np.float32(127), np.float32(1)).astype(np.float32)
        x = (w / scale[:, None]).astype(np.float32).astype(np.float64)
        expected = np.clip(np.sign(x) * np.floor(np.abs(x) + 0.5), -127, 127).astype(np.int8)
        assert np.array_equal(scales, scale), f"{name}: scales differ"
        mismatched += int((codes != expected).sum())
        assert np.abs(codes.astype(np.int32)).max() <= 127
    assert mismatched == 0, f"{mismatched} codes differ from the reference quantization"
    return len(weights)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--asr", default=os.path.join(ROOT, ".build/debug/asr"))
    parser.add_argument("--full-size", help="directory holding base-960h/ and large-960h-lv60-self/ (compare_full_size.py)")
    parser.add_argument("--work", default=None)
    args = parser.parse_args()
    work = args.work or tempfile.mkdtemp(prefix="asr-quantize-check-")

    models = [(name, os.path.join(ROOT, "fixtures/models", name)) for name in FIXTURES]
    if args.full_size:
        models += [(name, os.path.join(args.full_size, name)) for name in ["base-960h", "large-960h-lv60-self"]
                   if os.path.isdir(os.path.join(args.full_size, name))]
    rng = np.random.default_rng(0)
    print(f"{'model':<24} {'fp32 bytes':>14} {'bf16 bytes':>14} {'ratio':>6} {'int8 bytes':>14} {'ratio':>6}  checks")
    for name, model in models:
        fixture_input = os.path.join(model, "input_values.npy")
        inputs = torch.from_numpy(np.load(fixture_input) if os.path.exists(fixture_input)
                                  else rng.standard_normal((1, 32000)).astype(np.float32))
        if inputs.dim() == 1:
            inputs = inputs[None]
        before = os.path.getsize(os.path.join(model, "model.safetensors"))
        bf16 = quantize(args.asr, model, os.path.join(work, name + "-bf16"), "bf16")
        check_bf16(model, os.path.join(work, name + "-bf16"), inputs)
        int8 = quantize(args.asr, model, os.path.join(work, name + "-int8"), "int8")
        modules = check_int8(model, os.path.join(work, name + "-int8"))
        print(f"{name:<24} {before:>14,} {bf16:>14,} {before / bf16:>5.2f}× {int8:>14,} {before / int8:>5.2f}×  "
              f"bf16 loads in transformers, bit-identical; {modules} int8 modules match the reference", flush=True)
    print(f"outputs in {work}")


if __name__ == "__main__":
    sys.exit(main())
