#!/usr/bin/python3
"""PyTorch's side of bench/bench_interp.cpp: its native exp / sigmoid / tanh / gelu / silu,
forward and backward kernels, on the same number of float32 inputs and threads, timed the same
way (two warm-up calls, median of --reps). The backward is the kernel autograd calls
(aten::*_backward; exp's is dy * y), without autograd's bookkeeping. Bytes moved as in the
C++ benchmark: forward 8 per element, backward 12.

The backward by default allocates its output, as PyTorch's autograd does. `--backward
in-place` runs the same kernels through their out= variants with the output over dy
(aten::*_backward.grad_input(..., grad_input=dy)), dy refreshed untimed before each call as
bench_interp does: what PyTorch's kernels would do if its autograd wrote gradients in place.

    taskset -c 0,1 /usr/bin/python3 bench/torch_interp.py [--n 5000000] [--reps 21] [--threads 2]
        [--backward out-of-place|in-place]
"""
import argparse
import time

import torch


def median_ms(reps, fn, prepare=None):
    """Median of reps timed calls after two warm-ups; prepare() runs untimed before each."""
    times = []
    for i in range(reps + 2):
        if prepare is not None:
            prepare()
        t0 = time.perf_counter()
        fn()
        if i >= 2:
            times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return times[len(times) // 2]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5_000_000)
    ap.add_argument("--reps", type=int, default=21)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--backward", choices=["out-of-place", "in-place"], default="out-of-place")
    ap.add_argument("--format", choices=["text", "csv"], default="text")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    g = torch.Generator().manual_seed(2)
    n = args.n
    # The same input distributions as bench_interp (all but a tiny fraction inside the
    # tables' domains).
    inputs = {
        "exp": -(4 * torch.randn(n, generator=g)).abs(),
        "sigmoid": 2 * torch.randn(n, generator=g),
        "tanh": torch.randn(n, generator=g),
        "gelu": torch.randn(n, generator=g),
        "silu": 3 * torch.randn(n, generator=g),
    }
    dy = torch.rand(n, generator=g) * 2 - 1
    out = torch.empty(n)
    dy_work = torch.empty(n)
    aten = torch.ops.aten
    rows = []
    for name, x in inputs.items():
        fwd = {"exp": torch.exp, "sigmoid": torch.sigmoid, "tanh": torch.tanh,
               "gelu": torch.nn.functional.gelu, "silu": torch.nn.functional.silu}[name]
        y = fwd(x)
        prepare = None
        if args.backward == "out-of-place":
            if name == "exp":
                bwd = lambda: torch.mul(dy, y, out=out)
            elif name == "sigmoid":
                bwd = lambda: aten.sigmoid_backward(dy, y)
            elif name == "tanh":
                bwd = lambda: aten.tanh_backward(dy, y)
            elif name == "gelu":
                bwd = lambda: aten.gelu_backward(dy, x)
            else:
                bwd = lambda: aten.silu_backward(dy, x)
        else:
            prepare = lambda: dy_work.copy_(dy)
            if name == "exp":
                bwd = lambda: torch.mul(dy_work, y, out=dy_work)
            elif name == "sigmoid":
                bwd = lambda: aten.sigmoid_backward.grad_input(dy_work, y, grad_input=dy_work)
            elif name == "tanh":
                bwd = lambda: aten.tanh_backward.grad_input(dy_work, y, grad_input=dy_work)
            elif name == "gelu":
                bwd = lambda: aten.gelu_backward.grad_input(dy_work, x, grad_input=dy_work)
            else:
                bwd = lambda: aten.silu_backward.grad_input(dy_work, x, grad_input=dy_work)
        if name in ("exp", "sigmoid", "tanh"):
            f = lambda: fwd(x, out=out)
        else:
            f = lambda: fwd(x)  # no out= variant in the functional API
        fms = median_ms(args.reps, f)
        bms = median_ms(args.reps, bwd, prepare)
        rows.append((name, fms, 8 * n / fms / 1e6, bms, 12 * n / bms / 1e6))
    if args.format == "csv":
        print("fn,method,fwd_ms,fwd_gbs,bwd_ms,bwd_gbs")
        for r in rows:
            print("%s,torch,%.3f,%.2f,%.3f,%.2f" % r)
    else:
        print("%-8s %-8s %8s %8s %8s %8s" % ("fn", "method", "fwd ms", "fwd GB/s", "bwd ms", "bwd GB/s"))
        for r in rows:
            print("%-8s %-8s %8.3f %8.1f %8.3f %8.1f" % (r[0], "torch", r[1], r[2], r[3], r[4]))
        print("torch %s, %d threads, n = %d, backward %s" % (torch.__version__, args.threads, n, args.backward))


if __name__ == "__main__":
    main()
