"""dvc.yaml itself: its deps name every module a stage runs, and `dvc repro` works end to end."""

import ast
import json
import re
from pathlib import Path

from tests.conftest import ROOT, dvc, make_class_tree, png_size, read_yaml, write_params


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
    pipeline = read_yaml(ROOT / "dvc.yaml")
    for name, module in stage_modules().items():
        stage = pipeline["stages"][name]
        needed = {m.replace(".", "/") + ".py" for m in stages_imported_by(module)}
        listed = {dep for dep in stage["deps"] if dep.startswith("stages/")}
        assert listed == needed, (
            f"stage {name}: deps lack {sorted(needed - listed)}, list unused {sorted(listed - needed)}"
        )


def stage_modules() -> dict[str, str]:
    pipeline = read_yaml(ROOT / "dvc.yaml")
    return {
        name: re.search(r"python -m (stages\.\w+)", stage["cmd"]).group(1)
        for name, stage in pipeline["stages"].items()
    }


def test_no_stage_imports_another_stage():
    """What two stages share lives in a shared module, so each stage's deps stay its own."""
    stages = set(stage_modules().values())
    for module in stages:
        imported = stages_imported_by(module) - {module}
        assert not imported & stages, f"{module} imports the stage(s) {imported & stages}"


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
    width, height = png_size(dvc_repo / "plots" / "class_distribution.png")
    assert width > 400 and height > 300
    assert (dvc_repo / "dvc.lock").exists()

    second = dvc("repro", "split", cwd=dvc_repo)
    assert "Running stage" not in second.stdout
    assert "didn't change, skipping" in second.stdout
    status = dvc("status", "--with-deps", "split", "--json", cwd=dvc_repo)
    assert json.loads(status.stdout) == {}


def test_photos_in_the_source_folder_are_a_dependency(dvc_repo: Path, tmp_path: Path):
    """Adding, removing or editing a photo of data.folder re-runs download."""
    photos = make_class_tree(tmp_path / "photos", classes=("cat", "dog"), per_class=3)
    write_params(dvc_repo, data__source="folder", data__folder=str(photos))
    dvc("repro", "download", cwd=dvc_repo)
    raw = dvc_repo / "data" / "raw"
    assert json.loads(dvc("status", "download", "--json", cwd=dvc_repo).stdout) == {}

    make_class_tree(photos, classes=("dog",), per_class=4, seed=1)  # dog/003.png is new
    status = json.loads(dvc("status", "download", "--json", cwd=dvc_repo).stdout)
    assert status["download"] == [{"changed deps": {str(photos): "modified"}}]
    assert "Running stage 'download'" in dvc("repro", "download", cwd=dvc_repo).stdout
    assert (raw / "dog" / "003.png").read_bytes() == (photos / "dog" / "003.png").read_bytes()

    (photos / "cat" / "000.png").unlink()
    assert "Running stage 'download'" in dvc("repro", "download", cwd=dvc_repo).stdout
    assert not (raw / "cat" / "000.png").exists()
    assert "Running stage" not in dvc("repro", "download", cwd=dvc_repo).stdout
