#!/usr/bin/env python3
"""Draws a function and its piecewise-linear fits (the paper's figures 5-8) above the
absolute fitting error along the domain: plot_interp.py CSV OUT_PNG [TITLE].

The CSV is what `qilin interp plot` writes: columns x, f (exact), fit_<pieces>... .
Uses Debian's python3-matplotlib."""
import csv
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) not in (3, 4):
        raise SystemExit(__doc__)
    with open(sys.argv[1], newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = [[float(v) for v in r] for r in reader]
    xs = [r[0] for r in rows]
    exact = [r[1] for r in rows]
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7), dpi=120, sharex=True)
    top.plot(xs, exact, "k-", linewidth=2.5, alpha=0.35, label="exact")
    for j in range(2, len(header)):
        pieces = header[j].split("_", 1)[1]
        fit = [r[j] for r in rows]
        top.plot(xs, fit, linewidth=1, label=f"{pieces} pieces")
        err = [max(abs(a - b), 1e-12) for a, b in zip(fit, exact)]
        bottom.plot(xs, err, linewidth=0.8, label=f"{pieces} pieces")
    top.set_ylabel("f(x)")
    top.legend(fontsize=8)
    top.grid(alpha=0.3)
    if len(sys.argv) == 4:
        top.set_title(sys.argv[3])
    bottom.set_yscale("log")
    bottom.set_xlabel("x")
    bottom.set_ylabel("|fit - f|")
    bottom.grid(alpha=0.3, which="both")
    fig.tight_layout()
    fig.savefig(sys.argv[2])


if __name__ == "__main__":
    main()
