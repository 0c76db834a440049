"""What machine a benchmark ran on, and how fast it is at dense math: every absolute time
in a results table is printed beside this machine's matmul GFLOP/s, because machines here
differ by 2x or more."""

import os
import platform
import time
from pathlib import Path


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


def describe_machine() -> str:
    cpu = "unknown CPU"
    info = Path("/proc/cpuinfo")
    if info.exists():
        names = [
            line.split(":", 1)[1].strip()
            for line in info.read_text().splitlines()
            if line.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    import tensorflow as tf

    gpus = len(tf.config.list_physical_devices("GPU"))
    return (
        f"{cpu}, {cores()} cores, {memory:.0f} GiB, {gpus} GPU(s); "
        f"Python {platform.python_version()}, TensorFlow {tf.__version__}"
    )


def matmul_gflops(size: int = 2048, repeats: int = 10) -> float:
    """float32 tf.matmul of two size x size matrices, the best of three timings."""
    import tensorflow as tf

    a = tf.random.normal((size, size))
    b = tf.random.normal((size, size))
    tf.matmul(a, b).numpy()  # warm-up
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for _ in range(repeats):
            c = tf.matmul(a, b)
        c.numpy()
        best = min(best, time.perf_counter() - started)
    return 2 * size**3 * repeats / best / 1e9
