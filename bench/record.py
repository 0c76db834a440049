"""A benchmark's results file: where, when and on what code it ran, one row per dataset,
written again after every row so that a long run that stops keeps what it measured."""

import json
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.machine import describe_machine, matmul_gflops
from bench.workspace import ROOT


def git_commit() -> str:
    return subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip


def run_rows(
    names: list[str],
    run: Callable[[str, Path], dict],
    table: Callable[[dict], str],
    out: Path,
    name: str,
) -> dict:
    """`run(name, work folder)` for each name, in one temporary folder; after each, the rows
    so far in out/<name>.json and, as `table` writes them, out/<name>.md."""
    started = time.perf_counter()
    results = {"date": time.strftime("%Y-%m-%d"), "machine": describe_machine(),
               "matmul_gflops": matmul_gflops(), "commit": git_commit(), "rows": []}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix=f"bench-{name}-") as folder:
        for item in names:
            results["rows"].append(run(item, Path(folder)))
            results["minutes"] = (time.perf_counter() - started) / 60
            (out / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
            (out / f"{name}.md").write_text(table(results))
    return results
