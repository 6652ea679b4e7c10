#!/usr/bin/python3
"""The PTQ results of one or more sweeps as a markdown table (issue 5, Must show 3): for each
run directory under the given sweep directories, the format and layout that ran (from its
config.yaml), and the test top-1 of the fp32 model, of the quantized model before BatchNorm
calibration and after it (summary.json's "ptq" section, written by run.mode ptq).

    scripts/ptq_table.py runs/resnet20_ptq_qfp8 [more sweep dirs ...]
"""
import json
import os
import sys


def rows(sweep_dir):
    for name in sorted(os.listdir(sweep_dir)):
        run = os.path.join(sweep_dir, name)
        summary = os.path.join(run, "summary.json")
        if not os.path.isfile(summary):
            continue
        with open(summary) as f:
            s = json.load(f)
        ptq = s.get("ptq")
        if not ptq:
            continue
        fmt = layout = "?"
        with open(os.path.join(run, "config.yaml")) as f:
            section = None
            for line in f:
                if not line.startswith(" "):
                    section = line.split(":")[0]
                elif section == "quant" and line.startswith("  format:"):
                    fmt = line.split(":", 1)[1].split("#")[0].strip()
                elif section == "quant" and line.startswith("  layout:"):
                    layout = line.split(":", 1)[1].split("#")[0].strip()
        label = fmt + (" " + layout if fmt == "qfp8" else "")
        pct = lambda stage: "%.2f" % (100 * ptq[stage]["test_acc"]) if stage in ptq else "-"
        yield (label, pct("fp32"), pct("quantized"), pct("quantized_bn_calibrated"),
               str(ptq.get("packed_bytes", "-")), run)


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    print("| format | fp32 test top-1 | PTQ | PTQ + BN calibration | packed bytes | run |")
    print("|---|---|---|---|---|---|")
    for d in sys.argv[1:]:
        for r in rows(d):
            print("| %s | %s | %s | %s | %s | `%s` |" % r)


if __name__ == "__main__":
    main()
