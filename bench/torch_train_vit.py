#!/usr/bin/env python3
"""The PyTorch side of configs/vit_fp32.yaml (issue 3, "Must show 2"): the same ViT, data,
split sizes and recipe, written in plain PyTorch, so the two frameworks' accuracies can be
compared over seeds.

What is the same as `train --config vit_fp32`:
  model   tests/parity/torch_reference.py's VisionTransformer (img 28, patch 4, dim 64,
          depth 4, heads 4, MLP 4x, LayerNorm eps 1e-6, exact GELU and softmax) with timm's
          init (trunc-normal std 0.02 on every Linear and pos_embed, zero biases, cls token
          normal std 1e-6, PyTorch's default on the patch-embedding conv) — as models/vit.cpp;
  data    Fashion-MNIST from the Debian package, pixels / 255 then (x - 0.2860) / 0.3530, no
          augmentation; 5000 training images held out for validation (a fixed split, the
          same for every seed), 55000 for training, shuffled every epoch, drop_last;
  recipe  5 epochs of batch 128 (429 steps each), AdamW (lr 1e-3, betas (0.9, 0.999),
          eps 1e-8, weight decay 0.05 on tensors of >= 2 dims, none on biases and norms),
          per-step LR: linear warm-up from 0 over the first epoch, then cosine to 1e-5
          (timm's CosineLRScheduler with warmup_prefix), cross-entropy, no clipping;
  report  validation top-1 after every epoch, test top-1 of the final weights.
What differs: the random streams (initial weights, split, order) — hence several seeds.

Usage: torch_train_vit.py [--seed S] [--epochs 5] [--threads 2] [--json FILE]
Prints one line per epoch and a JSON summary (also written to --json).
"""
import argparse
import gzip
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
from torch_reference import VisionTransformer  # noqa: E402

DATA_DIR = "/usr/share/datasets/fashion-mnist"
MEAN, STD = 0.2860, 0.3530
SPLIT_SEED = 0x53504C4954  # as data/datasets.h: the split does not depend on the run's seed


def read_idx(path):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    dims = raw[3]
    shape = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims).reshape(shape)


def load(split):
    prefix = "train" if split == "train" else "t10k"
    images = read_idx(os.path.join(DATA_DIR, f"{prefix}-images-idx3-ubyte.gz"))
    labels = read_idx(os.path.join(DATA_DIR, f"{prefix}-labels-idx1-ubyte.gz"))
    x = (torch.from_numpy(images.astype(np.float32)) / 255.0 - MEAN) / STD
    return x.unsqueeze(1).contiguous(), torch.from_numpy(labels.astype(np.int64))


def timm_init(model):
    """timm VisionTransformer.init_weights(''): trunc_normal(0.02) on pos_embed, normal(1e-6)
    on cls_token, init_weights_vit_timm on every Linear (trunc_normal(0.02), zero bias)."""
    nn.init.trunc_normal_(model.pos_embed, std=0.02)
    nn.init.normal_(model.cls_token, std=1e-6)
    for m in model.modules():
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            nn.init.zeros_(m.bias)


def lr_at(step, base, warmup, total, min_lr):
    if step < warmup:
        return step * base / warmup
    t, period = step - warmup, total - warmup
    return min_lr + 0.5 * (base - min_lr) * (1 + math.cos(math.pi * t / period))


@torch.no_grad()
def evaluate(model, x, y, batch=500):
    model.eval()
    correct, loss = 0, 0.0
    for i in range(0, len(y), batch):
        logits = model(x[i:i + batch])
        loss += F.cross_entropy(logits, y[i:i + batch], reduction="sum").item()
        correct += (logits.argmax(1) == y[i:i + batch]).sum().item()
    model.train()
    return correct / len(y), loss / len(y)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--weight-decay", type=float, default=0.05)
    ap.add_argument("--warmup-epochs", type=float, default=1.0)
    ap.add_argument("--min-lr", type=float, default=1e-5)
    ap.add_argument("--val-size", type=int, default=5000)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json", default="")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()

    x_all, y_all = load("train")
    x_test, y_test = load("test")
    perm = torch.randperm(len(y_all), generator=torch.Generator().manual_seed(SPLIT_SEED))
    val_idx, train_idx = perm[:args.val_size], perm[args.val_size:]
    x_val, y_val = x_all[val_idx], y_all[val_idx]
    x_train, y_train = x_all[train_idx], y_all[train_idx]

    torch.manual_seed(args.seed)
    model = VisionTransformer()
    timm_init(model)
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.999), eps=1e-8)

    steps_per_epoch = len(y_train) // args.batch
    total = args.epochs * steps_per_epoch
    warmup = round(args.warmup_epochs * steps_per_epoch)
    step, train_seconds, history = 0, 0.0, []
    for epoch in range(args.epochs):
        t0 = time.perf_counter()
        order = torch.randperm(len(y_train), generator=torch.Generator().manual_seed(args.seed * 1000 + epoch))
        loss_sum = 0.0
        for b in range(steps_per_epoch):
            idx = order[b * args.batch:(b + 1) * args.batch]
            for group in opt.param_groups:
                group["lr"] = lr_at(step, args.lr, warmup, total, args.min_lr)
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(x_train[idx]), y_train[idx])
            loss.backward()
            opt.step()
            loss_sum += loss.item()
            step += 1
        train_seconds += time.perf_counter() - t0
        val_acc, val_loss = evaluate(model, x_val, y_val)
        history.append(val_acc)
        print(f"epoch {epoch + 1}/{args.epochs}: train loss {loss_sum / steps_per_epoch:.4f} "
              f"val loss {val_loss:.4f} top-1 {100 * val_acc:.2f}% ({time.perf_counter() - t0:.1f} s)",
              flush=True)
    test_acc, test_loss = evaluate(model, x_test, y_test)
    result = {"framework": "pytorch " + torch.__version__, "seed": args.seed, "epochs": args.epochs,
              "steps": step, "val_acc": history, "test_acc": test_acc, "test_loss": test_loss,
              "train_seconds": train_seconds, "wall_seconds": time.perf_counter() - t_start,
              "threads": args.threads}
    print(json.dumps(result), flush=True)
    if args.json:
        with open(args.json + ".tmp", "w") as f:
            json.dump(result, f, indent=2)
        os.replace(args.json + ".tmp", args.json)


if __name__ == "__main__":
    main()
