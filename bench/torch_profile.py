#!/usr/bin/python3
"""PyTorch's side of issue 4's nonlinear-share table (PAPER.md Table 4): the share of each op
category in the forward and in the backward time of a training step, beside qilin's
`train --profile`. Same models (tests/parity/torch_reference.py), batch of random
(batch, 1, 28, 28) images, and step as the configs: cross-entropy (label smoothing 0.1 for
regnety, as configs/regnety_fp32.yaml), then AdamW (lr 1e-3, wd 0.05) for vit or SGD (lr 0.1,
momentum 0.9, nesterov, wd 5e-5) for regnety, weight decay on tensors of >= 2 dims only
(train/trainer.cpp, timm's rule).

How time is attributed (each profiler event's SELF CPU time is counted exactly once, so nested
ops are never double counted):
  - phase: every step runs its forward (model + loss), backward and optimizer inside
    record_function ranges "tprof::forward" / "tprof::backward" / "tprof::optimizer"; an event
    belongs to the range its start time falls in (by time, not by parent links, so it would
    still be right if autograd ran the backward on another thread; on CPU it runs on the
    calling thread).
  - category, forward: the event's OUTERMOST op under the forward range (aten::linear for the
    addmm and the transpose inside it, aten::gelu, aten::softmax, aten::relu_, ...), i.e. the op
    charged as qilin's outermost ProfileScope is.
  - category, backward: the autograd node the event runs under ("autograd::engine::
    evaluate_function: GeluBackward0" and everything nested in it -> GeluBackward0 -> gelu),
    as qilin charges backward time per Node. The node's own bookkeeping is charged to it.
  - the self time of the range markers themselves (Python and engine glue between ops) is
    printed as "untracked" and left out of the shares, whose denominator is the sum over ops
    (as qilin's Profiler::table()).
The profiler adds a few microseconds per op, so its per-step totals exceed the wall clock;
the wall-clock forward / backward / optimizer ms per step, measured without the profiler, are
printed for a sanity check. Nonlinear rows: the paper's interpolated set (gelu, softmax,
sigmoid, silu, tanh, exp) one by one and summed; relu on its own row, outside that set;
cross-entropy (log_softmax + nll) is "loss", not softmax.

    taskset -c 0,1 /usr/bin/python3 bench/torch_profile.py --model vit|regnety [--batch 128]
        [--steps 20] [--warmup 5] [--threads 2] [--format text|csv]
"""
import argparse
import os
import statistics
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "parity"))
from torch_reference import RegNetY, VisionTransformer  # noqa: E402

PHASES = ("forward", "backward", "optimizer")
INTERP = ("gelu", "softmax", "sigmoid", "silu", "tanh", "exp")
ROWS = INTERP + ("relu", "linear/matmul", "conv", "norm", "loss", "other")
NODE_PREFIX = "autograd::engine::evaluate_function: "


def category(name):
    """The row of an outermost forward op (aten::gelu) or an autograd node (GeluBackward0)."""
    n = name.lower()
    if n.startswith("aten::"):
        n = n[len("aten::"):]
    n = n.rstrip("0123456789")
    if n.endswith("backward"):
        n = n[:-len("backward")]
    n = n.rstrip("_")
    if n in ("log_softmax", "logsoftmax", "_log_softmax", "nll_loss", "nllloss", "nll_loss_nd",
             "nllloss2d", "cross_entropy_loss"):
        return "loss"
    for f in ("gelu", "softmax", "sigmoid", "silu", "tanh"):
        if n in (f, "_" + f, f + "_"):
            return f
    if n in ("exp", "exp_"):
        return "exp"
    if n in ("relu", "relu_", "threshold", "threshold_", "clamp_min", "clamp_min_"):
        return "relu"
    if n in ("linear", "addmm", "mm", "bmm", "matmul", "baddbmm"):
        return "linear/matmul"
    if "conv" in n:
        return "conv"
    if "norm" in n:  # layer_norm, batch_norm, native_*_norm, cudnn/mkldnn batch norm nodes
        return "norm"
    return "other"


def build(model_name):
    torch.manual_seed(0)
    if model_name == "vit":
        model = VisionTransformer()
    else:
        model = RegNetY()
    model.train()
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    if model_name == "vit":
        groups = [{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}]
        opt = torch.optim.AdamW(groups, lr=1e-3, betas=(0.9, 0.999))
        smoothing = 0.0
    else:
        groups = [{"params": decay, "weight_decay": 5e-5}, {"params": no_decay, "weight_decay": 0.0}]
        opt = torch.optim.SGD(groups, lr=0.1, momentum=0.9, nesterov=True)
        smoothing = 0.1
    return model, opt, smoothing


def attribute(events, steps):
    """(rows: {(phase, row): ms per step}, untracked: {phase: ms per step})."""
    ranges = [(e.time_range.start, e.time_range.end, e.name[len("tprof::"):])
              for e in events if e.name.startswith("tprof::")]
    ranges.sort()

    def phase_of(t):
        for start, end, ph in ranges:
            if start <= t <= end:
                return ph
        return None

    rows, untracked = {}, {ph: 0.0 for ph in PHASES}
    for e in events:
        ph = phase_of(e.time_range.start)
        if ph is None:
            continue
        self_ms = e.self_cpu_time_total / 1e3 / steps
        if e.name.startswith("tprof::"):
            untracked[ph] += self_ms
            continue
        anchor = None
        p = e
        if ph == "backward":
            while p is not None:  # the nearest enclosing autograd node
                if p.name.startswith(NODE_PREFIX):
                    anchor = p.name[len(NODE_PREFIX):]
                    break
                p = p.cpu_parent
        else:
            while p is not None and not p.name.startswith("tprof::"):  # the outermost op
                anchor = p.name
                p = p.cpu_parent
        row = category(anchor) if anchor else "other"
        rows[(ph, row)] = rows.get((ph, row), 0.0) + self_ms
    return rows, untracked


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", choices=["vit", "regnety"], required=True)
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--format", choices=["text", "csv"], default="text")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model, opt, smoothing = build(args.model)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.batch, 1, 28, 28, generator=g)
    y = torch.randint(0, 10, (args.batch,), generator=g)

    def step(mark):
        opt.zero_grad(set_to_none=True)
        with mark("forward"):
            loss = F.cross_entropy(model(x), y, label_smoothing=smoothing)
        with mark("backward"):
            loss.backward()
        with mark("optimizer"):
            opt.step()

    for _ in range(args.warmup):
        step(lambda ph: torch.autograd.profiler.record_function("tprof::" + ph))

    # Wall clock, no profiler: median ms per phase over --steps steps.
    wall = {ph: [] for ph in PHASES}

    class Clock:
        def __init__(self, ph):
            self.ph = ph

        def __enter__(self):
            self.t0 = time.perf_counter()

        def __exit__(self, *exc):
            wall[self.ph].append((time.perf_counter() - self.t0) * 1e3)

    for _ in range(args.steps):
        step(Clock)
    wall_ms = {ph: statistics.median(v) for ph, v in wall.items()}

    with torch.autograd.profiler.profile() as prof:
        for _ in range(args.steps):
            step(lambda ph: torch.autograd.profiler.record_function("tprof::" + ph))
    rows, untracked = attribute(prof.function_events, args.steps)

    fwd_total = sum(v for (ph, _), v in rows.items() if ph == "forward")
    bwd_total = sum(v for (ph, _), v in rows.items() if ph == "backward")
    table = []
    for r in ROWS:
        f, b = rows.get(("forward", r), 0.0), rows.get(("backward", r), 0.0)
        table.append((r, f, b, f / fwd_total if fwd_total else 0, b / bwd_total if bwd_total else 0))
    nl_f = sum(t[1] for t in table if t[0] in INTERP)
    nl_b = sum(t[2] for t in table if t[0] in INTERP)
    summary = ("nonlinear (interp set)", nl_f, nl_b, nl_f / fwd_total, nl_b / bwd_total)
    total = ("total (ops)", fwd_total, bwd_total, 1.0, 1.0)

    if args.format == "csv":
        print("model,category,fwd_ms,bwd_ms,fwd_share,bwd_share")
        for t in table + [summary, total]:
            print("%s,%s,%.4f,%.4f,%.4f,%.4f" % ((args.model,) + t))
        print("%s,untracked,%.4f,%.4f,," % (args.model, untracked["forward"], untracked["backward"]))
        print("%s,wall,%.4f,%.4f,," % (args.model, wall_ms["forward"], wall_ms["backward"]))
        print("%s,optimizer_wall,%.4f,,," % (args.model, wall_ms["optimizer"]))
        return
    print("PyTorch profile: %s, batch %d, %d steps after %d warm-up, %d threads, torch %s" %
          (args.model, args.batch, args.steps, args.warmup, args.threads, torch.__version__))
    print("%-24s %10s %10s %9s %9s" % ("category", "fwd ms", "bwd ms", "fwd %", "bwd %"))
    for t in table:
        print("%-24s %10.3f %10.3f %8.1f%% %8.1f%%" % (t[0], t[1], t[2], 100 * t[3], 100 * t[4]))
    for t in (summary, total):
        print("%-24s %10.3f %10.3f %8.1f%% %8.1f%%" % (t[0], t[1], t[2], 100 * t[3], 100 * t[4]))
    print("%-24s %10.3f %10.3f   (python / engine glue between ops; not in the shares)" %
          ("untracked", untracked["forward"], untracked["backward"]))
    print("%-24s %10.3f %10.3f   (median per step, no profiler; optimizer %.3f ms)" %
          ("wall clock", wall_ms["forward"], wall_ms["backward"], wall_ms["optimizer"]))


if __name__ == "__main__":
    main()
