"""The committed baseline (dvc.lock, metrics/, plots/) comes from the committed code and params.

After a clone, `dvc metrics diff` and `dvc plots show` compare against that baseline, so a
lock recorded before the last change to stages/ or params.yaml would be a lie.
"""

import json

from tests.conftest import ROOT, dvc

# Outputs kept out of git: absent in a fresh clone, which `dvc status` reports as deleted
# or not in cache.
NOT_IN_GIT = ("data/", "models/")
ABSENT = ("deleted", "not in cache")


def stale_entries(status: dict) -> list[str]:
    problems = []
    for stage, changes in status.items():
        for change in changes:
            if isinstance(change, str):  # e.g. "changed command"
                problems.append(f"{stage}: {change}")
                continue
            for kind, entries in change.items():
                for path, state in entries.items():
                    if isinstance(state, dict):  # params.yaml: {key: state}
                        problems += [
                            f"{stage}: {kind} {path}:{key} {s}" for key, s in state.items()
                        ]
                    elif not (state in ABSENT and path.startswith(NOT_IN_GIT)):
                        problems.append(f"{stage}: {kind} {path} {state}")
    return problems


def test_committed_lock_is_not_stale():
    assert (ROOT / "dvc.lock").is_file(), "no dvc.lock: run `dvc repro` and commit the results"
    status = json.loads(dvc("status", "--json", cwd=ROOT).stdout)
    assert stale_entries(status) == [], (
        "dvc.lock does not match the code, params or committed results: "
        "run `dvc repro` and commit dvc.lock, metrics/ and plots/ with the code"
    )


def test_stale_entries_reads_dvc_status():
    status = {
        "train": [
            {"changed deps": {"stages/train.py": "modified", "data/split.csv": "deleted"}},
            {"changed deps": {"params.yaml": {"train.epochs": "modified"}}},
            {
                "changed outs": {
                    "models/model.keras": "not in cache",
                    "metrics/train.json": "modified",
                }
            },
            "changed command",
        ]
    }
    assert stale_entries(status) == [
        "train: changed deps stages/train.py modified",
        "train: changed deps params.yaml:train.epochs modified",
        "train: changed outs metrics/train.json modified",
        "train: changed command",
    ]
