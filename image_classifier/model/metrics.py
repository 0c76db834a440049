"""Scores that stay honest under class imbalance, as Keras metrics that training reports
for every epoch (and `train.monitor` can name).

Plain accuracy rewards predicting the majority class: on data where one class holds 57% of
the images, a model that always says that class scores 0.57. Balanced accuracy (the mean
recall over classes) gives it 1 / number of classes, macro F1 even less.
"""

import keras
from keras import ops


class ConfusionMetric(keras.metrics.Metric):
    """Accumulates the confusion matrix of sparse labels against logits (or probabilities),
    image by image: class weights do not enter it."""

    def __init__(self, num_classes: int, name: str, **kwargs) -> None:
        super().__init__(name=name, **kwargs)
        self.num_classes = num_classes
        self.matrix = self.add_variable(
            shape=(num_classes, num_classes), initializer="zeros", dtype="float32", name="matrix"
        )

    def update_state(self, y_true, y_pred, sample_weight=None) -> None:
        labels = ops.one_hot(ops.reshape(y_true, (-1,)), self.num_classes)
        predicted = ops.one_hot(ops.argmax(y_pred, axis=-1), self.num_classes)
        # One-hot products instead of a bincount: XLA compiles them (jit_compile on GPUs).
        self.matrix.assign_add(ops.matmul(ops.transpose(labels), predicted))

    def reset_state(self) -> None:
        self.matrix.assign(ops.zeros((self.num_classes, self.num_classes)))

    def get_config(self) -> dict:
        return {**super().get_config(), "num_classes": self.num_classes}

    def _counts(self):
        true_positives = ops.diagonal(self.matrix)
        actual = ops.sum(self.matrix, axis=1)  # images of each true class
        predicted = ops.sum(self.matrix, axis=0)  # images predicted as each class
        return true_positives, actual, predicted


@keras.saving.register_keras_serializable(package="image_classifier")
class BalancedAccuracy(ConfusionMetric):
    """Mean recall over the classes present, as sklearn's balanced_accuracy_score."""

    def __init__(self, num_classes: int, name: str = "balanced_accuracy", **kwargs) -> None:
        super().__init__(num_classes, name, **kwargs)

    def result(self):
        true_positives, actual, _ = self._counts()
        present = ops.cast(actual > 0, "float32")
        recall = ops.divide_no_nan(true_positives, actual)
        return ops.divide_no_nan(ops.sum(recall * present), ops.sum(present))


@keras.saving.register_keras_serializable(package="image_classifier")
class MacroF1(ConfusionMetric):
    """Mean F1 over the classes that occur as labels or predictions, as sklearn's
    f1_score(average="macro") without a fixed label list."""

    def __init__(self, num_classes: int, name: str = "macro_f1", **kwargs) -> None:
        super().__init__(num_classes, name, **kwargs)

    def result(self):
        true_positives, actual, predicted = self._counts()
        seen = ops.cast((actual + predicted) > 0, "float32")
        f1 = ops.divide_no_nan(2 * true_positives, actual + predicted)
        return ops.divide_no_nan(ops.sum(f1 * seen), ops.sum(seen))
