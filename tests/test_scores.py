"""The imbalance-honest scores: Keras metrics that agree with scikit-learn, and the majority
baseline."""

import numpy as np
import pytest
from sklearn.metrics import balanced_accuracy_score, f1_score

from image_classifier.model.metrics import BalancedAccuracy, MacroF1
from image_classifier.report.scoring import majority_class


def imbalanced_predictions(seed=0, count=300, classes=4):
    """Labels 60/25/10/5%, logits that favour the true class by a random margin."""
    rng = np.random.default_rng(seed)
    labels = rng.choice(classes, count, p=[0.6, 0.25, 0.1, 0.05])
    logits = rng.normal(0, 1, (count, classes))
    logits[np.arange(count), labels] += rng.uniform(0, 2.5, count)
    return labels, logits


@pytest.mark.parametrize("seed", [0, 1, 2])
# 10 answers may name a class none of their labels has: the case the reset part checks.
@pytest.mark.filterwarnings("ignore:y_pred contains classes not in y_true")
def test_keras_metrics_agree_with_sklearn_over_several_batches(seed):
    labels, logits = imbalanced_predictions(seed)
    balanced, macro = BalancedAccuracy(4), MacroF1(4)
    for start in range(0, len(labels), 64):  # as Keras feeds them: batch by batch
        for metric in (balanced, macro):
            metric.update_state(labels[start : start + 64], logits[start : start + 64])
    predicted = logits.argmax(axis=1)
    assert float(balanced.result()) == pytest.approx(balanced_accuracy_score(labels, predicted))
    assert float(macro.result()) == pytest.approx(f1_score(labels, predicted, average="macro"))
    balanced.reset_state()
    balanced.update_state(labels[:10], logits[:10])
    assert float(balanced.result()) == pytest.approx(
        balanced_accuracy_score(labels[:10], predicted[:10])
    )


def test_a_majority_predictor_scores_what_it_is_worth():
    labels = np.array([0] * 57 + [1] * 30 + [2] * 9 + [3] * 4)
    always_zero = np.tile([5.0, 0.0, 0.0, 0.0], (len(labels), 1))
    balanced, macro = BalancedAccuracy(4), MacroF1(4)
    balanced.update_state(labels, always_zero)
    macro.update_state(labels, always_zero)
    # Plain accuracy would be 0.57; these see a model that knows nothing.
    assert float(balanced.result()) == pytest.approx(0.25)
    assert float(macro.result()) == pytest.approx(
        f1_score(labels, np.zeros_like(labels), average="macro")
    )
    assert float(macro.result()) < 0.2


def test_majority_class_is_the_most_frequent_training_class():
    assert majority_class(np.array([2, 1, 2, 0, 2, 1])) == 2
    assert majority_class(np.array([1, 0, 0, 1])) == 0  # a tie: the lower index


def scripted_training(monitor: str, epochs: list[dict], patience: int):
    """Feed per-epoch logs to the callbacks fit_model uses; return (kept epoch, epochs run)."""
    import keras

    from image_classifier.model.fitting import BestWeights, early_stopping
    from image_classifier.params import TrainParams, read_params
    from tests.conftest import ROOT

    params = TrainParams.from_params(read_params(ROOT / "params.yaml")).model_copy(
        update={"monitor": monitor, "early_stopping_patience": patience}
    )
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.stop_training = False  # as fit sets it
    best = BestWeights(monitor)
    callbacks = [best, *early_stopping(params, len(epochs))]
    for callback in callbacks:
        callback.set_model(model)
        callback.on_train_begin()
    run = 0
    for epoch, logs in enumerate(epochs):
        run += 1
        for callback in callbacks:
            callback.on_epoch_end(epoch, logs)
        if model.stop_training:
            break
    return best.best_epoch, run


# An imbalanced val set (57% one class): the first epochs predict the majority class for
# every image, which plain accuracy scores best; later epochs learn the other classes.
MAJORITY_THEN_LEARNING = [
    {"val_accuracy": 0.57, "val_macro_f1": 0.18, "val_balanced_accuracy": 0.25, "val_loss": 1.30},
    {"val_accuracy": 0.57, "val_macro_f1": 0.18, "val_balanced_accuracy": 0.25, "val_loss": 1.25},
    {"val_accuracy": 0.52, "val_macro_f1": 0.31, "val_balanced_accuracy": 0.36, "val_loss": 1.20},
    {"val_accuracy": 0.55, "val_macro_f1": 0.41, "val_balanced_accuracy": 0.45, "val_loss": 1.10},
    {"val_accuracy": 0.56, "val_macro_f1": 0.47, "val_balanced_accuracy": 0.52, "val_loss": 1.05},
    {"val_accuracy": 0.56, "val_macro_f1": 0.46, "val_balanced_accuracy": 0.51, "val_loss": 1.07},
]


@pytest.mark.parametrize(
    ("monitor", "kept"),
    [("val_macro_f1", 4), ("val_balanced_accuracy", 4), ("val_loss", 4)],
)
def test_the_majority_predictor_is_not_the_model_kept(monitor, kept):
    best_epoch, _ = scripted_training(monitor, MAJORITY_THEN_LEARNING, patience=0)
    assert best_epoch == kept
    assert MAJORITY_THEN_LEARNING[best_epoch]["val_balanced_accuracy"] > 0.25


def test_early_stopping_follows_the_monitor_and_waits_for_half_the_run():
    flat_accuracy_rising_f1 = [
        {
            "val_accuracy": 0.57,
            "val_macro_f1": 0.10 + 0.02 * i,
            "val_balanced_accuracy": 0.25,
            "val_loss": 1.0,
        }
        for i in range(12)
    ]
    # Still improving in macro F1: never stopped, although accuracy has not moved.
    assert scripted_training("val_macro_f1", flat_accuracy_rising_f1, patience=2) == (11, 12)
    # Flat in balanced accuracy: stopped after the patience, but not in the first half.
    best_epoch, run = scripted_training("val_balanced_accuracy", flat_accuracy_rising_f1, 2)
    assert best_epoch == 0 and run == 6 + 3
