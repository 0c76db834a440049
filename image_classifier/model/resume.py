"""Training that resumes: a killed `train` continues from its last finished epoch.

DVC 3 has no checkpoints of its own, and Keras' BackupAndRestore saves the model and the
epoch but not the rest of what a resumed run needs to end with the same model, bit for bit,
as an uninterrupted one. At every epoch's end `SaveState` writes, together: the model's
weights (its optimizer's and its dropout seed state with them), the best epoch so far and
its weights, early stopping's counters, the history, the seconds trained, and a copy of the
folders the stage names (DVCLive's curves). The state file is written last and names the
weights it goes with, so a kill at any moment leaves one whole epoch to resume from. The
data stream resumes where it was (fitting.make_dataset skips the batches trained on).

A backup is kept under a key: a hash of the params, the seed, the data files and the
package's code. A run whose key differs never resumes from it, and removes it. It lives
outside every DVC output (DVC deletes a stage's outputs before it runs the stage) and is
removed when training finishes.
"""

import hashlib
import json
import shutil
from pathlib import Path

import keras
import numpy as np

STATE_FILE = "state.json"
BEST_FILE = "best.npz"
FINISHED_FILE = "finished.json"  # a network that finished training (one of train.members)
FINISHED_WEIGHTS = "finished.npz"
CHUNK = 1 << 24


def random_state(model: keras.Model) -> list:
    """The model's variables that are not weights: its seed generators' states (dropout's),
    which save_weights leaves out and a bit-for-bit resume needs."""
    weights = {id(variable) for variable in model.weights}
    return [variable for variable in model.variables if id(variable) not in weights]


def file_digest(path: Path, digest) -> None:
    with Path(path).open("rb") as file:
        while chunk := file.read(CHUNK):
            digest.update(chunk)


def training_key(params: dict, files: list[Path], code: Path) -> str:
    """Same params, data files and code, same key: the only backups a run may resume."""
    digest = hashlib.blake2b(json.dumps(params, sort_keys=True, default=str).encode())
    for path in [*files, *sorted(code.rglob("*.py"))]:
        digest.update(str(path.name).encode())
        file_digest(path, digest)
    return digest.hexdigest()[:20]


class Backup:
    """The backup of one training run, in root/<key>/."""

    def __init__(self, root: Path, key: str, folders: dict[str, Path] | None = None) -> None:
        self.root, self.key = Path(root), key
        self.folder = self.root / key
        self.folders = dict(folders or {})  # name -> a folder to snapshot every epoch
        if self.root.is_dir():  # a backup of other params, data or code can never be resumed
            for other in self.root.iterdir():
                if other.name != key:
                    shutil.rmtree(other, ignore_errors=True)
        self.state = self._read_state()

    def _read_state(self) -> dict | None:
        try:
            return json.loads((self.folder / STATE_FILE).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None  # nothing finished, or killed while writing: start over

    @property
    def resuming(self) -> bool:
        return self.state is not None

    @property
    def epochs_done(self) -> int:
        return self.state["epochs_done"] if self.state else 0

    def restore_folders(self) -> None:
        """Put the saved copies of the named folders back (before training starts)."""
        if not self.resuming:
            return
        for name, target in self.folders.items():
            saved = self.folder / "folders" / name
            if saved.is_dir():
                shutil.rmtree(target, ignore_errors=True)
                shutil.copytree(saved, target)

    def load_model_weights(self, model: keras.Model) -> None:
        """The model and its optimizer as they were at the end of the last saved epoch."""
        if model.optimizer is not None and not model.optimizer.built:
            model.optimizer.build(model.trainable_variables)
        model.load_weights(self.folder / self.state["model_file"])
        with np.load(self.folder / self.state["random_file"]) as saved:
            for variable in random_state(model):
                variable.assign(saved[variable.path])

    def best_weights(self) -> list[np.ndarray] | None:
        if not (self.folder / BEST_FILE).exists():
            return None
        with np.load(self.folder / BEST_FILE) as saved:
            return [saved[f"w{index}"] for index in range(len(saved.files))]

    def save(self, model: keras.Model, state: dict, best: list | None, best_changed: bool) -> None:
        """One epoch's state; state.json last (and atomically), so a kill part-way leaves the
        previous epoch whole."""
        self.folder.mkdir(parents=True, exist_ok=True)
        model_file = f"model-{state['epochs_done']}.weights.h5"
        model.save_weights(self.folder / model_file, overwrite=True)
        random_file = f"random-{state['epochs_done']}.npz"
        with (self.folder / random_file).open("wb") as out:
            np.savez(out, **{v.path: v.numpy() for v in random_state(model)})
        if best is not None and best_changed:
            temporary = self.folder / f".{BEST_FILE}"
            with temporary.open("wb") as out:
                np.savez(out, **{f"w{index}": weights for index, weights in enumerate(best)})
            temporary.replace(self.folder / BEST_FILE)
        for name, source in self.folders.items():
            target, partial = self.folder / "folders" / name, self.folder / "folders" / f".{name}"
            shutil.rmtree(partial, ignore_errors=True)
            shutil.copytree(source, partial)
            shutil.rmtree(target, ignore_errors=True)
            partial.replace(target)
        state = {**state, "model_file": model_file, "random_file": random_file}
        temporary = self.folder / f".{STATE_FILE}"
        temporary.write_text(json.dumps(state))
        temporary.replace(self.folder / STATE_FILE)
        for older in [*self.folder.glob("model-*.weights.h5"), *self.folder.glob("random-*.npz")]:
            if older.name not in (model_file, random_file):
                older.unlink()
        self.state = state

    def save_finished(self, weights: list[np.ndarray], facts: dict) -> None:
        """The final weights of a finished training and what is known of it, kept until
        remove(): a run killed later (training the next of train.members) reads them back."""
        self.folder.mkdir(parents=True, exist_ok=True)
        temporary = self.folder / f".{FINISHED_WEIGHTS}"
        with temporary.open("wb") as out:
            np.savez(out, **{f"w{index}": weight for index, weight in enumerate(weights)})
        temporary.replace(self.folder / FINISHED_WEIGHTS)
        temporary = self.folder / f".{FINISHED_FILE}"
        temporary.write_text(json.dumps(facts))
        temporary.replace(self.folder / FINISHED_FILE)

    def read_finished(self) -> tuple[list[np.ndarray], dict] | None:
        """(weights, facts) of a training that finished under this key, or None."""
        try:
            facts = json.loads((self.folder / FINISHED_FILE).read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        with np.load(self.folder / FINISHED_WEIGHTS) as saved:
            return [saved[f"w{index}"] for index in range(len(saved.files))], facts

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
        if self.root.is_dir() and not any(self.root.iterdir()):
            self.root.rmdir()


class SaveState(keras.callbacks.Callback):
    """At each epoch's end (after every other callback): the whole training state."""

    def __init__(self, backup: Backup, phase: int, first: int, tracking) -> None:
        super().__init__()
        self.backup, self.phase, self.first, self.tracking = backup, phase, first, tracking
        self.saved_best_epoch = backup.state["best_epoch"] if backup.state else None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        best = self.tracking.best
        state = {
            "phase": self.phase,
            "phase_first": self.first,
            "epochs_done": epoch + 1,
            "history": self.tracking.history,
            "best": list(best.best) if best.best else None,
            "best_epoch": best.best_epoch,
            "seconds": self.tracking.clock.seconds,
            "stop": [stop.state() for stop in self.tracking.stop],
        }
        changed = best.best_epoch != self.saved_best_epoch
        self.backup.save(self.model, state, best.weights, changed)
        self.saved_best_epoch = best.best_epoch


class RestoreState(keras.callbacks.Callback):
    """At the start of a resumed fit, after the other callbacks reset themselves: the state
    of the killed run's last saved epoch (the model's weights are loaded before the fit)."""

    def __init__(self, backup: Backup, tracking) -> None:
        super().__init__()
        self.backup, self.tracking = backup, tracking

    def on_train_begin(self, logs: dict | None = None) -> None:
        state, best = self.backup.state, self.tracking.best
        best.best = tuple(state["best"]) if state["best"] else None
        best.best_epoch = state["best_epoch"]
        best.weights = self.backup.best_weights()
        self.tracking.clock.seconds = state["seconds"]
        for stop, saved in zip(self.tracking.stop, state["stop"], strict=True):
            stop.restore(saved)
