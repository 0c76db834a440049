"""Peak memory of `predict` against the number of photos: it must stay flat.

    python -m bench.predict_memory                 # 1,000 and 10,000 photos, this checkout
    python -m bench.predict_memory --commit f9a446e   # the same, with an earlier predict

~300x250 JPEGs (bench/photos.py), an untrained 10-class model with its card (predicting
costs the same whatever the weights). Peak resident memory of the whole process, sampled.
Writes bench/predict_memory.md.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

from bench.machine import describe_machine, matmul_gflops
from bench.measure import run_measured
from bench.photos import make_photos
from bench.record import markdown_table
from bench.workspace import ROOT, clone, command_env

COUNTS = (1000, 10000)


def make_model(folder: Path) -> Path:
    from image_classifier.model.architectures import build_model
    from image_classifier.model.card import ModelCard, write_card

    path = folder / "model.keras"
    build_model("separable_cnn", 120, 10).save(path)
    write_card(
        path,
        ModelCard(
            model="separable_cnn",
            class_names=[f"c{i}" for i in range(10)],
            image_size=120,
            fit="squash",
            max_megapixels=50,
        ),
    )
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--commit", help="measure this commit's predict instead")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "predict_memory.md")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as folder:
        work = Path(folder)
        env = command_env()
        if args.commit:
            env["PYTHONPATH"] = str(clone(work / "code", args.commit))
        model = make_model(work)
        for count in COUNTS:
            photos = work / f"photos-{count}"
            make_photos(photos, count)
            command = [
                sys.executable,
                "-m",
                "image_classifier.predict",
                str(photos),
                "--model",
                str(model),
                "--out",
                str(work / f"p{count}.csv"),
            ]
            run = run_measured(command, work, env)
            rows.append((count, run.peak_bytes / 2**20, run.seconds))
            print(f"{count} photos: peak {rows[-1][1]:.0f} MiB, {run.seconds:.0f} s", flush=True)
    code = f"commit {args.commit}" if args.commit else "this checkout"
    lines = [
        f"predict, {code}, measured {time.strftime('%Y-%m-%d')} on {describe_machine()}; "
        f"dense matmul {matmul_gflops():.0f} GFLOP/s.",
        "",
        markdown_table(
            [
                {"photos": f"{count:,}", "peak memory": f"{peak:.0f} MiB", "time": f"{sec:.0f} s"}
                for count, peak, sec in rows
            ]
        ),
        "",
        f"From {COUNTS[0]:,} to {COUNTS[1]:,} photos: {rows[1][1] - rows[0][1]:+.0f} MiB.",
    ]
    text = "\n".join(lines) + "\n"
    if args.commit:
        args.out = args.out.with_name(f"{args.out.stem}_before.md")
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
