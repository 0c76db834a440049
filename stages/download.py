"""download: fetch the dataset and lay it out as data/raw/<class>/<image>, whatever the source.

data.source animal-mnist (offline), kaggle (Animals-10 by default) or folder (your photos);
data/raw/manifest.csv lists every file with its class, its given split and its source.
"""

import logging

from image_classifier.atomic import atomic_directory
from image_classifier.console import parse_paths, run_stage
from image_classifier.data.dataset import read_csv
from image_classifier.data.filenames import SKIPPED_FILE
from image_classifier.data.sources import download
from image_classifier.params import DataParams, read_params

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    args = parse_paths(argv, __doc__, out="the data/raw folder to write")
    data = DataParams.from_params(read_params())
    with atomic_directory(args.out) as target:
        source = download(data, target)
    log.info("download: %s -> %s", source, args.out)
    skipped = read_csv(args.out / SKIPPED_FILE, ("path", "reason", "detail"))
    if len(skipped):
        counts = skipped["reason"].value_counts().items()
        reasons = ", ".join(f"{count} {reason}" for reason, count in counts)
        files = f"{len(skipped)} source file{'s' * (len(skipped) != 1)}"
        log.warning(
            "download: warning: %s not used (%s): see %s", files, reasons, args.out / SKIPPED_FILE
        )
    if data.source == "kaggle" and source != f"kaggle:{data.kaggle_dataset}":
        # DVC cannot see a new upstream version of an unpinned handle: say how to pin it.
        log.warning(
            "download: data.kaggle_dataset %s is not pinned, so DVC will not notice a new "
            "version; pin the one downloaded: dvc exp run -S data.kaggle_dataset=%s",
            data.kaggle_dataset,
            source.removeprefix("kaggle:"),
        )


if __name__ == "__main__":
    run_stage(main)
