"""split: stratified train/val/test with no image in two splits.

The label corrections (--corrections, a CSV in git; image_classifier/data/corrections.py)
are applied first: images relabelled, or excluded from every split. Exact duplicates (same
pixels after resize) are kept once; a source that came with its own test split keeps it.
Writes the split CSV, counts per class and split, and a bar chart.
"""

import logging

from image_classifier.atomic import write_csv, write_json
from image_classifier.console import parse_paths, run_stage
from image_classifier.data.corrections import apply_corrections, read_corrections
from image_classifier.data.dataset import read_csv
from image_classifier.data.filenames import INDEX_FILE
from image_classifier.data.partition import assign_splits, count_table, summary
from image_classifier.params import BaseParams, SplitParams, read_params
from image_classifier.report.charts import class_distribution_figure, save_figure

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    args = parse_paths(
        argv,
        __doc__,
        "resized",
        corrections="the label corrections CSV (path, action, label, note)",
        out="the split CSV to write",
        metrics="counts JSON to write",
        plot="class distribution PNG to write",
    )
    params = read_params()
    base, split = BaseParams.from_params(params), SplitParams.from_params(params)
    index = read_csv(args.resized / INDEX_FILE, ("path", "class", "split", "pixel_hash"))
    corrections = read_corrections(args.corrections)
    classes, excluded = apply_corrections(
        index["class"], index["path"], corrections, str(args.corrections)
    )
    relabelled = int((classes != index["class"]).sum())
    index = index.assign(**{"class": classes})
    table = assign_splits(index, split.val_fraction, split.test_fraction, base.seed, excluded)
    write_csv(args.out, table[["row", "path", "class", "split"]])
    result = summary(table, relabelled)
    write_json(args.metrics, result)
    save_figure(class_distribution_figure(count_table(table)), args.plot)
    log.info(
        "split: train %d, val %d, test %d, %d duplicates dropped; corrections: %d relabelled, "
        "%d excluded",
        result["train"],
        result["val"],
        result["test"],
        result["duplicates_dropped"],
        result["relabelled"],
        result["excluded"],
    )


if __name__ == "__main__":
    run_stage(main)
