"""Label corrections as a versioned overlay: a CSV in git that `split` applies to the data.

One row per image: `relabel` it to another class, or `exclude` it from every split. The
photos themselves are never touched, so a correction is a reviewed commit like any other:
`git diff data/corrections.csv` shows which labels changed, `dvc metrics diff` what that
did to the scores, and `git revert` undoes it. The audit stage writes rows in this format
(plots/audit/suggested_corrections.csv) for a person to review and copy.
"""

from pathlib import Path

import pandas as pd

from image_classifier.console import StageError

COLUMNS = ("path", "action", "label", "note")  # note: free text, why (ignored by split)
ACTIONS = ("relabel", "exclude")
EXCLUDED = "excluded"  # the split of an excluded image in data/split.csv


def read_corrections(path: Path) -> pd.DataFrame:
    """The corrections file, every value a string; an absent file means no corrections."""
    if not Path(path).exists():
        raise StageError(
            f"{path} not found: it lists label corrections (header {','.join(COLUMNS)}); "
            "create it with that header line only for none"
        )
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    missing = [column for column in COLUMNS[:3] if column not in table.columns]
    if missing:
        raise StageError(
            f"{path} lacks the column {missing[0]!r}: its header must be {','.join(COLUMNS)}"
        )
    return table


def apply_corrections(
    classes: pd.Series, paths: pd.Series, corrections: pd.DataFrame, source: str
) -> tuple[pd.Series, pd.Series]:
    """The class of every image after the corrections, and which images are excluded.

    `classes` and `paths` are the resize stage's index columns; a bad row stops everything
    with one line naming it (its line in the file, the header being line 1).
    """
    known = set(classes)
    where = dict(zip(paths, range(len(paths)), strict=True))
    classes, excluded = classes.copy(), pd.Series(False, index=classes.index)
    seen: dict[str, int] = {}
    for number, row in enumerate(corrections.itertuples(index=False), start=2):
        line = f"{source} line {number}"
        path, action, label = row.path.strip(), row.action.strip(), row.label.strip()
        if action not in ACTIONS:
            raise StageError(f"{line}: action {action!r} is not one of {', '.join(ACTIONS)}")
        if path not in where:
            raise StageError(
                f"{line}: {path!r} is not an image of the data (give paths as data/split.csv "
                "and the audit's findings do, e.g. cat/IMG_0001.jpg)"
            )
        if path in seen:
            raise StageError(f"{line}: {path!r} is listed twice (first on line {seen[path]})")
        seen[path] = number
        position = classes.index[where[path]]
        if action == "exclude":
            excluded[position] = True
        elif label not in known:
            names = ", ".join(sorted(known))
            raise StageError(f"{line}: class {label!r} is not one of the classes ({names})")
        else:
            classes[position] = label
    return classes, excluded
