"""dvc.yaml itself: its deps name every module a stage runs, and `dvc repro` works end to end."""

import ast
import json
import re
from pathlib import Path

import yaml

from tests.conftest import ROOT, dvc, write_params


def stages_imported_by(module: str) -> set[str]:
    """stages.* modules that `module` imports, directly or through each other."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        tree = ast.parse((ROOT / (name.replace(".", "/") + ".py")).read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("stages."):
                todo.append(node.module)
            elif isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.startswith("stages.")]
    return seen


def test_every_stage_depends_on_the_code_it_runs():
    pipeline = yaml.safe_load((ROOT / "dvc.yaml").read_text())
    for name, stage in pipeline["stages"].items():
        module = re.search(r"python -m (stages\.\w+)", stage["cmd"]).group(1)
        needed = {m.replace(".", "/") + ".py" for m in stages_imported_by(module)}
        missing = needed - set(stage["deps"])
        assert not missing, f"stage {name} runs {sorted(missing)} but does not list it in deps"


def test_data_stages_with_dvc(dvc_repo: Path):
    write_params(dvc_repo, data__max_images_per_class=12)
    first = dvc("repro", "split", cwd=dvc_repo)
    for stage in ("download", "resize", "split"):
        assert f"Running stage '{stage}'" in first.stdout
    raw = dvc_repo / "data" / "raw"
    assert len(list(raw.glob("*/*.png"))) == 120
    split = json.loads((dvc_repo / "metrics" / "split.json").read_text())
    assert split["train"] + split["val"] + split["test"] + split["duplicates_dropped"] == 120
    assert all(counts["test"] >= 1 for counts in split["per_class"].values())
    assert (dvc_repo / "plots" / "class_distribution.png").stat().st_size > 10_000
    assert (dvc_repo / "dvc.lock").exists()

    second = dvc("repro", "split", cwd=dvc_repo)
    assert "Running stage" not in second.stdout
    assert "didn't change, skipping" in second.stdout
    status = dvc("status", "--with-deps", "split", "--json", cwd=dvc_repo)
    assert json.loads(status.stdout) == {}
