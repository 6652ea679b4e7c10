#!/usr/bin/python3
"""The PTQ results of one or more sweeps as markdown tables (issue 5, Must show 3): for each
run directory under the given sweep directories, the format and layout that ran (from its
config.yaml, with "+ fold_bn" where quant.fold_bn was on), and the test top-1 of the fp32
model, of the quantized model before BatchNorm calibration and after it (summary.json's "ptq"
section, written by run.mode ptq).

    scripts/ptq_table.py runs/resnet20_ptq_qfp8 [more sweep dirs ...]
    scripts/ptq_table.py --sqnr runs/resnet20_ptq_qfp8 [...]   per-layer SQNR instead: one row
        per quantized layer, weight / input dB of each run (inputs over the test images, from
        the last quantized evaluation: after BN calibration where it ran)
"""
import json
import os
import sys


def quant_config(run):
    """(format, layout, fold_bn) from a run's resolved config.yaml."""
    fmt = layout = "?"
    fold = False
    with open(os.path.join(run, "config.yaml")) as f:
        section = None
        for line in f:
            if not line.startswith(" "):
                section = line.split(":")[0]
            elif section == "quant":
                key, _, value = line.strip().partition(":")
                value = value.split("#")[0].strip()
                if line.startswith("  ") and not line.startswith("   "):
                    if key == "format":
                        fmt = value
                    elif key == "layout":
                        layout = value
                    elif key == "fold_bn":
                        fold = value == "true"
    return fmt, layout, fold


def runs(sweep_dirs):
    for sweep_dir in sweep_dirs:
        for name in sorted(os.listdir(sweep_dir)):
            run = os.path.join(sweep_dir, name)
            summary = os.path.join(run, "summary.json")
            if not os.path.isfile(summary):
                continue
            with open(summary) as f:
                s = json.load(f)
            if s.get("ptq"):
                fmt, layout, fold = quant_config(run)
                label = fmt + (" " + layout if fmt == "qfp8" else "") + (" + fold_bn" if fold else "")
                yield label, s["ptq"], run


def accuracy_table(sweep_dirs):
    print("| format | fp32 test top-1 | PTQ | PTQ + BN calibration | packed bytes | run |")
    print("|---|---|---|---|---|---|")
    for label, ptq, run in runs(sweep_dirs):
        pct = lambda stage: "%.2f" % (100 * ptq[stage]["test_acc"]) if stage in ptq else "-"
        print("| %s | %s | %s | %s | %s | `%s` |" % (label, pct("fp32"), pct("quantized"),
              pct("quantized_bn_calibrated"), ptq.get("packed_bytes", "-"), run))


def sqnr_table(sweep_dirs):
    columns, layers = [], []
    for label, ptq, run in runs(sweep_dirs):
        stage = "quantized_bn_calibrated" if "quantized_bn_calibrated" in ptq else "quantized"
        sqnr = ptq[stage].get("sqnr_db", {})
        columns.append((label, sqnr))
        for layer in sqnr:
            if layer not in layers:
                layers.append(layer)
    fmt = lambda v: "-" if v is None else "%.1f" % v
    print("| layer (weight / input dB) | " + " | ".join(c[0] for c in columns) + " |")
    print("|---|" + "---|" * len(columns))
    for layer in layers:
        cells = []
        for _, sqnr in columns:
            r = sqnr.get(layer)
            cells.append("-" if r is None else fmt(r["weight"]) + " / " + fmt(r["input"]))
        print("| %s | %s |" % (layer, " | ".join(cells)))


def main():
    args = sys.argv[1:]
    if not args or args == ["--sqnr"]:
        raise SystemExit(__doc__)
    if args[0] == "--sqnr":
        sqnr_table(args[1:])
    else:
        accuracy_table(args)


if __name__ == "__main__":
    main()
