"""Figures stay readable and bounded whatever the number of classes."""

import numpy as np
import pandas as pd

from image_classifier.report.charts import (
    MAX_BARS,
    class_distribution_figure,
    confusion_figure,
    most_confused_classes,
    save_figure,
)
from tests.conftest import png_size

MANY = 1000
# matplotlib refuses figures over 2**16 pixels a side; a readable one is far smaller.
MAX_SIDE = 6000


def test_confusion_of_a_thousand_classes(tmp_path):
    rng = np.random.default_rng(0)
    labels = rng.integers(0, MANY, 20_000)
    predicted = np.where(rng.random(20_000) < 0.7, labels, rng.integers(0, MANY, 20_000))
    matrix = np.zeros((MANY, MANY), int)
    np.add.at(matrix, (labels, predicted), 1)
    names = [f"class{i:04d}" for i in range(MANY)]
    path = tmp_path / "confusion.png"
    save_figure(confusion_figure(matrix, names, 0.7), path)
    width, height = png_size(path)
    assert width < MAX_SIDE and height < MAX_SIDE


def test_most_confused_classes_are_the_lowest_recall():
    matrix = np.diag([10, 10, 10, 10])
    matrix[1, 0], matrix[3, 2] = 10, 30  # class 3 misses most, then class 1
    assert most_confused_classes(matrix, 2).tolist() == [1, 3]


def test_class_distribution_of_a_thousand_classes(tmp_path):
    counts = pd.DataFrame(
        {"train": np.arange(MANY) + 5, "val": 2, "test": 2},
        index=[f"class{i:04d}" for i in range(MANY)],
    )
    path = tmp_path / "distribution.png"
    figure = class_distribution_figure(counts)
    shown = [label.get_text() for label in figure.axes[0].get_yticklabels()]
    assert len(shown) == MAX_BARS
    assert shown[0] == "class0999" and shown[-1] == "class0000"  # largest and smallest
    save_figure(figure, path)
    width, height = png_size(path)
    assert width < MAX_SIDE and height < MAX_SIDE
