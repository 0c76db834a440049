"""Atomic outputs: a failure at any point leaves the old output or the new one, never neither,
and temporaries of killed runs are cleaned up by the next run."""

import os

import pytest

from image_classifier.atomic import atomic_directory, atomic_path


def folder_with(path, text):
    path.mkdir(parents=True, exist_ok=True)
    (path / "content.txt").write_text(text)
    return path


def failing_second_replace(monkeypatch):
    """os.replace that fails on its second call, as a crash between two renames would."""
    calls = []
    real_replace = os.replace

    def replace(source, target):
        calls.append((source, target))
        if len(calls) == 2:
            raise OSError("simulated crash between the two renames")
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    return calls


def test_failure_while_swapping_keeps_the_old_output(tmp_path, monkeypatch):
    output = folder_with(tmp_path / "out", "old")
    calls = failing_second_replace(monkeypatch)
    with pytest.raises(OSError, match="simulated crash"), atomic_directory(output) as temporary:
        (temporary / "content.txt").write_text("new")
    assert len(calls) == 3  # aside, the failed swap-in, back
    assert (output / "content.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_a_folder_moved_aside_by_a_killed_run_is_restored(tmp_path):
    # What a kill between the two renames leaves where the OS cannot swap in one step.
    folder_with(tmp_path / ".out.old.tmp", "old")
    with pytest.raises(RuntimeError), atomic_directory(tmp_path / "out"):
        assert (tmp_path / "out" / "content.txt").read_text() == "old"
        raise RuntimeError("the stage fails")
    assert (tmp_path / "out" / "content.txt").read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_stale_temporaries_are_removed_and_others_kept(tmp_path):
    (tmp_path / ".model.keras.a1b2c3.tmp.keras").write_text("half a model")
    folder_with(tmp_path / ".plots.x9y8.tmp", "half the curves")
    (tmp_path / ".other.keras.a1b2c3.tmp.keras").write_text("another output's")
    (tmp_path / "model.keras.notes").write_text("not a temporary")
    with atomic_path(tmp_path / "model.keras") as temporary:
        temporary.write_text("model")
    with atomic_directory(tmp_path / "plots") as temporary:
        (temporary / "curve.tsv").write_text("step\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        ".other.keras.a1b2c3.tmp.keras",
        "model.keras",
        "model.keras.notes",
        "plots",
    ]


def test_a_failed_write_leaves_the_old_file(tmp_path):
    target = tmp_path / "metrics.json"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as temporary:
        temporary.write_text("half")
        raise RuntimeError("crash")
    assert target.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["metrics.json"]


def test_outputs_get_the_usual_mode_not_a_private_one(tmp_path):
    """A teammate or a web server must be able to read the metrics and plots."""
    old = os.umask(0o022)
    try:
        with atomic_path(tmp_path / "metrics.json") as temporary:
            temporary.write_text("{}")
        with atomic_directory(tmp_path / "plots") as temporary:
            (temporary / "curve.tsv").write_text("step\n")
    finally:
        os.umask(old)
    assert (tmp_path / "metrics.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "plots").stat().st_mode & 0o777 == 0o755
