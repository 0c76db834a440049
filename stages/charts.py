"""Figures for people: each function takes plain data and returns a matplotlib Figure.

Figures are built without pyplot (no global state, no display needed) and saved atomically.
"""

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from stages.files import atomic_path

SPLIT_COLORS = {"train": "#4C72B0", "val": "#DD8452", "test": "#55A868"}


@contextlib.contextmanager
def style() -> Iterator[None]:
    with sns.axes_style("whitegrid"), sns.plotting_context("notebook"):
        yield


def save_figure(figure: Figure, path: Path, dpi: int = 110) -> None:
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format="png", dpi=dpi, bbox_inches="tight")


def class_distribution_figure(counts: pd.DataFrame) -> Figure:
    """Horizontal bars of images per class, one colour per split, largest class on top."""
    total = counts.sum(axis=1).sort_values(ascending=False)
    long = (
        counts.loc[total.index]
        .reset_index(names="class")
        .melt(id_vars="class", var_name="split", value_name="images")
    )
    with style():
        figure = Figure(figsize=(8, 1.2 + 0.45 * len(counts)))
        axes = figure.subplots()
        sns.barplot(
            long, y="class", x="images", hue="split", palette=SPLIT_COLORS, orient="h", ax=axes
        )
        for container in axes.containers:
            axes.bar_label(container, fontsize=8, padding=2)
        axes.set_title(f"Images per class and split ({int(counts.to_numpy().sum())} in all)")
        axes.set_xlabel("images")
        axes.set_ylabel("")
        sns.move_legend(axes, "upper left", bbox_to_anchor=(1.01, 1), title="split")
        axes.margins(x=0.12)
    return figure
