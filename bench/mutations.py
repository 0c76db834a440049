"""Does the suite catch known ways of breaking the code? Run on demand, not in CI.

    python -m bench.mutations               # every mutation of bench/mutations.yaml
    python -m bench.mutations --only seed   # those whose name contains "seed"

Each mutation replaces one exact piece of text in one file of a copy of this repository
(it must occur there exactly once), then runs the tests that should catch it. A mutation
the tests pass on survives: a hole to close. The list lives in bench/mutations.yaml, so the
next hole found becomes one more entry there.
"""

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.workspace import ROOT, read_yaml

LIST = ROOT / "bench" / "mutations.yaml"
ANYWHERE = shutil.ignore_patterns(
    ".git", ".venv", "__pycache__", ".pytest_cache", ".ruff_cache", "*.egg-info"
)
AT_THE_ROOT = {"data", "models", "dvc_plots"}  # the pipeline's outputs, not the package's data/


def skip(folder: str, names: list[str]) -> set[str]:
    ignored = ANYWHERE(folder, names)
    return ignored | (AT_THE_ROOT & set(names) if Path(folder) == ROOT else set())


def apply(copy: Path, mutation: dict) -> None:
    path = copy / mutation["file"]
    text = path.read_text()
    count = text.count(mutation["old"])
    if count != 1:
        raise SystemExit(
            f"{mutation['name']}: the text to replace occurs {count} times in "
            f"{mutation['file']}; make it unique"
        )
    path.write_text(text.replace(mutation["old"], mutation["new"]))


def caught(mutation: dict, work: Path) -> tuple[bool, float]:
    """Whether the named tests fail on a copy with the mutation, and how long they took."""
    copy = work / "copy"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(ROOT, copy, ignore=skip)
    apply(copy, mutation)
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *mutation["tests"]],
        cwd=copy,
        capture_output=True,
        text=True,
    )
    return result.returncode != 0, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run only the mutations whose name contains this")
    args = parser.parse_args()
    mutations = [m for m in read_yaml(LIST) if not args.only or args.only in m["name"]]
    survivors = []
    with tempfile.TemporaryDirectory(prefix="mutations-") as folder:
        for mutation in mutations:
            killed, seconds = caught(mutation, Path(folder))
            print(
                f"{'caught  ' if killed else 'SURVIVED'} {mutation['name']} ({seconds:.0f} s)",
                flush=True,
            )
            if not killed:
                survivors.append(mutation["name"])
    print(
        f"{len(mutations) - len(survivors)} of {len(mutations)} caught; "
        f"{len(survivors)} survivors{': ' + ', '.join(survivors) if survivors else ''}"
    )
    sys.exit(1 if survivors else 0)


if __name__ == "__main__":
    main()
