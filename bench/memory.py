"""Figure 6 of bench.run: peak memory of resize, split and one training epoch on 26,000
photos (Animals-10's size), each stage run by its command in dvc.yaml."""

import shlex
import shutil
import sys
from pathlib import Path

from bench.measure import run_measured
from bench.photos import make_photos
from bench.workspace import ROOT, command_env, read_yaml, set_params

STAGES = ("download", "resize", "split", "train")


def stage_command(stage: str) -> list[str]:
    """The stage's command as dvc.yaml writes it, run by this Python."""
    words = shlex.split(read_yaml(ROOT / "dvc.yaml")["stages"][stage]["cmd"])
    return [sys.executable, *words[1:]] if words[0] == "python" else words


def bench_memory(work: Path, count: int) -> dict:
    photos = work / "big-photos"
    make_photos(photos, count, seed=1)
    space = work / "big"
    (space / "data").mkdir(parents=True)
    shutil.copy(ROOT / "data/corrections.csv", space / "data/corrections.csv")
    set_params(
        space,
        source=ROOT / "params.yaml",
        data={"source": "folder", "folder": str(photos)},
        train={"epochs": 1, "early_stopping_patience": 0},
    )
    result = {}
    for stage in STAGES:
        run = run_measured(stage_command(stage), space, command_env())
        result[stage] = {"seconds": run.seconds, "peak_bytes": run.peak_bytes}
    result["images"] = count
    return result
