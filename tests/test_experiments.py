"""DVC experiments the way users drive them, on a tiny slice in a temporary git repository:
`dvc repro`, `dvc exp run -S`, a queued grid on two workers, `dvc metrics diff`,
`dvc plots show`."""

import json
import re
import time
from pathlib import Path

import pytest

from tests.conftest import dvc, make_dvc_repo, png_size, run, write_params

TINY_PIPELINE = {
    "data__max_images_per_class": 10,
    "resize__size": 32,
    "train__epochs": 2,
    "train__min_steps": 0,
    "train__batch_size": 16,
    "train__filters": [8, 16],
    "sweep__learning_rates": [0.001, 0.01],
    "sweep__batch_sizes": [16],
    "sweep__epochs": 1,
    "sweep__train_fraction": 1.0,
    "evaluate__mistakes_shown": 4,
    "gradcam__correct_per_class": 1,
    "gradcam__wrong_per_class": 1,
}
DATA_STAGES = ("download", "resize", "split")


def ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


@pytest.fixture(scope="module")
def baseline(tmp_path_factory) -> Path:
    """The whole pipeline reproduced once and committed, like the repository's own baseline."""
    repo = make_dvc_repo(tmp_path_factory.mktemp("experiments"))
    write_params(repo, **TINY_PIPELINE)
    result = dvc("repro", cwd=repo)
    assert ran(result.stdout) == {*DATA_STAGES, "train", "sweep", "evaluate", "gradcam", "export"}
    run(["git", "add", "-A"], repo)
    run(["git", "commit", "-q", "-m", "baseline"], repo)
    return repo


def test_second_repro_does_nothing(baseline):
    result = dvc("repro", cwd=baseline)
    assert ran(result.stdout) == set()
    assert json.loads(dvc("status", "--json", cwd=baseline).stdout) == {}


def test_sweep_outputs(baseline):
    sweep = json.loads((baseline / "metrics/sweep.json").read_text())
    assert sweep["pairs"] == 2
    assert sweep["best"]["learning_rate"] in (0.001, 0.01) and sweep["best"]["batch_size"] == 16
    rows = (baseline / "plots/sweep/results.csv").read_text().splitlines()
    header = "pair,learning_rate,batch_size,score,val_macro_f1,val_balanced_accuracy,val_accuracy"
    assert rows[0].startswith(header)  # score: train.monitor, here val_macro_f1
    assert [row.split(",")[3] for row in rows[1:]] == [row.split(",")[4] for row in rows[1:]]
    assert len(rows) == 3
    width, height = png_size(baseline / "plots/sweep/heatmap.png")
    assert width > 200 and height > 150


def test_exp_run_reruns_only_what_depends_on_train_params(baseline):
    before = json.loads((baseline / "metrics/train.json").read_text())
    # DVC writes this value as `2e-05`, which YAML 1.1 (PyYAML) reads as a string.
    result = dvc("exp", "run", "-S", "train.learning_rate=0.00002", cwd=baseline)
    assert "learning_rate: 2e-05" in (baseline / "params.yaml").read_text()
    assert ran(result.stdout) == {"train", "evaluate", "gradcam", "export"}
    after = json.loads((baseline / "metrics/train.json").read_text())
    assert after["val_loss"] != before["val_loss"]
    diff = json.loads(dvc("metrics", "diff", "--json", cwd=baseline).stdout)
    changed = diff["metrics/train.json"]
    assert changed["val_loss"]["old"] == before["val_loss"]
    assert changed["val_loss"]["new"] == after["val_loss"]
    assert "metrics/evaluate.json" in diff
    params = json.loads(dvc("params", "diff", "--json", cwd=baseline).stdout)
    assert params["params.yaml"]["train.learning_rate"]["new"] == 2e-05


def finished_experiments(repo: Path) -> dict[tuple, dict]:
    """(learning_rate, batch_size) -> the experiment's data, for experiments with metrics."""
    shown = json.loads(dvc("exp", "show", "--json", cwd=repo).stdout)
    experiments = [
        exp["data"]
        for commit in shown
        for run_ in commit.get("experiments") or []
        for exp in run_.get("revs", [])
    ]
    finished = {}
    for exp in experiments:
        train = exp["params"]["params.yaml"]["data"]["train"]
        if exp.get("metrics") and exp.get("status", "Success") == "Success":
            finished[(train["learning_rate"], train["batch_size"])] = exp
    return finished


def test_queued_grid_runs_on_two_workers(baseline):
    grid = {(0.002, 8), (0.02, 8)}  # two variants, one per worker
    dvc("exp", "run", "--queue", "-S", "train.learning_rate=0.002,0.02",
        "-S", "train.batch_size=8", cwd=baseline)  # fmt: skip
    dvc("queue", "start", "-j", "2", cwd=baseline)  # real background workers
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        status = dvc("queue", "status", cwd=baseline).stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            break
        time.sleep(3)
    assert not re.search(r"\b(Queued|Running|Failed)\b", status), status
    finished = finished_experiments(baseline)
    assert grid <= set(finished), (sorted(finished), status)
    evaluations = [finished[pair]["metrics"]["metrics/evaluate.json"]["data"] for pair in grid]
    trainings = [finished[pair]["metrics"]["metrics/train.json"]["data"] for pair in grid]
    # Each ran its own training: no two experiments share a result.
    assert len({json.dumps(t["val_loss"]) + str(t["last"]) for t in trainings}) == len(grid)
    assert all("accuracy" in evaluation for evaluation in evaluations)


def test_plots_show_renders_curves_sweep_and_images(baseline):
    dvc("plots", "show", "--out", "dvc_plots", cwd=baseline)
    html = (baseline / "dvc_plots" / "index.html").read_text()
    assert "Training accuracy, train vs val, by epoch" in html
    assert "Training macro F1 (the default train.monitor), train vs val, by epoch" in html
    assert "Sweep, the train.monitor score of each learning rate x batch size pair" in html
    assert "Confusion matrix on the test set" in html
    images = {p.name for p in (baseline / "dvc_plots" / "static").iterdir()}
    assert any("heatmap.png" in name for name in images)
    assert any("confusion_matrix.png" in name for name in images)
    assert any("cat.png" in name for name in images)  # a Grad-CAM grid
