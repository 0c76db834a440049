"""Running this project's stages and DVC in another folder: shared by tests/ and bench/."""

import os
import subprocess
import sys
from pathlib import Path

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent


def yaml_1_2() -> YAML:
    """The YAML reader and writer DVC and stages/params.py use (YAML 1.2)."""
    yaml = YAML(typ="safe", pure=True)
    yaml.default_flow_style = False
    yaml.sort_base_mapping_type_on_output = False
    return yaml


def read_yaml(path: Path):
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
    with path.open("w") as out:
        yaml_1_2().dump(params, out)
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
        TF_CPP_MIN_LOG_LEVEL="2",
    )
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


def run_stage(stage: str, *args: str, cwd: Path, check=True, env=None):
    return run([sys.executable, "-m", f"stages.{stage}", *args], cwd, check=check, env=env)


def dvc(*args: str, cwd: Path, check=True, env=None):
    return run([sys.executable, "-m", "dvc", *args], cwd, check=check, env=env)
