"""Resume after a kill, on the embedded data: how long the re-run takes, and whether it ends
with the same model.

    python -m bench.resume        # about 10 minutes on 2 cores

In a clone at its committed params: `dvc repro train` uninterrupted (the reference), then
`dvc repro --force train` killed once half of the epochs are backed up, then `dvc repro
train` again, which resumes. Compares the re-run's time with the uninterrupted run's, and
the two models weight by weight. Writes bench/resume.md.
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from bench.machine import describe_machine, matmul_gflops
from bench.record import markdown_table
from bench.workspace import ROOT, clone, command_env, dvc, read_yaml

BACKUP = ".dvc/tmp/train-backup"


def timed_train(repo: Path, *extra: str) -> tuple[float, str]:
    started = time.perf_counter()
    result = dvc("repro", *extra, "train", cwd=repo)
    return time.perf_counter() - started, result.stdout + result.stderr


def kill_after(repo: Path, epochs_done: int) -> float:
    """`dvc repro --force train`, killed (its whole process group) once the backup holds
    `epochs_done` epochs; the seconds it ran."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "dvc", "repro", "--force", "train"],
        cwd=repo,
        env=command_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    while process.poll() is None:
        states = list((repo / BACKUP).glob("*/state.json"))
        if states and json.loads(states[0].read_text())["epochs_done"] >= epochs_done:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            return time.perf_counter() - started
        time.sleep(0.5)
    raise SystemExit("train finished before it could be killed")


def weights(repo: Path) -> list[np.ndarray]:
    import keras

    return keras.models.load_model(repo / "models/model.keras", compile=False).get_weights()


def main() -> None:
    gflops = matmul_gflops()
    with tempfile.TemporaryDirectory(prefix="bench-resume-") as folder:
        repo = clone(Path(folder) / "repo")
        epochs = read_yaml(repo / "params.yaml")["train"]["epochs"]
        dvc("repro", "split", cwd=repo)  # the data stages, outside the timings
        full, _ = timed_train(repo)
        reference = weights(repo)
        killed_after = kill_after(repo, epochs // 2)
        rerun, log = timed_train(repo, "--no-run-cache")  # not restored: really resumed
        resumed = weights(repo)
    same = len(reference) == len(resumed) and all(
        np.array_equal(a, b) for a, b in zip(reference, resumed, strict=True)
    )
    line = next((x for x in log.splitlines() if "resuming from epoch" in x), "no resume line")
    figures = {
        "`dvc repro train`, uninterrupted": f"{full:.0f} s ({epochs} epochs)",
        f"killed after {epochs // 2} epochs were backed up": f"at {killed_after:.0f} s",
        "`dvc repro train` after the kill": f"{rerun:.0f} s ({rerun / full:.0%} of the "
        "uninterrupted run)",
        "its log": f"`{line.strip()}`",
        "the two models, weight by weight": "identical" if same else "**different**",
    }
    report = (
        f"Measured {time.strftime('%Y-%m-%d')} on {describe_machine()}; "
        f"dense matmul {gflops:.0f} GFLOP/s.\n\n"
        + markdown_table([{"figure": name, "value": value} for name, value in figures.items()])
        + "\n"
    )
    (ROOT / "bench" / "resume.md").write_text(report)
    print(report)
    sys.exit(0 if same else 1)


if __name__ == "__main__":
    main()
