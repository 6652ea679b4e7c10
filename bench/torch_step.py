#!/usr/bin/env python3
"""PyTorch side of bench/compare_step.py: one training step (forward, cross-entropy,
backward, AdamW) of the same model and batch as bench_step, driven line by line on stdin
so the coordinator can interleave it with qilin's steps.

Protocol (one reply line per command):  step -> "<ms>";  peak -> "<bytes>" (peak resident
memory of one step above the resident memory held once the model and optimizer exist);
info -> a description;  profile -> a per-op table of 5 steps, then "end";  quit.
Usage: torch_step.py MODEL BATCH   (MODEL: vit | resnet20)
"""
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
from torch_reference import ResNet20, VisionTransformer  # noqa: E402

from memory import clear_peak, read_status_kib  # noqa: E402


def main():
    model_name, batch = sys.argv[1], int(sys.argv[2])
    torch.set_num_threads(2)
    torch.manual_seed(0)
    model = {"vit": VisionTransformer, "resnet20": ResNet20}[model_name]()
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    x = torch.randn(batch, 1, 28, 28)
    y = torch.randint(0, 10, (batch,))
    held = read_status_kib("VmRSS") * 1024

    def step():
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()

    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "step":
            t0 = time.perf_counter()
            step()
            print(f"{(time.perf_counter() - t0) * 1e3:.4f}", flush=True)
        elif cmd == "peak":
            clear_peak()
            step()
            print(read_status_kib("VmHWM") * 1024 - held, flush=True)
        elif cmd == "info":
            blas = torch.__config__.show()
            print(f"torch {torch.__version__} threads {torch.get_num_threads()} "
                  f"mkldnn {torch.backends.mkldnn.is_available()} "
                  f"blas {'OpenBLAS' if 'openblas' in open('/proc/self/maps').read().lower() else 'unknown'} "
                  f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '(unset)')}",
                  flush=True)
        elif cmd == "profile":
            with torch.autograd.profiler.profile() as prof:
                for _ in range(5):
                    step()
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
            print("end", flush=True)
        elif cmd == "quit":
            break


if __name__ == "__main__":
    main()
