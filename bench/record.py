"""A benchmark's results file: where, when and on what code it ran, one row per measurement,
written again after every row so that a long run that stops keeps what it measured.

Every benchmark keeps its results as bench/<name>.json (the data) and bench/<name>.md (its
table, written by the benchmark's own `table(results)` from the data). Earlier results
live in git history, not in code.
"""

import contextlib
import json
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from ruamel.yaml import YAML

from bench.machine import describe_machine, matmul_gflops
from bench.workspace import ROOT


def git_commit() -> str:
    return subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def parse_overrides(pairs: list[str]) -> dict[str, dict]:
    """["train.zoom=0.08", ...] -> {"train": {"zoom": 0.08}}, values read as YAML."""
    sections: dict[str, dict] = {}
    for pair in pairs:
        key, _, text = pair.partition("=")
        section, _, name = key.partition(".")
        sections.setdefault(section, {})[name] = YAML(typ="safe").load(text)
    return sections


class Results:
    """out/<name>.json and out/<name>.md, the table written by `table(results)`."""

    def __init__(self, out: Path, name: str, table: Callable[[dict], str]) -> None:
        self.json, self.markdown, self.table = out / f"{name}.json", out / f"{name}.md", table

    @staticmethod
    def heading(results: dict) -> str:
        """Where, when and on what code: absolute times mean something only beside the
        machine's matmul speed (machines here differ by 2x or more)."""
        extra = "".join(
            f"; {key} {results[key]}" for key in ("seeds", "variant") if results.get(key)
        )
        return (
            f"Commit {results['commit']}, measured {results['date']} on {results['machine']}; "
            f"dense matmul {results['matmul_gflops']:.0f} GFLOP/s; "
            f"{results['minutes']:.0f} min in all{extra}."
        )

    def write(self, results: dict) -> None:
        self.json.parent.mkdir(parents=True, exist_ok=True)
        self.json.write_text(json.dumps(results, indent=2) + "\n")
        self.markdown.write_text(self.table(results))
        print(self.table(results), flush=True)

    @contextlib.contextmanager
    def run(self, **about) -> Iterator[tuple[Callable[[dict], None], Path]]:
        """(record, work folder): record(row) appends a row and writes both files."""
        started = time.perf_counter()
        results = {
            "date": time.strftime("%Y-%m-%d"),
            "machine": describe_machine(),
            "matmul_gflops": matmul_gflops(),
            "commit": git_commit(),
            **about,
            "minutes": 0.0,
            "rows": [],
        }

        def record(row: dict) -> None:
            print(json.dumps(row), flush=True)
            results["rows"].append(row)
            results["minutes"] = (time.perf_counter() - started) / 60
            self.write(results)

        with tempfile.TemporaryDirectory(prefix=f"bench-{self.json.stem}-") as folder:
            yield record, Path(folder)


def add_combine_option(parser) -> None:
    """--combine, the same in every benchmark that is run in parts (seeds or rows apart)."""
    parser.add_argument(
        "--combine",
        nargs="+",
        type=Path,
        metavar="JSON",
        help="write one table of these earlier results (a later row measured again replaces "
        "the earlier one), run nothing",
    )


def combine_files(paths: list[Path], replace_by: tuple[str, ...]) -> dict:
    return combine([json.loads(path.read_text()) for path in paths], replace_by)


def combine(runs: list[dict], replace_by: tuple[str, ...] = ()) -> dict:
    """Several runs of one benchmark (rows or seeds run apart, on the same code) as one:
    every row, and what each run says of where and when it was measured. With
    `replace_by`, a row of a later run replaces an earlier run's row with the same values of
    those keys (a row measured again)."""

    def joined(key: str) -> str:
        return ", ".join(dict.fromkeys(str(run[key]) for run in runs if run.get(key)))

    rows: list[dict] = []
    for run in runs:
        for row in run["rows"]:
            if replace_by:
                key = [row[name] for name in replace_by]
                rows = [kept for kept in rows if [kept[name] for name in replace_by] != key]
            rows.append(row)
    return {
        "date": joined("date"),
        "machine": joined("machine"),
        "commit": joined("commit"),
        "matmul_gflops": min(run["matmul_gflops"] for run in runs),
        "minutes": sum(run["minutes"] for run in runs),
        "seeds": joined("seeds"),
        "variant": joined("variant"),
        "rows": rows,
    }


@dataclass(frozen=True)
class Target:
    """What a figure must reach: at least (or under) `bound`, in `unit`; written once, both
    the text of the table and the check."""

    bound: float
    unit: str = ""
    at_least: bool = True

    def text(self) -> str:
        return f"{'>=' if self.at_least else '<'} {self.bound:g}{self.unit}"

    def met(self, value: float) -> bool:
        return value >= self.bound if self.at_least else value < self.bound


@dataclass(frozen=True)
class Figure:
    """One row of a benchmark's table: ours against a baseline measured in the same run."""

    name: str
    ours: str
    baseline: str
    ratio: str
    value: float | None = None  # what the target judges
    target: Target | None = None
    gflops: str = ""  # the machine's matmul speed beside an absolute time

    def row(self) -> dict:
        met = "" if self.target is None else "yes" if self.target.met(self.value) else "**no**"
        return {
            "figure": self.name,
            "ours": self.ours,
            "baseline (same run)": self.baseline,
            "ratio": self.ratio,
            "target": self.target.text() if self.target else "",
            "met": met,
            "matmul GFLOP/s": self.gflops,
        }


def markdown_table(rows: list[dict]) -> str:
    """Rows of formatted cells as a Markdown table: the benchmarks' one renderer."""
    return pd.DataFrame(rows).to_markdown(index=False, disable_numparse=True)


def figures_table(figures: list[Figure]) -> str:
    return markdown_table([figure.row() for figure in figures])
