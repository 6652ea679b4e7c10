#!/usr/bin/env python3
"""Loads a checkpoint written by qilin into the matching PyTorch model, strictly, and
checks that PyTorch's logits equal qilin's (issue: train program, Must show 5).

Usage: check_qilin_checkpoint.py MODEL CKPT BATCH   (MODEL: vit | resnet20 | regnety | resnet18)
  CKPT   qilin's ckpt_<tag>.safetensors (the model's state dict)
  BATCH  a safetensors file with "input" (images) and "logits" (qilin's, in eval mode)
Exit 0 when every key loads strictly and ||torch - qilin|| / ||qilin|| <= 1e-4."""
import json
import os
import struct
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_reference import build  # noqa: E402

DTYPES = {"F32": np.float32, "I64": np.int64, "I32": np.int32, "U8": np.uint8}


def load_safetensors(path):
    """The format safetensors.torch.load_file reads, parsed with json/struct/numpy."""
    with open(path, "rb") as f:
        data = f.read()
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    header.pop("__metadata__", None)
    base = 8 + n
    out = {}
    for name, info in header.items():
        begin, end = info["data_offsets"]
        array = np.frombuffer(data[base + begin:base + end], dtype=DTYPES[info["dtype"]])
        out[name] = torch.from_numpy(array.reshape(info["shape"]).copy())
    return out


def main():
    if len(sys.argv) != 4:
        raise SystemExit(__doc__)
    model_name, ckpt, batch = sys.argv[1:]
    model, _, _ = build(model_name)
    state = load_safetensors(ckpt)
    model.load_state_dict(state, strict=True)  # raises on any missing/unexpected/mis-shaped key
    model.eval()
    tensors = load_safetensors(batch)
    with torch.no_grad():
        logits = model(tensors["input"])
    ours = tensors["logits"]
    err = float((logits - ours).norm() / ours.norm())
    print(f"{model_name}: {len(state)} tensors loaded strictly; logits relative error {err:.2e}")
    sys.exit(0 if err <= 1e-4 else 1)


if __name__ == "__main__":
    main()
