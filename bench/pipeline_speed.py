"""Figure 2 of bench.run: every stage of the default pipeline from scratch in a fresh clone,
then `dvc repro` with nothing to do."""

import json
import sys
from pathlib import Path

import numpy as np

from bench.measure import run_measured
from bench.workspace import clone, command_env, read_yaml


def bench_dvc(work: Path) -> dict:
    """Each stage of the default pipeline from scratch, in order, in a fresh clone."""
    repo = clone(work / "clone")
    env = command_env()
    stages = list(read_yaml(repo / "dvc.yaml")["stages"])  # written in the order they run
    seconds = {}
    for stage in stages:
        # --force: a clone already holds the committed results of the stages whose outputs
        # are all in git (sweep), and DVC would rightly skip them.
        command = [sys.executable, "-m", "dvc", "repro", "--force", "--single-item", stage]
        run = run_measured(command, repo, env)
        assert f"Running stage '{stage}'" in run.output, run.output[-2000:]
        seconds[stage] = run.seconds
    noop = [run_measured([sys.executable, "-m", "dvc", "repro"], repo, env) for _ in range(3)]
    assert "Running stage" not in noop[0].output
    training = json.loads((repo / "metrics/train.json").read_text())
    return {
        "stage_seconds": seconds,
        "full_seconds": sum(seconds.values()),
        "noop_seconds": float(np.median([run.seconds for run in noop])),
        "train_stage_images_per_second": training["images_per_second"],
        "clone": repo,
    }
