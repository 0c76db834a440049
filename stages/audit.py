"""audit: suspect labels and near-duplicate photos in the data, for a person to review.

Suspect labels: confident learning (cleanlab) on out-of-sample class probabilities, the
trained model's for val and test, a cross-validated classifier on its embeddings for train
(image_classifier/audit/labels.py). Near-duplicates: pairs of photos whose detail matches
far better than each matches its ordinary look-alikes, within a split, across splits
(leakage) and across classes (a label conflict; image_classifier/audit/duplicates.py).
Writes into --out findings.csv (every finding), suggested_corrections.csv (rows in
data/corrections.csv's format, to review and copy) and a gallery PNG per kind; to --metrics
the counts per kind, split and class.
Nothing is changed: a correction is a person's edit of data/corrections.csv.
"""

import logging

import numpy as np
import pandas as pd

from image_classifier.atomic import write_csv, write_json
from image_classifier.console import parse_paths, run_stage
from image_classifier.data.dataset import SPLITS, StoredRows, class_names, read_csv
from image_classifier.data.filenames import IMAGES_FILE
from image_classifier.params import AuditParams, BaseParams, EvaluateParams, read_params
from image_classifier.report.charts import Panel, image_grid_figure, save_figure

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    args = parse_paths(
        argv,
        __doc__,
        "resized",
        "split",
        "model",
        metrics="counts JSON to write",
        out="folder for the findings table, suggested corrections and galleries",
    )
    params = read_params()
    base, audit = BaseParams.from_params(params), AuditParams.from_params(params)
    evaluate = EvaluateParams.from_params(params)  # its inference batch size
    table = read_csv(args.split, ("row", "path", "class", "split"))
    names = class_names(table["class"])
    used = table[table["split"].isin(SPLITS)].reset_index(drop=True)
    rows = used["row"].astype(int).to_numpy()
    images = StoredRows(np.load(args.resized / IMAGES_FILE, mmap_mode="r"), rows)
    labels = used["class"].map(names.index).to_numpy()
    from image_classifier.audit.findings import audit_metrics, suggested_corrections

    suspects, fit = label_audit(
        args.model, images, labels, used, names, audit, base.seed, evaluate.batch_size
    )
    duplicates = duplicate_audit(images, labels, used, audit)
    write_csv(args.out / "findings.csv", pd.concat([suspects, duplicates], ignore_index=True))
    write_csv(args.out / "suggested_corrections.csv", suggested_corrections(suspects))
    metrics = audit_metrics(suspects, duplicates, used, names) | {"model_fit": fit}
    write_json(args.metrics, metrics)
    save_figure(suspects_gallery(suspects, images, audit.shown), args.out / "suspect_labels.png")
    save_figure(
        duplicates_gallery(duplicates, images, audit.shown), args.out / "near_duplicates.png"
    )
    log_summary(metrics, args.out / "suggested_corrections.csv")


def label_audit(
    model_path, images, labels, used, names, audit: AuditParams, seed: int, batch_size: int
):
    """Suspect labels: the model's probabilities on val and test, a cross-validated
    classifier's on its embeddings for train; and how well the model fits each split."""
    from scipy.special import softmax

    from image_classifier.audit.findings import label_findings
    from image_classifier.audit.labels import (
        cross_validated_probabilities,
        given_label_accuracy,
        suspect_labels,
    )
    from image_classifier.model.architectures import embedding_model, load_trained_model

    model = embedding_model(load_trained_model(model_path))
    # steps: without them Keras warns that the generator "ran out of data" at its end.
    steps = -(-len(images) // batch_size)
    embeddings, logits = model.predict(images.batches(batch_size), steps=steps, verbose=0)
    probabilities = softmax(np.asarray(logits, np.float64), axis=1)
    splits = used["split"].to_numpy()
    train = splits == "train"
    fit = given_label_accuracy(probabilities, labels, splits)
    probabilities[train] = cross_validated_probabilities(
        embeddings[train], labels[train], len(names), audit.folds, seed
    )
    return label_findings(suspect_labels(labels, probabilities), used, names), fit


def duplicate_audit(images, labels, used, audit: AuditParams) -> pd.DataFrame:
    from image_classifier.audit.duplicates import describe_pairs, near_duplicate_pairs
    from image_classifier.audit.findings import duplicate_findings

    pairs = near_duplicate_pairs(
        images, audit.candidates, audit.min_correlation, audit.relative_distance
    )
    return duplicate_findings(describe_pairs(pairs, used["split"].to_numpy(), labels), used)


def log_summary(metrics: dict, corrections) -> None:
    from image_classifier.audit.labels import MEMORISED_GAP

    labelled, pairs_found, fit = (
        metrics["suspect_labels"],
        metrics["near_duplicates"],
        metrics["model_fit"],
    )
    log.info(
        "audit: %d suspect labels of %d images (%.1f%%); %d near-duplicate pairs: %d across "
        "splits, %d across classes, %d within a split; review %s, then copy the rows you agree "
        "with into data/corrections.csv",
        labelled["total"],
        metrics["images"],
        100 * labelled["share"],
        pairs_found["pairs"],
        pairs_found["across_splits"],
        pairs_found["across_classes"],
        pairs_found["within_split"],
        corrections,
    )
    if fit["train_accuracy"] - fit["val_accuracy"] > MEMORISED_GAP:
        log.warning(
            "audit: warning: the model gives %.1f%% of its train photos their given label "
            "against %.1f%% of val: it has learnt the train labels, wrong ones included, so "
            "few wrong train labels can be found; trust the val and test findings, and see "
            "docs/how-it-works.md#the-audit",
            100 * fit["train_accuracy"],
            100 * fit["val_accuracy"],
        )


def suspects_gallery(suspects: pd.DataFrame, images: np.ndarray, shown: int):
    panels = [
        Panel(
            images[row.position],
            f"{row.split}: labelled {row.given}\nsuggested "
            f"{row.suggested} (p(label) {row.score:.2f})",
            color="#C44E52",
        )
        for row in suspects.head(shown).itertuples()
    ]
    title = (
        f"Suspect labels: the {len(panels)} least likely of {len(suspects)} "
        "(plots/audit/findings.csv has them all)"
    )
    return image_grid_figure([panels], title, columns=6)


def duplicates_gallery(duplicates: pd.DataFrame, images: np.ndarray, shown: int):
    """Each pair side by side, label conflicts first, then leaks across splits."""
    order = duplicates.sort_values(
        ["across_classes", "across_splits", "correlation"],
        ascending=[False, False, False],
        kind="stable",
    )
    panels = []
    for row in order.head(shown // 2).itertuples():
        color = "#C44E52" if row.across_classes else "#DD8452" if row.across_splits else "black"
        panels += [
            Panel(images[row.position], f"{row.split}: {row.given}", color=color),
            Panel(
                images[row.duplicate_position],
                f"{row.duplicate_split}: {row.duplicate_label} (r {row.correlation:.3f})",
                color=color,
            ),
        ]
    title = (
        f"Near-duplicate pairs: {len(panels) // 2} of {len(duplicates)}; red: two labels, "
        "orange: in two splits"
    )
    return image_grid_figure([panels], title, columns=6)


if __name__ == "__main__":
    run_stage(main)
