"""DVC experiments the way users drive them, on a tiny slice in a temporary git repository:
`dvc repro`, `dvc exp run -S`, a queued grid on two workers, `dvc metrics diff`,
`dvc plots show`."""

import json
import re
import time
from datetime import datetime
from pathlib import Path

import pytest

from tests.conftest import (
    TINY_PIPELINE,
    copy_repo,
    dvc,
    make_dvc_repo,
    png_size,
    run,
    save_image,
    write_params,
)
from tests.test_quiet import STARTUP_WORDS

DATA_STAGES = ("download", "resize", "split")
AFTER_SPLIT = ("baseline", "train", "sweep", "evaluate", "gradcam", "export", "audit")


def ran(output: str) -> set[str]:
    return {line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage")}


@pytest.fixture(scope="module")
def baseline(tiny_pipeline, tmp_path_factory) -> Path:
    """The whole pipeline reproduced once and committed, like the repository's own baseline."""
    repo, result = tiny_pipeline
    assert ran(result.stdout) == {*DATA_STAGES, *AFTER_SPLIT}
    # What a user sees: the stages' lines, not TensorFlow's start-up lines.
    assert not [word for word in STARTUP_WORDS if word in result.stdout + result.stderr]
    return copy_repo(repo, tmp_path_factory.mktemp("experiments"))


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
    assert ran(result.stdout) == {"train", "evaluate", "gradcam", "export", "audit"}
    after = json.loads((baseline / "metrics/train.json").read_text())
    assert after["val_loss"] != before["val_loss"]
    diff = json.loads(dvc("metrics", "diff", "--json", cwd=baseline).stdout)
    changed = diff["metrics/train.json"]
    assert changed["val_loss"]["old"] == before["val_loss"]
    assert changed["val_loss"]["new"] == after["val_loss"]
    assert "metrics/evaluate.json" in diff
    params = json.loads(dvc("params", "diff", "--json", cwd=baseline).stdout)
    assert params["params.yaml"]["train.learning_rate"]["new"] == 2e-05


def test_the_readmes_own_photos_command(tmp_path):
    """`dvc exp run -S data.source=folder -S data.folder=/abs/path`, as the README gives it,
    on photos of non-square sizes (so the resize fit matters), outside the repository, in a
    repository of its own (nothing run yet), so that it runs beside the tiny pipeline's tests."""
    repo = make_dvc_repo(tmp_path)
    write_params(repo, **TINY_PIPELINE)
    run(["git", "commit", "-q", "-am", "tiny"], repo)
    photos = tmp_path / "my-photos"
    for index, name in enumerate(("heron", "otter")):
        for number in range(12):
            size = (48 + 7 * number, 30 + 5 * index)
            save_image(
                photos / name / f"IMG_{number:04d}.jpg",
                size=size,
                color=(40 + 150 * index, 90, 200 - 150 * index),
            )
    result = dvc("exp", "run", "-S", "data.source=folder", "-S", f"data.folder={photos}", cwd=repo)
    assert ran(result.stdout) == {*DATA_STAGES, *AFTER_SPLIT}
    evaluation = json.loads((repo / "metrics/evaluate.json").read_text())
    assert set(evaluation["per_class"]) == {"heron", "otter"}
    assert "above_best_baseline" in evaluation


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


WORKER_LOGS = ".dvc/tmp/exps/celery"
TASK_LINE = re.compile(
    r"^\[(?P<time>[\d-]+ [\d:,]+): INFO/MainProcess\] Task [\w.]+run_exp\[(?P<id>[\w-]+)\] "
    r"(?P<event>received|succeeded)"
)


def task_intervals(repo: Path) -> dict[str, list[datetime]]:
    """run_exp task id -> [received, succeeded], from each queue worker's own log."""
    intervals: dict[str, list[datetime]] = {}
    for log in (repo / WORKER_LOGS).glob("dvc-exp-worker-*.out"):
        for line in log.read_text().splitlines():
            if match := TASK_LINE.match(line):
                when = datetime.strptime(match["time"], "%Y-%m-%d %H:%M:%S,%f")
                intervals.setdefault(match["id"], []).append(when)
    return intervals


def test_queued_grid_runs_on_two_workers(baseline):
    grid = {(0.002, 8), (0.02, 8)}  # two variants, one per worker
    for old in (baseline / WORKER_LOGS).glob("dvc-exp-worker-*.out"):
        old.unlink()  # only this test's tasks
    dvc(
        "exp",
        "run",
        "--queue",
        "-S",
        "train.learning_rate=0.002,0.02",
        "-S",
        "train.batch_size=8",
        cwd=baseline,
    )
    dvc("queue", "start", "-j", "2", cwd=baseline)  # real background workers
    deadline, status = time.monotonic() + 1800, ""  # bounded only against a hang
    while time.monotonic() < deadline:
        time.sleep(3)
        status = dvc("queue", "status", cwd=baseline).stdout
        if not re.search(r"\b(Queued|Running)\b", status):
            break
    assert not re.search(r"\b(Queued|Running|Failed)\b", status), status
    # The workers' logs: each task from received to succeeded, and the two overlap in time
    # (one worker runs them one after the other). The daemons' processes cannot be watched:
    # DVC starts its queue workers detached, where they are not always visible in /proc.
    intervals = sorted(task_intervals(baseline).values())
    assert len(intervals) == 2 and all(len(interval) == 2 for interval in intervals), intervals
    (_, first_end), (second_start, _) = intervals
    assert second_start < first_end, "the two queued experiments never ran at the same time"
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
    assert any("suspect_labels.png" in name for name in images)  # the audit's galleries
    assert any("near_duplicates.png" in name for name in images)
    assert any("reliability.png" in name for name in images)


def test_a_correction_reruns_split_and_what_follows_and_nothing_else(baseline):
    """data/corrections.csv is a dependency of split: a reviewed edit is a commit, whose
    effect `git diff` and `dvc metrics diff` show."""
    import pandas as pd

    table = pd.read_csv(baseline / "data/split.csv")
    train = table[table["split"] == "train"]
    relabelled, excluded = train.iloc[0], train.iloc[1]
    other = next(name for name in sorted(table["class"].unique()) if name != relabelled["class"])
    assert json.loads(dvc("status", "--json", cwd=baseline).stdout) == {}
    with (baseline / "data/corrections.csv").open("a") as corrections:
        corrections.write(
            f"{relabelled['path']},relabel,{other},looks like one\n"
            f"{excluded['path']},exclude,,blurred\n"
        )
    status = json.loads(dvc("status", "--json", cwd=baseline).stdout)
    assert set(status) == {"split"}, status  # only split's own deps changed
    assert ran(dvc("repro", "split", cwd=baseline).stdout) == {"split"}
    # What follows split is now out of date, and nothing before it.
    assert set(json.loads(dvc("status", "--json", cwd=baseline).stdout)) == set(AFTER_SPLIT)
    after = pd.read_csv(baseline / "data/split.csv").set_index("path")
    assert after.loc[relabelled["path"], "class"] == other
    assert after.loc[excluded["path"], "split"] == "excluded"
    split = json.loads((baseline / "metrics/split.json").read_text())
    assert (split["relabelled"], split["excluded"]) == (1, 1)
    diff = run(["git", "diff", "--", "data/corrections.csv"], baseline).stdout
    assert f"+{relabelled['path']},relabel,{other}" in diff
    metrics = json.loads(dvc("metrics", "diff", "--json", cwd=baseline).stdout)
    assert metrics["metrics/split.json"]["excluded"] == {"old": 0, "new": 1, "diff": 1}
