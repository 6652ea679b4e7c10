#!/usr/bin/python3
"""qilin's side of the nonlinear-share table (PAPER.md Table 4; issue 4, Must show 6): reads the
profile.csv that `train --profile` writes and prints, in bench/torch_profile.py's categories,
each category's forward and backward ms per step and its share of the forward and of the
backward op time. qilin's profile charges each op's time once (the outermost ProfileScope of a
forward op; each autograd Node's backward), the same attribution as torch_profile.py.

    profile_shares.py --steps 100 runs/prof/vit_native/profile.csv [more.csv ...] [--format csv]

Interpolated ops count as the function they replace (interp_gelu and igelu as gelu,
interp_softmax as softmax, ...).
"""
import argparse
import csv
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from torch_profile import INTERP, ROWS, category  # noqa: E402


def qilin_category(op):
    if op == "igelu":
        return "gelu"
    if op.startswith("interp_"):
        op = op[len("interp_"):]
    if op == "cross_entropy_soft":
        return "loss"
    if op == "cross_entropy":
        return "loss"
    if op == "batch_norm2d":
        return "norm"
    return category(op)


def shares(path, steps):
    fwd, bwd = {r: 0.0 for r in ROWS}, {r: 0.0 for r in ROWS}
    with open(path) as f:
        for row in csv.DictReader(f):
            c = qilin_category(row["op"])
            fwd[c] += float(row["forward_ms"]) / steps
            bwd[c] += float(row["backward_ms"]) / steps
    return fwd, bwd


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("profiles", nargs="+", help="profile.csv files of train --profile")
    ap.add_argument("--steps", type=int, required=True, help="training steps the profile covers")
    ap.add_argument("--format", choices=["text", "csv"], default="text")
    args = ap.parse_args()
    if args.format == "csv":
        print("profile,category,fwd_ms,bwd_ms,fwd_share,bwd_share")
    for path in args.profiles:
        fwd, bwd = shares(path, args.steps)
        ft, bt = sum(fwd.values()), sum(bwd.values())
        rows = [(r, fwd[r], bwd[r]) for r in ROWS]
        rows.append(("nonlinear (interp set)", sum(fwd[r] for r in INTERP), sum(bwd[r] for r in INTERP)))
        rows.append(("total (ops)", ft, bt))
        if args.format == "csv":
            for r, f, b in rows:
                print("%s,%s,%.4f,%.4f,%.4f,%.4f" % (path, r, f, b, f / ft if ft else 0, b / bt if bt else 0))
            continue
        print("qilin profile: %s (%d steps)" % (path, args.steps))
        print("%-24s %10s %10s %9s %9s" % ("category", "fwd ms", "bwd ms", "fwd %", "bwd %"))
        for r, f, b in rows:
            print("%-24s %10.3f %10.3f %8.1f%% %8.1f%%" % (r, f, b, 100 * f / ft if ft else 0,
                                                         100 * b / bt if bt else 0))


if __name__ == "__main__":
    main()
