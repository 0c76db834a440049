"""Running this project's stages and DVC in another folder, for the tests."""

import os
import subprocess
import sys
from pathlib import Path

from image_classifier.params import write_params_file, yaml_1_2

ROOT = Path(__file__).resolve().parent.parent


def read_yaml(path: Path):
    """A YAML file (dvc.yaml, params.yaml) read as YAML 1.2, as DVC reads it."""
    return yaml_1_2().load(Path(path).read_text())


def set_param(params: dict, dotted: str, value) -> None:
    section, key = dotted.split(".")
    params[section][key] = value


def write_params(folder: Path, **overrides) -> Path:
    """The project's params.yaml with `section__key=value` overrides, written into `folder`."""
    params = read_yaml(ROOT / "params.yaml")
    for name, value in overrides.items():
        set_param(params, name.replace("__", "."), value)
    path = Path(folder) / "params.yaml"
    write_params_file(path, params)
    return path


def stage_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        # DVC stage commands say `python`: make it this interpreter, even without an activated venv.
        PATH=f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
        DVC_NO_ANALYTICS="1",
        GIT_AUTHOR_NAME="test",
        GIT_AUTHOR_EMAIL="test@example.com",
        GIT_COMMITTER_NAME="test",
        GIT_COMMITTER_EMAIL="test@example.com",
        PYTHONPATH=str(ROOT),
        PYTHONUNBUFFERED="1",
    )
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # what users get: the package's own default
    env.update(extra)
    return env


def run(
    args: list[str], cwd: Path, check=True, env=None, timeout=900
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        args, cwd=cwd, env=env or stage_env(), capture_output=True, text=True, timeout=timeout
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"{' '.join(map(str, args))} exited {result.returncode}\n"
            f"stdout:\n{result.stdout[-4000:]}\nstderr:\n{result.stderr[-4000:]}"
        )
    return result


def run_module(module: str, *args: str, cwd: Path, check=True, env=None):
    return run([sys.executable, "-m", module, *args], cwd, check=check, env=env)


def run_stage(stage: str, *args: str, cwd: Path, check=True, env=None):
    return run_module(f"stages.{stage}", *args, cwd=cwd, check=check, env=env)


def run_predict(*args: str, cwd: Path, check=True, env=None):
    """The user command `predict` of the package, as a user runs it."""
    return run_module("image_classifier.predict", *args, cwd=cwd, check=check, env=env)


def dvc(*args: str, cwd: Path, check=True, env=None):
    return run([sys.executable, "-m", "dvc", *args], cwd, check=check, env=env)
