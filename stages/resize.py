"""resize: every raw image becomes a size x size RGB uint8 array, decoded once and for all.

Writes into --out images.npy (N, size, size, 3), index.csv (one row per image: path,
class, given split, pixel hash) and rejected.csv (every file that could not be used, and
why); a summary to --metrics. data/raw is only read.
"""

import logging
import time

from image_classifier.atomic import atomic_directory, write_json
from image_classifier.console import StageError, parse_paths, run_stage
from image_classifier.data.filenames import CONTRACT_FILE, REJECTED_FILE
from image_classifier.data.image_store import (
    read_manifest,
    read_skipped,
    resize_all,
    summary,
    write_tables,
)
from image_classifier.params import ResizeParams, read_params

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    args = parse_paths(
        argv,
        __doc__,
        raw="the data/raw folder to read",
        out="the folder to write",
        metrics="summary JSON to write",
    )
    params = ResizeParams.from_params(read_params())
    rows = read_manifest(args.raw)
    started = time.perf_counter()
    with atomic_directory(args.out) as out:
        index, rejected = resize_all(args.raw, rows, params, out)
        if not index:
            raise StageError(f"none of the {len(rows)} files in {args.raw} is a usable image")
        rejected = read_skipped(args.raw) + rejected
        write_tables(out, index, rejected)
        contract = {"image_size": params.size, "fit": params.fit}
        write_json(out / CONTRACT_FILE, contract | {"max_megapixels": params.max_megapixels})
    result = summary(index, rejected, time.perf_counter() - started)
    write_json(args.metrics, result)
    log.info(
        "resize: %d images at %dx%d, %d rejected (see %s), %.0f images/s",
        result["images"],
        params.size,
        params.size,
        result["rejected"],
        args.out / REJECTED_FILE,
        result["images_per_second"],
    )


if __name__ == "__main__":
    run_stage(main)
