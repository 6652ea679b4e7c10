#!/usr/bin/env python3
"""One training step (forward, cross-entropy, backward, AdamW) of qilin vs PyTorch on the
same model, batch and machine, in the same run.

Both sides are long-lived processes pinned to the same 2 CPUs with 2 threads each, warmed
up, then driven one step at a time, alternating which side goes first each round, so slow
phases of a shared machine hit both alike. Prints medians, the ratio qilin / PyTorch, and
each side's peak step memory (VmHWM above the memory held once model and optimizer exist).

Usage: bench/compare_step.py [--models vit,resnet20] [--batch 128] [--steps 21]
                             [--warmup 5] [--build build] [--profile]
"""
import argparse
import os
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


class Side:
    def __init__(self, name, argv, env):
        self.name = name
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, env=env, cwd=ROOT)

    def ask(self, cmd, multiline=False):
        """Sends one command; returns its reply line, or the lines up to "end"."""
        self.proc.stdin.write(cmd + "\n")
        self.proc.stdin.flush()
        lines = []
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise SystemExit(f"{self.name} exited while answering {cmd!r}")
            if not multiline:
                return line.rstrip("\n")
            if line.strip() == "end":
                return "".join(lines).rstrip("\n")
            lines.append(line)

    def close(self):
        try:
            self.ask("quit")
        except SystemExit:
            pass
        self.proc.wait(timeout=30)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="vit,resnet20")
    ap.add_argument("--batch", type=int, default=128)
    ap.add_argument("--steps", type=int, default=21)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--build", default="build")
    ap.add_argument("--profile", action="store_true", help="also print both sides' per-op profiles")
    ap.add_argument("--torch-coretype", default="",
                    help="OPENBLAS_CORETYPE for the PyTorch process only (e.g. SkylakeX): Debian's "
                         "OpenBLAS 0.3.21 falls back to SSE3 kernels on CPUs it does not know, and "
                         "qilin corrects that for itself (kernels/cpu/gemm.cpp); this gives PyTorch "
                         "the same correction")
    args = ap.parse_args()

    env = dict(os.environ, OMP_NUM_THREADS="2", OPENBLAS_NUM_THREADS="2")
    pin = ["taskset", "-c", "0,1"] if os.cpu_count() and os.cpu_count() >= 2 else []
    bench = os.path.join(ROOT, args.build, "bin", "bench_step")
    rows = []
    for model in args.models.split(","):
        ours = Side("qilin", pin + [bench, "--model", model, "--batch", str(args.batch), "--serve"], env)
        torch_env = dict(env, OPENBLAS_CORETYPE=args.torch_coretype) if args.torch_coretype else env
        torch = Side("torch", pin + ["/usr/bin/python3", os.path.join(HERE, "torch_step.py"), model,
                                     str(args.batch)], torch_env)
        print(f"# {model}, batch {args.batch}")
        print(f"#   qilin: {ours.ask('info')}")
        print(f"#   torch: {torch.ask('info')}")
        for _ in range(args.warmup):
            ours.ask("step")
            torch.ask("step")
        t_ours, t_torch = [], []
        for i in range(args.steps):
            pair = (ours, torch) if i % 2 == 0 else (torch, ours)
            for side in pair:
                ms = float(side.ask("step"))
                (t_ours if side is ours else t_torch).append(ms)
        peak_ours = int(ours.ask("peak"))
        peak_torch = int(torch.ask("peak"))
        if args.profile:
            print(f"## qilin profile ({model}, 5 steps)\n{ours.ask('profile', multiline=True)}")
            print(f"## torch profile ({model}, 5 steps)\n{torch.ask('profile', multiline=True)}")
        ours.close()
        torch.close()
        m_ours, m_torch = statistics.median(t_ours), statistics.median(t_torch)
        rows.append((model, m_ours, m_torch, m_ours / m_torch, peak_ours, peak_torch))

    print(f"\n{'model':<10} {'qilin ms':>10} {'torch ms':>10} {'ratio':>7} {'qilin MiB':>10} {'torch MiB':>10}"
          f"   (median of {args.steps} interleaved steps, batch {args.batch}, 2 threads"
          f"{', torch OPENBLAS_CORETYPE=' + args.torch_coretype if args.torch_coretype else ''})")
    for model, mo, mt, ratio, po, pt in rows:
        print(f"{model:<10} {mo:10.2f} {mt:10.2f} {ratio:7.3f} {po / 2**20:10.1f} {pt / 2**20:10.1f}")


if __name__ == "__main__":
    sys.exit(main())
