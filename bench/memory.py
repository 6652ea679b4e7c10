"""Peak-memory helpers shared by the benchmark drivers: the kernel's VmHWM (peak RSS)
is reset to the current RSS by writing 5 to /proc/self/clear_refs."""


def read_status_kib(key):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{key} not in /proc/self/status")


def clear_peak():
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")
