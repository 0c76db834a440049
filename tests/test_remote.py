"""A team's round trip through a shared DVC remote, for real and offline: an S3-compatible
server (moto, as in DVC's own S3 tests) on 127.0.0.1, a bare git repository as origin, and
two clones that share nothing else. Credentials come from the environment only."""

import json
import sys

import pytest

from tests.conftest import copy_repo, dvc, run, stage_env
from tests.test_experiments import ran

ACCESS_KEY, SECRET_KEY = "team-access-key", "team-secret-never-committed"
BUCKET = "team-dvc"


@pytest.fixture(scope="module")
def s3_endpoint():
    import boto3
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        endpoint = f"http://127.0.0.1:{server._server.server_port}"
        client = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY,
            region_name="us-east-1",
        )
        client.create_bucket(Bucket=BUCKET)
        yield endpoint
    finally:
        server.stop()


def team_env():
    """What each team member has in their shell: the usual AWS variables, nothing on disk."""
    return stage_env(
        AWS_ACCESS_KEY_ID=ACCESS_KEY,
        AWS_SECRET_ACCESS_KEY=SECRET_KEY,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
    )


LOGS: list[str] = []  # everything the commands printed, checked for credentials


def git(*args, cwd):
    return logged(run(["git", *args], cwd, env=team_env()))


def team_dvc(*args, cwd):
    return logged(dvc(*args, cwd=cwd, env=team_env()))


def logged(result):
    LOGS.extend((result.stdout, result.stderr))
    return result


def test_two_clones_share_data_models_and_experiments(s3_endpoint, tiny_pipeline, tmp_path):
    env = team_env()
    origin = tmp_path / "origin.git"
    run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], tmp_path)

    # Clone A: the README's team set-up, reproduce, push code and data.
    a = copy_repo(tiny_pipeline[0], tmp_path)  # reproduced and committed: tmp_path/repo
    team_dvc("remote", "add", "-d", "team", f"s3://{BUCKET}/cache", cwd=a)
    team_dvc("remote", "modify", "team", "endpointurl", s3_endpoint, cwd=a)
    assert ran(team_dvc("repro", cwd=a).stdout) == set()
    git("add", "-A", cwd=a)
    git("commit", "-q", "-m", "the team's remote", cwd=a)
    git("remote", "add", "origin", str(origin), cwd=a)
    git("push", "-q", "origin", "main", cwd=a)
    team_dvc("push", cwd=a)

    # Clone B: an empty cache; everything comes from git and the remote, nothing is re-run.
    b = tmp_path / "b"
    run(["git", "clone", "-q", str(origin), str(b)], tmp_path, env=env)
    team_dvc("pull", cwd=b)
    assert json.loads(team_dvc("status", "--json", cwd=b).stdout) == {}
    assert ran(team_dvc("repro", cwd=b).stdout) == set()
    photo = next((b / "data/raw").glob("*/*.png"))
    run(
        [sys.executable, "-m", "image_classifier.predict", str(photo), "--out", "p.csv"], b, env=env
    )
    assert (b / "p.csv").read_text().count("\n") == 2  # header + the photo

    # Clone A runs an experiment and shares it; B pulls, lists, compares and applies it.
    team_dvc("exp", "run", "-n", "faster-lr", "-S", "train.learning_rate=0.01", cwd=a)
    team_dvc("exp", "push", "origin", "faster-lr", cwd=a)
    team_dvc("exp", "pull", "origin", "faster-lr", cwd=b)
    shown = team_dvc("exp", "show", "--json", cwd=b).stdout
    assert "faster-lr" in shown and "macro_f1" in shown
    main_model = (b / "models/model.keras").read_bytes()
    team_dvc("exp", "apply", "faster-lr", cwd=b)
    assert (b / "models/model.keras").read_bytes() != main_model
    params = team_dvc("params", "diff", "main", "--json", cwd=b).stdout
    assert json.loads(params)["params.yaml"]["train.learning_rate"]["new"] == 0.01
    metrics = json.loads(team_dvc("metrics", "diff", "main", "--json", cwd=b).stdout)
    assert "metrics/train.json" in metrics and "metrics/evaluate.json" in metrics

    # No credential in any file git tracks or in the logs.
    for repo in (a, b):
        tracked = run(
            ["git", "grep", "-I", "-l", "-e", ACCESS_KEY, "-e", SECRET_KEY], repo, check=False
        )
        assert tracked.returncode == 1, tracked.stdout
        assert SECRET_KEY not in (repo / ".dvc/config").read_text()
    history = run(["git", "log", "-p", "--all"], origin).stdout
    assert SECRET_KEY not in history and ACCESS_KEY not in history
    assert not [log for log in LOGS if SECRET_KEY in log or ACCESS_KEY in log]
