"""Figures for people: each function takes plain data and returns a matplotlib Figure.

Figures are built without pyplot (no global state, no display needed) and saved atomically.
"""

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.ticker import MaxNLocator

from image_classifier.atomic import atomic_path
from image_classifier.params import MONITORS

SPLIT_COLORS = {"train": "#4C72B0", "val": "#DD8452", "test": "#55A868"}


@contextlib.contextmanager
def style() -> Iterator[None]:
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
        yield


def save_figure(figure: Figure, path: Path, dpi: int = 110) -> None:
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=dpi, bbox_inches="tight")


# Beyond these, figures show a readable selection of the classes (and say so in the title)
# instead of growing past what a screen, or matplotlib's pixel limit, can hold.
MAX_BARS = 40
MAX_CONFUSION_CLASSES = 30


def class_distribution_figure(counts: pd.DataFrame) -> Figure:
    """Horizontal bars of images per class, one colour per split, largest class on top.

    With more than MAX_BARS classes, the largest and the smallest MAX_BARS / 2 are shown.
    """
    total = counts.sum(axis=1).sort_values(ascending=False, kind="stable")
    title = f"Images per class and split ({int(counts.to_numpy().sum())} in all)"
    if len(total) > MAX_BARS:
        half = MAX_BARS // 2
        total = pd.concat([total.iloc[:half], total.iloc[-half:]])
        title += f"\nthe {half} largest and the {half} smallest of {len(counts)} classes"
    long = (
        counts.loc[total.index]
        .reset_index(names="class")
        .melt(id_vars="class", var_name="split", value_name="images")
    )
    with style():
        figure = Figure(figsize=(8, 1.2 + 0.45 * len(total)))
        axes = figure.subplots()
        sns.barplot(
            long, y="class", x="images", hue="split", palette=SPLIT_COLORS, orient="h", ax=axes
        )
        for container in axes.containers:
            axes.bar_label(container, fontsize=8, padding=2)
        axes.set_title(title)
        axes.set_xlabel("images")
        axes.set_ylabel("")
        sns.move_legend(axes, "upper left", bbox_to_anchor=(1.01, 1), title="split")
        axes.margins(x=0.12)
    return figure


def most_confused_classes(matrix: np.ndarray, count: int) -> np.ndarray:
    """Indices of the `count` classes with the lowest recall (most test images of them
    missed), in class order."""
    totals = matrix.sum(axis=1)
    recall = np.divide(matrix.diagonal(), totals, out=np.ones(len(matrix)), where=totals > 0)
    return np.sort(np.argsort(recall, kind="stable")[:count])


def confusion_figure(matrix: np.ndarray, class_names: list[str], accuracy: float) -> Figure:
    """Counts and row-normalised (recall per class) confusion matrices side by side.

    With more than MAX_CONFUSION_CLASSES classes, the ones with the lowest recall are shown.
    """
    title = f"Confusion matrix on the test set: {int(matrix.sum())} images, accuracy {accuracy:.2%}"
    totals = matrix.sum(axis=1, keepdims=True)
    normalised = np.divide(matrix, totals, out=np.zeros(matrix.shape), where=totals > 0)
    if len(class_names) > MAX_CONFUSION_CLASSES:
        shown = most_confused_classes(matrix, MAX_CONFUSION_CLASSES)
        title += (
            f"\nthe {len(shown)} classes of {len(class_names)} with the lowest recall "
            "(rows and columns of only these)"
        )
        matrix, normalised = matrix[np.ix_(shown, shown)], normalised[np.ix_(shown, shown)]
        class_names = [class_names[i] for i in shown]
    side = 2.5 + 0.55 * len(class_names)
    with style():
        figure = Figure(figsize=(2 * side + 1, side))
        left, right = figure.subplots(1, 2)
        options = {
            "xticklabels": class_names,
            "yticklabels": class_names,
            "square": True,
            "cbar": False,
            "cmap": "Blues",
            "fmt": "",
        }
        # Blank cells for zeros: the few confusions stand out instead of a sea of 0s.
        counts = np.where(matrix > 0, matrix.astype(str), "")
        shares = np.where(matrix > 0, np.char.mod("%.2f", normalised), "")
        sns.heatmap(matrix, annot=counts, ax=left, **options)
        sns.heatmap(normalised, annot=shares, vmin=0, vmax=1, ax=right, **options)
        left.set_title("Counts (blank = 0)")
        right.set_title("Share of each true class (rows sum to 1)")
        for axes in (left, right):
            axes.set_xlabel("predicted")
            axes.set_ylabel("actual")
            axes.tick_params(axis="x", rotation=45)
            axes.tick_params(axis="y", rotation=0)
        figure.suptitle(title)
    return figure


CURVES = {
    "loss": "Loss",
    "accuracy": "Accuracy",
    "macro_f1": "Macro F1",
    "balanced_accuracy": "Balanced accuracy",
}


def curves_figure(history: pd.DataFrame, best_epoch: int, monitor: str) -> Figure:
    """Loss, accuracy, macro F1 and balanced accuracy by epoch, train vs val (columns epoch,
    split and one per metric); the epoch kept (best train.monitor) is marked."""
    metrics = [metric for metric in CURVES if metric in history]
    with style():
        figure = Figure(figsize=(11, 3.6 * math.ceil(len(metrics) / 2)), layout="constrained")
        grid = figure.subplots(math.ceil(len(metrics) / 2), 2, squeeze=False).ravel()
        for axes, metric in zip(grid, metrics, strict=False):
            sns.lineplot(history, x="epoch", y=metric, hue="split", marker=".", ax=axes)
            axes.axvline(best_epoch, color="grey", linestyle="--", linewidth=1)
            axes.annotate(
                f"kept: epoch {best_epoch} ",
                (best_epoch, 0.5),
                xycoords=("data", "axes fraction"),
                ha="right",
                color="grey",
            )
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
            axes.set_title(
                CURVES[metric] + (" (train.monitor)" if monitor == f"val_{metric}" else "")
            )
        for axes in grid[len(metrics) :]:
            axes.axis("off")
        figure.suptitle("Training curves: train vs val")
    return figure


@dataclass(frozen=True)
class Panel:
    image: np.ndarray  # (height, width, 3) uint8
    caption: str
    heatmap: np.ndarray | None = None  # (height, width) in [0, 1], laid over the image
    color: str = "black"


def image_grid_figure(rows: list[list[Panel]], title: str, columns: int = 4) -> Figure:
    """Rows of captioned images (each row wraps at `columns`); an empty row says 'none'."""
    lines = [
        row[start : start + columns]
        for row in rows
        for start in range(0, max(len(row), 1), columns)
    ]
    with style():
        figure = Figure(figsize=(3 * columns, 3.3 * len(lines) + 0.6), layout="constrained")
        grid = figure.subplots(len(lines), columns, squeeze=False)
        for line, axes_row in zip(lines, grid, strict=True):
            for axes in axes_row:
                axes.axis("off")
            if not line:
                axes_row[0].text(0.5, 0.5, "none", ha="center", va="center", fontsize=14)
            for panel, axes in zip(line, axes_row, strict=False):
                axes.imshow(panel.image)
                if panel.heatmap is not None:
                    axes.imshow(panel.heatmap, cmap="jet", alpha=0.4, vmin=0, vmax=1)
                axes.set_title(panel.caption, fontsize=9, color=panel.color)
        figure.suptitle(title, fontsize=12)
    return figure


def sweep_heatmap_figure(results: pd.DataFrame, best: pd.Series, monitor: str) -> Figure:
    """The train.monitor score over the learning rate x batch size grid; the best cell is
    outlined."""
    grid = results.pivot(index="learning_rate", columns="batch_size", values="score")
    name = CURVES[monitor.removeprefix("val_")]
    label = name[0].lower() + name[1:]  # "macro F1", "balanced accuracy", "loss"
    with style():
        figure = Figure(figsize=(2.2 + 1.4 * grid.shape[1], 1.6 + 0.8 * grid.shape[0]))
        axes = figure.subplots()
        # Brighter is better whichever way the monitor points (val loss: lower is better).
        colors = "viridis" if MONITORS[monitor] == "max" else "viridis_r"
        sns.heatmap(
            grid, annot=True, fmt=".3f", cmap=colors, cbar_kws={"label": f"val {label}"}, ax=axes
        )
        row = list(grid.index).index(best["learning_rate"])
        column = list(grid.columns).index(best["batch_size"])
        axes.add_patch(Rectangle((column, row), 1, 1, fill=False, edgecolor="red", linewidth=3))
        axes.set_xlabel("batch size")
        axes.set_ylabel("learning rate")
        axes.tick_params(axis="y", rotation=0)
        epochs = int(results["epochs"].iloc[0])
        axes.set_title(
            f"Sweep: val {label} after {epochs} epoch(s); best (red) "
            f"lr={best['learning_rate']:g}, batch {int(best['batch_size'])}"
        )
    return figure


def reliability_figure(diagrams: dict, unsure_below: float) -> Figure:
    """Reliability diagrams side by side ({title: Reliability}, from model/calibration.py):
    per confidence bin, how often the answers were right against how confident they were.
    A calibrated model's bars touch the diagonal. Below, how many answers fall in each bin,
    and the confidence below which predict says "unsure"."""
    with style():
        figure = Figure(figsize=(5.2 * len(diagrams), 6.2), layout="constrained")
        grid = figure.subplots(2, len(diagrams), squeeze=False, sharex=True, height_ratios=[3, 1])
        for (title, diagram), top, bottom in zip(diagrams.items(), grid[0], grid[1], strict=True):
            width = 1 / len(diagram.lower)
            filled = diagram.count > 0
            lower = diagram.lower[filled]
            top.bar(
                lower,
                diagram.accuracy[filled],
                width,
                align="edge",
                color="#4C72B0",
                edgecolor="white",
                label="share right",
            )
            gap = diagram.confidence[filled] - diagram.accuracy[filled]
            top.bar(
                lower,
                gap,
                width,
                bottom=diagram.accuracy[filled],
                align="edge",
                fill=False,
                hatch="///",
                edgecolor="#C44E52",
                linewidth=0.8,
                label="gap to the mean confidence",
            )
            top.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1)
            top.set(
                xlim=(0, 1),
                ylim=(0, 1),
                ylabel="share of answers right",
                title=f"{title}\nECE {diagram.ece:.4f}",
            )
            top.legend(loc="upper left", fontsize=8)
            bottom.bar(lower, diagram.count[filled], width, align="edge", color="grey")
            bottom.set(
                yscale="log", xlabel="confidence (the top class's probability)", ylabel="answers"
            )
            if unsure_below > 0:
                for axes in (top, bottom):
                    axes.axvline(unsure_below, color="#DD8452", linewidth=1.5)
                bottom.annotate(
                    f" unsure below {unsure_below:.0%}",
                    (unsure_below, 0.8),
                    xycoords=("data", "axes fraction"),
                    color="#DD8452",
                    fontsize=8,
                )
        figure.suptitle("Calibration on the test set: is the model right as often as it is sure?")
    return figure
