"""dvc.yaml itself: its deps name every module a stage runs, and `dvc repro` works end to end."""

import ast
import json
import re
from pathlib import Path

from tests.conftest import ROOT, dvc, make_class_tree, png_size, read_yaml, write_params

PACKAGES = ("image_classifier", "stages")  # this project's own code; the rest is installed


def module_file(module: str) -> Path | None:
    """The file of one of this project's modules (a package's __init__.py), or None."""
    path = ROOT / module.replace(".", "/")
    if (path / "__init__.py").is_file():
        return path / "__init__.py"
    return path.with_suffix(".py") if path.with_suffix(".py").is_file() else None


def with_parents(module: str) -> list[str]:
    """`a.b.c` -> a, a.b, a.b.c: importing a module runs every enclosing package's __init__."""
    parts = module.split(".")
    return [".".join(parts[: end + 1]) for end in range(len(parts))]


def imported_names(path: Path, module: str) -> list[str]:
    """Every module a file names in any import form, anywhere in it (functions included):
    `import a.b`, `from a import b` (b may be a module), `from a.b import c`, relative ones."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names.append(base)
            names += [f"{base}.{alias.name}" for alias in node.names]
    return names


def modules_run_by(module: str) -> set[str]:
    """This project's modules that running `module` imports, directly or through each other,
    with every enclosing package's __init__."""
    seen, todo = set(), with_parents(module)
    while todo:
        name = todo.pop()
        path = module_file(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        for imported in imported_names(path, name):
            if imported.split(".")[0] in PACKAGES:
                todo += with_parents(imported)
    return seen


def code_deps(stage: dict) -> set[str]:
    return {dep for dep in stage["deps"] if dep.split("/")[0] in PACKAGES}


def covered(files: set[str], dep: str) -> set[str]:
    """The files among `files` that a dep (a file or a folder) covers."""
    return {file for file in files if file == dep or file.startswith(dep.rstrip("/") + "/")}


def stage_modules() -> dict[str, str]:
    pipeline = read_yaml(ROOT / "dvc.yaml")
    return {
        name: re.search(r"python -m (stages\.\w+)", stage["cmd"]).group(1)
        for name, stage in pipeline["stages"].items()
    }


def test_every_stage_depends_on_exactly_the_code_it_runs():
    """A change to a module re-runs every stage that imports it, and no other: each module a
    stage runs is covered by one of its deps, and each code dep is a module it runs or a
    folder all of whose modules it runs."""
    pipeline = read_yaml(ROOT / "dvc.yaml")
    for name, module in stage_modules().items():
        needed = {str(module_file(m).relative_to(ROOT)) for m in modules_run_by(module)}
        deps = code_deps(pipeline["stages"][name])
        missing = {file for file in needed if not any(covered({file}, dep) for dep in deps)}
        assert not missing, f"stage {name}: deps lack {sorted(missing)}"
        for dep in deps:
            files = {str(p.relative_to(ROOT)) for p in (ROOT / dep).rglob("*.py")}
            files = files or {dep}
            assert files <= needed, f"stage {name}: dep {dep} covers unused {files - needed}"


def test_the_import_walk_follows_every_import_form():
    """The walk above is what keeps dvc.yaml honest, so it is checked on a known module: the
    train stage runs the package __init__ (TensorFlow's quiet import), the model card through
    a from-import, and fitting through a function-level import."""
    run = modules_run_by("stages.train")
    assert {"image_classifier", "image_classifier.quiet", "image_classifier.model"} <= run
    assert {"image_classifier.model.card", "image_classifier.model.fitting"} <= run
    assert "image_classifier.model.serving" not in run
    assert module_file("image_classifier.model") == ROOT / "image_classifier/model/__init__.py"


def sections_read(module: str) -> dict[str, set[str] | None]:
    """The params sections a stage module reads, and of each the keys it reads by name, or
    None when it hands the whole section on (to the package), so that it reads every key."""
    from image_classifier import params as params_module

    tree = ast.parse(module_file(module).read_text())
    bound: dict[str, str] = {}  # variable -> section, from `x = XParams.from_params(...)`
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign):
            continue
        targets = node.targets[0].elts if isinstance(node.targets[0], ast.Tuple) else node.targets
        values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
        for target, value in zip(targets, values):
            call = value.func if isinstance(value, ast.Call) else None
            if isinstance(call, ast.Attribute) and call.attr == "from_params":
                bound[target.id] = getattr(params_module, call.value.id).section
    read: dict[str, set[str] | None] = {section: set() for section in bound.values()}
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id in bound and isinstance(node.ctx, ast.Load):
            section, parent = bound[node.id], parents[node]
            if isinstance(parent, ast.Attribute) and read[section] is not None:
                read[section].add(parent.attr)
            elif not isinstance(parent, ast.Attribute):
                read[section] = None  # passed on whole
    return read


def test_every_stage_lists_the_params_it_reads():
    """`params:` in dvc.yaml names every section a stage reads, whole, or key by key when the
    stage reads only some keys by name; the sweep sets some train params itself."""
    from image_classifier.model.search import SET_BY_THE_SWEEP, UNUSED_BY_THE_SWEEP
    from image_classifier.params import SECTIONS

    fields = {model.section: set(model.model_fields) for model in SECTIONS}
    pipeline = read_yaml(ROOT / "dvc.yaml")
    for name, module in stage_modules().items():
        listed: dict[str, set[str]] = {}
        for entry in pipeline["stages"][name].get("params", []):
            section, _, key = entry.partition(".")
            listed.setdefault(section, set()).update({key} if key else fields[section])
        read = sections_read(module)
        assert set(listed) == set(read), (
            f"stage {name}: params sections {sorted(listed)}, reads {sorted(read)}"
        )
        for section, keys in read.items():
            needed = fields[section] if keys is None else keys
            if name == "sweep" and section == "train":
                needed = needed - set(SET_BY_THE_SWEEP) - set(UNUSED_BY_THE_SWEEP)
            missing = needed - listed[section]
            assert not missing, f"stage {name}: dvc.yaml params lack {section}.{sorted(missing)}"


def test_the_params_walk_sees_keys_and_whole_sections():
    assert sections_read("stages.audit")["evaluate"] == {"batch_size"}
    assert sections_read("stages.train")["train"] is None  # handed to fit_model whole
    assert set(sections_read("stages.sweep")) == {"base", "train", "sweep"}


def test_no_stage_imports_another_stage():
    """What two stages share lives in the package, so each stage's deps stay its own."""
    stages = set(stage_modules().values())
    for module in stages:
        imported = modules_run_by(module) - {module}
        assert not imported & stages, f"{module} imports the stage(s) {imported & stages}"


def test_stages_holds_the_stages_and_nothing_else():
    on_disk = {path.stem for path in (ROOT / "stages").glob("*.py")}
    assert on_disk == {module.split(".")[1] for module in stage_modules().values()}


def test_tests_and_bench_import_no_stage():
    """Tests and benchmarks use the package; a stage is run as a command, never imported."""
    for path in [*(ROOT / "tests").glob("*.py"), *(ROOT / "bench").glob("*.py")]:
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        imported = [name for name in imported_names(path, module) if name.startswith("stages")]
        assert not imported, f"{path.relative_to(ROOT)} imports {imported}"
        if path.parent.name == "bench":
            assert not [name for name in imported_names(path, module) if name.startswith("tests")]


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
