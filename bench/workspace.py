"""A clone of this repository to run the pipeline in, as a user's checkout would be."""

import os
import subprocess
import sys
from pathlib import Path

from image_classifier.params import read_params, write_params_file, yaml_1_2

ROOT = Path(__file__).resolve().parent.parent


def command_env() -> dict[str, str]:
    """This interpreter as DVC's `python` (even without an activated venv), no analytics,
    and this checkout's stages on the path for folders that are not a clone (a clone's own
    come first: `python -m` looks in the working folder first)."""
    env = dict(os.environ)
    env.update(
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        PYTHONPATH=str(ROOT),
        DVC_NO_ANALYTICS="1",
        PYTHONUNBUFFERED="1",
    )
    return env


def dvc(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    result = subprocess.run(
        [sys.executable, "-m", "dvc", *args],
        cwd=cwd,
        env=command_env(),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:  # what DVC and the stage said, not only that it failed
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-15:])
        raise RuntimeError(f"dvc {' '.join(args)} in {cwd} exited {result.returncode}:\n{tail}")
    return result


def read_yaml(path: Path):
    return yaml_1_2().load(Path(path).read_text())


def clone(target: Path, commit: str | None = None) -> Path:
    """A git clone of this repository (at `commit`, or its HEAD)."""
    subprocess.run(["git", "clone", "-q", str(ROOT), str(target)], check=True)
    if commit:
        subprocess.run(["git", "-C", str(target), "checkout", "-q", commit], check=True)
    return target


def set_params(folder: Path, source: Path | None = None, **sections: dict) -> None:
    """folder/params.yaml from `source` (by default the folder's own), updated section by
    section: set_params(clone, data={"source": "folder"})."""
    params = read_params(source or folder / "params.yaml")
    for section, values in sections.items():
        params[section].update(values)
    write_params_file(folder / "params.yaml", params)
