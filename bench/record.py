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


def combine(runs: list[dict], replace_by: tuple[str, ...] = ()) -> dict:
    """Several runs of one benchmark (rows or seeds run apart, on the same code) as one:
    every row, and what each run says of where and when it was measured. With
    `replace_by`, a row of a later run replaces an earlier run's row with the same values of
    those keys (a row measured again)."""

    def joined(key: str) -> str:
        return ", ".join(dict.fromkeys(str(run[key]) for run in runs if key in run))

    rows: list[dict] = []
    for run in runs:
        for row in run["rows"]:
            if replace_by:
                key = [row[name] for name in replace_by]
                rows = [kept for kept in rows if [kept[name] for name in replace_by] != key]
            rows.append(row)
    return {
        "date": joined("date"), "machine": joined("machine"), "commit": joined("commit"),
        "matmul_gflops": min(run["matmul_gflops"] for run in runs),
        "minutes": sum(run["minutes"] for run in runs), "rows": rows,
    }  # fmt: skip
