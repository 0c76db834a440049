"""compare: is run B better than run A on the test split, or is the difference noise?

    python -m image_classifier.compare main my-experiment [--out comparison]

A and B are git revisions (a branch, a tag, a commit), DVC experiment names (`dvc exp
show` lists them), `workspace` (the files as they are now), or paths to a predictions CSV.
Their `plots/evaluate/predictions.csv` (evaluate's answer for every test image, kept in
git) are paired image by image: how many went from right to wrong and from wrong to right,
and McNemar's exact test on those two counts, the test for two classifiers scored on the
same images. `dvc metrics diff` says "+0.002 accuracy"; this says whether three images
is evidence. Prints the verdict and writes --out/comparison.json and --out/flips.png (the
images that changed answers, from data/raw). Not a pipeline stage.
"""

import argparse
import io
import logging
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
from scipy.stats import binomtest

from image_classifier.atomic import write_json
from image_classifier.console import StageError, run_stage
from image_classifier.report.tables import PREDICTIONS_FILE

log = logging.getLogger(__name__)

WORKSPACE = "workspace"  # as in `dvc metrics diff` and `dvc plots diff`
SIGNIFICANCE = 0.05
COLUMNS = ("path", "actual", "predicted")
MAX_FLIPS_SHOWN = 24


def stage_option(repo: Path, stage: str, option: str) -> Path:
    """A path a stage's command names in the repository's dvc.yaml (say, evaluate's --plots):
    dvc.yaml names each path once, this reads it there."""
    from ruamel.yaml import YAML

    try:
        command = YAML(typ="safe").load((repo / "dvc.yaml").read_text())["stages"][stage]["cmd"]
        return Path(re.search(rf"{option}\s+(\S+)", command).group(1))
    except (OSError, KeyError, TypeError, AttributeError):
        raise StageError(
            f"{repo / 'dvc.yaml'} names no {option} for a stage {stage}: run compare in this "
            "pipeline's repository (--repo)"
        ) from None


def predictions_path(repo: Path) -> Path:
    return stage_option(repo, "evaluate", "--plots") / PREDICTIONS_FILE


def read_predictions(name: str, repo: Path, path: Path | None = None) -> pd.DataFrame:
    """Evaluate's predictions of run `name` (revision, experiment, workspace or CSV file)."""
    if Path(name).suffix != ".csv":
        path = path or predictions_path(repo)  # the file within the repository, at any run
    if name == WORKSPACE or Path(name).suffix == ".csv":
        file = repo / path if name == WORKSPACE else Path(name)
        if not file.is_file():
            raise StageError(f"{file} not found: run `dvc repro evaluate` first")
        text, where = file.read_text(), str(file)
    else:
        import dvc.api
        from dvc.exceptions import PathMissingError
        from dvc.scm import RevError

        try:  # DVC resolves git revisions and experiment names alike
            text = dvc.api.read(path.as_posix(), repo=str(repo), rev=name)
        except RevError:
            raise StageError(
                f"{name!r} is neither a git revision nor a DVC experiment of this repository, "
                "nor a CSV file: see `git log --oneline` and `dvc exp show`"
            ) from None
        except PathMissingError:
            raise StageError(f"{name} has no {path}: it was not evaluated there") from None
        where = f"{name}:{path}"
    table = pd.read_csv(io.StringIO(text), dtype=str, keep_default_na=False)
    missing = [column for column in COLUMNS if column not in table]
    if missing:
        raise StageError(f"{where} lacks the column {missing[0]!r}: it is not evaluate's output")
    return table


@dataclass(frozen=True)
class Comparison:
    images: int
    accuracy_a: float
    accuracy_b: float
    both_right: int
    right_to_wrong: int  # right in A, wrong in B
    wrong_to_right: int  # wrong in A, right in B
    both_wrong: int
    changed_answer: int  # images whose predicted class differs, right or wrong
    p_value: float  # McNemar's exact test (two-sided) on right_to_wrong vs wrong_to_right
    verdict: str


def pair(a: pd.DataFrame, b: pd.DataFrame, names: tuple[str, str]) -> pd.DataFrame:
    """The two runs' answers side by side, refused unless they scored the same test images
    with the same labels."""
    merged = a[list(COLUMNS)].merge(
        b[list(COLUMNS)], on="path", how="outer", indicator=True, suffixes=("_a", "_b")
    )
    both = merged["_merge"] == "both"
    same_labels = (merged["actual_a"] == merged["actual_b"])[both].all()
    if not both.all() or not same_labels or a["path"].duplicated().any():
        raise StageError(
            f"{names[0]} and {names[1]} were scored on different test splits ({len(a)} and "
            f"{len(b)} images, {int(both.sum())} in common"
            + ("" if same_labels else ", some with other labels")
            + "): an image-by-image comparison needs the same data, split and seed"
        )
    return merged.drop(columns="_merge")


def mcnemar_exact(right_to_wrong: int, wrong_to_right: int) -> float:
    """McNemar's exact test: under no difference, each image that is right in one run only
    is as likely to favour A as B, so the smaller count is binomial(n, 1/2)."""
    changed = right_to_wrong + wrong_to_right
    if not changed:
        return 1.0
    return float(binomtest(min(right_to_wrong, wrong_to_right), changed, 0.5).pvalue)


def compare(paired: pd.DataFrame, names: tuple[str, str]) -> Comparison:
    right_a = (paired["predicted_a"] == paired["actual_a"]).to_numpy()
    right_b = (paired["predicted_b"] == paired["actual_b"]).to_numpy()
    right_to_wrong, wrong_to_right = (
        int((right_a & ~right_b).sum()),
        int((~right_a & right_b).sum()),
    )
    p_value = mcnemar_exact(right_to_wrong, wrong_to_right)
    if p_value >= SIGNIFICANCE:
        verdict = (
            f"no evidence of a difference (p = {p_value:.2g}): {right_to_wrong} images went "
            f"from right to wrong and {wrong_to_right} from wrong to right"
        )
    else:
        better = names[1] if wrong_to_right > right_to_wrong else names[0]
        verdict = f"{better} is better, p = {p_value:.2g}"
    return Comparison(
        images=len(paired),
        accuracy_a=round(float(right_a.mean()), 4),
        accuracy_b=round(float(right_b.mean()), 4),
        both_right=int((right_a & right_b).sum()),
        right_to_wrong=right_to_wrong,
        wrong_to_right=wrong_to_right,
        both_wrong=int((~right_a & ~right_b).sum()),
        changed_answer=int((paired["predicted_a"] != paired["predicted_b"]).sum()),
        p_value=round(p_value, 6),
        verdict=verdict,
    )


def summary_lines(result: Comparison, names: tuple[str, str]) -> list[str]:
    a, b = names
    width = max(len(a), len(b), len("A")) + 2
    return [
        f"{'':<{width}}  test accuracy",
        f"{a:<{width}}  {result.accuracy_a:.4f}",
        f"{b:<{width}}  {result.accuracy_b:.4f}  ({result.accuracy_b - result.accuracy_a:+.4f})",
        "",
        f"of {result.images} test images: {result.both_right} right in both, "
        f"{result.both_wrong} wrong in both, {result.right_to_wrong} right in {a} only "
        f"(right -> wrong), {result.wrong_to_right} right in {b} only (wrong -> right)",
        f"McNemar's exact test: {result.verdict}",
    ]


def flips_figure(paired: pd.DataFrame, raw: Path, names: tuple[str, str], size: int = 96):
    """The images that went right -> wrong and wrong -> right, each captioned with both answers;
    None when their photos are not in `raw`."""
    from image_classifier.data.decode import RejectedImage, load_image
    from image_classifier.report.charts import Panel, image_grid_figure

    right_a = paired["predicted_a"] == paired["actual_a"]
    right_b = paired["predicted_b"] == paired["actual_b"]
    rows, missing = [], 0
    for selected, color in ((right_a & ~right_b, "#C44E52"), (~right_a & right_b, "#55A868")):
        panels = []
        for _, row in paired[selected].head(MAX_FLIPS_SHOWN).iterrows():
            try:
                image = load_image(raw / row["path"], size, "squash", 10**9)
            except RejectedImage:
                missing += 1
                continue
            caption = f"true {row['actual_a']}\nA: {row['predicted_a']}, B: {row['predicted_b']}"
            panels.append(Panel(image, caption, color=color))
        rows.append(panels)
    if missing and not any(rows):
        return None
    lost, gained = int((right_a & ~right_b).sum()), int((~right_a & right_b).sum())
    title = (
        f"A = {names[0]}, B = {names[1]}\nred: right in A, wrong in B ({lost}); "
        f"green: wrong in A, right in B ({gained})"
    )
    return image_grid_figure(rows, title, columns=6)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "a", help="the run compared against: a revision, experiment, workspace or CSV"
    )
    parser.add_argument("b", help="the run compared: the same kinds")
    parser.add_argument("--out", type=Path, default=Path("comparison"), help="folder to write")
    parser.add_argument("--repo", type=Path, default=Path("."), help="the git + DVC repository")
    parser.add_argument(
        "--raw", type=Path, help="the photos the test paths name (default: download's --out)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_arguments(argv)
    names = (args.a, args.b)
    paired = pair(*(read_predictions(name, args.repo) for name in names), names)
    result = compare(paired, names)
    print("\n".join(summary_lines(result, names)))
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "comparison.json", {"a": args.a, "b": args.b, **asdict(result)})
    raw = args.raw or stage_option(args.repo, "download", "--out")
    raw = raw if raw.is_absolute() else args.repo / raw
    figure = (
        flips_figure(paired, raw, names) if result.right_to_wrong + result.wrong_to_right else None
    )
    if figure is not None:
        from image_classifier.report.charts import save_figure

        save_figure(figure, args.out / "flips.png")
    log.info(
        "compare: %s%s",
        args.out / "comparison.json",
        f" and {args.out / 'flips.png'}" if figure is not None else "",
    )


def cli() -> None:
    """The console script `image-classifier-compare`."""
    run_stage(main, name="compare")


if __name__ == "__main__":
    cli()
