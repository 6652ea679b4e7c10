#!/usr/bin/env python3
"""Draws a sweep's final metrics against the swept value: plot_sweep.py SWEEP_CSV OUT_PNG.

The CSV is the one `train --sweep` writes (first column: the swept key and its values;
then run_dir, val_acc, test_acc, ...). Values that all parse as numbers are plotted on a
numeric axis (log2 when they are powers of two, as segment counts are); otherwise in order.
Uses Debian's python3-matplotlib."""
import csv
import math
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    with open(sys.argv[1], newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    key = header[0]
    labels = [r[0] for r in rows]
    val = [100 * float(r[header.index("val_acc")]) for r in rows]
    test = [100 * float(r[header.index("test_acc")]) for r in rows]
    try:
        xs = [float(v) for v in labels]
        numeric = True
    except ValueError:
        xs, numeric = list(range(len(labels))), False
    fig, ax = plt.subplots(figsize=(6, 4), dpi=120)
    ax.plot(xs, val, "o-", label="validation top-1")
    ax.plot(xs, test, "s--", label="test top-1")
    if numeric and all(x > 0 and math.log2(x).is_integer() for x in xs) and len(xs) > 1:
        ax.set_xscale("log", base=2)
    if not numeric or len(xs) <= 8:
        ax.set_xticks(xs)
        ax.set_xticklabels(labels)
    ax.set_xlabel(key)
    ax.set_ylabel("accuracy (%)")
    ax.grid(True, alpha=0.3)
    ax.legend()
    ax.set_title(f"sweep over {key}")
    fig.tight_layout()
    fig.savefig(sys.argv[2])


if __name__ == "__main__":
    main()
