"""The audit's findings as tables and counts: what a person reviews and `dvc metrics` shows."""

import pandas as pd

from image_classifier.data.dataset import SPLITS


def label_findings(suspects: pd.DataFrame, used: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """suspect_labels' rows (indices into `used`, the split table's used rows) with paths,
    splits and class names; `position` is the row in the audited images."""
    rows = used.iloc[suspects["index"].to_numpy()]
    return pd.DataFrame(
        {
            "kind": "suspect_label",
            "path": rows["path"].to_numpy(),
            "split": rows["split"].to_numpy(),
            "given": [names[i] for i in suspects["given"]],
            "suggested": [names[i] for i in suspects["suggested"]],
            "score": suspects["score"].to_numpy(),
            "position": suspects["index"].to_numpy(),
        }
    )


def duplicate_findings(pairs: pd.DataFrame, used: pd.DataFrame) -> pd.DataFrame:
    """One row per near-duplicate pair, with both photos' paths, splits and labels."""
    first, second = used.iloc[pairs["first"].to_numpy()], used.iloc[pairs["second"].to_numpy()]
    return pd.DataFrame(
        {
            "kind": "near_duplicate",
            "path": first["path"].to_numpy(),
            "split": first["split"].to_numpy(),
            "given": first["class"].to_numpy(),
            "duplicate_path": second["path"].to_numpy(),
            "duplicate_split": second["split"].to_numpy(),
            "duplicate_label": second["class"].to_numpy(),
            "correlation": pairs["correlation"].to_numpy(),
            "ordinary": pairs["ordinary"].to_numpy(),
            "across_splits": pairs["across_splits"].to_numpy(),
            "across_classes": pairs["across_classes"].to_numpy(),
            "within_split": pairs["within_split"].to_numpy(),
            "position": pairs["first"].to_numpy(),
            "duplicate_position": pairs["second"].to_numpy(),
        }
    )


def suggested_corrections(suspects: pd.DataFrame) -> pd.DataFrame:
    """The suspects as rows of data/corrections.csv: relabel to the suggested class."""
    return pd.DataFrame(
        {
            "path": suspects["path"].tolist(),
            "action": "relabel",
            "label": suspects["suggested"].tolist(),
            "note": [f"audit: p(label) {score:.2f}" for score in suspects["score"]],
        },
        columns=["path", "action", "label", "note"],
    )


def audit_metrics(
    suspects: pd.DataFrame, duplicates: pd.DataFrame, used: pd.DataFrame, names: list[str]
) -> dict:
    images = len(used)

    def per(column: pd.Series, keys) -> dict:
        counts = column.value_counts()
        return {key: int(counts.get(key, 0)) for key in keys}

    in_pairs = pd.concat([duplicates["given"], duplicates["duplicate_label"]])
    split_pairs = duplicates[duplicates["across_splits"].astype(bool)]
    pair_splits = zip(split_pairs["split"], split_pairs["duplicate_split"], strict=True)
    crossings = pd.Series(["-".join(sorted(pair)) for pair in pair_splits], dtype=str)
    return {
        "images": images,
        "suspect_labels": {
            "total": len(suspects),
            "share": round(len(suspects) / max(images, 1), 4),
            "per_split": per(suspects["split"], SPLITS),
            "per_class": per(suspects["given"], names),
        },
        "near_duplicates": {
            "pairs": len(duplicates),
            "across_splits": int(duplicates["across_splits"].sum()),
            "across_classes": int(duplicates["across_classes"].sum()),
            "within_split": int(duplicates["within_split"].sum()),
            "across_split_pairs": {k: int(v) for k, v in sorted(crossings.value_counts().items())},
            "images_per_class": per(in_pairs, names),
        },
    }
