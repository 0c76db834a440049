"""Wall time and peak memory of a command, its child processes included."""

import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil


@dataclass(frozen=True)
class Run:
    seconds: float
    peak_bytes: int  # the highest sum of RSS over the process and all its descendants
    output: str


def run_measured(args: list[str], cwd: Path, env: dict | None = None, every: float = 0.05) -> Run:
    """Run `args`, sampling the resident memory of its whole process tree every `every` s."""
    # The output goes to a file, not a pipe: a command that prints more than a pipe holds
    # (64 KiB) blocks on a pipe that nobody reads until it ends.
    with tempfile.TemporaryFile("w+") as log:
        started = time.perf_counter()
        process = subprocess.Popen(args, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT)
        root, peak = psutil.Process(process.pid), 0
        while process.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree if p.is_running()))
            except psutil.Error:
                pass  # a process ended between listing and reading
            time.sleep(every)
        seconds = time.perf_counter() - started
        log.seek(0)
        output = log.read()
    if process.returncode:
        raise RuntimeError(f"{' '.join(args)} failed:\n{output[-3000:]}")
    return Run(seconds, peak, output)
