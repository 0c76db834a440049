"""A time budget for the fits the benchmarks compare, and a target that ends one early."""

import time

import keras


class Budget(keras.callbacks.Callback):
    """Stops a fit when its `seconds` are spent (checked after every batch) or, with a
    `target`, once val_accuracy reaches it, remembering when (`reached_after`)."""

    def __init__(self, seconds: float, target: float | None = None) -> None:
        super().__init__()
        self.seconds, self.target = seconds, target
        self.started, self.reached_after = time.perf_counter(), None

    def on_train_begin(self, logs=None) -> None:
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None) -> None:
        if time.perf_counter() - self.started > self.seconds:
            self.model.stop_training = True

    def on_epoch_end(self, epoch, logs=None) -> None:
        reached = self.target is not None and logs["val_accuracy"] >= self.target
        if reached and self.reached_after is None:
            self.reached_after = time.perf_counter() - self.started
            self.model.stop_training = True
