"""train: fit train.model on the train split; keep the epoch with the best train.monitor.

Writes the model (Keras format) and beside it its card (class names and input contract,
image_classifier/model/card.py), per-epoch curves through DVCLive, and a metrics JSON.
"""

import logging

from image_classifier.atomic import atomic_directory, atomic_path, write_json
from image_classifier.console import parse_paths, run_stage
from image_classifier.data.dataset import image_size, load_subset
from image_classifier.model.card import ModelCard, write_card
from image_classifier.params import BaseParams, ResizeParams, TrainParams, read_params

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    args = parse_paths(
        argv,
        __doc__,
        resized="the data/resized folder",
        split="the split CSV",
        model="the .keras file to write",
        live="DVCLive folder for curves",
        metrics="summary JSON to write",
    )
    params = read_params()
    base, train = BaseParams.from_params(params), TrainParams.from_params(params)
    resize = ResizeParams.from_params(params)
    # Keras is imported only now, after the params were found valid.
    from image_classifier.model.architectures import check_input_size

    size = image_size(args.resized)
    check_input_size(train.model, size)

    from dvclive import Live
    from dvclive.keras import DVCLiveCallback

    from image_classifier.model.fitting import configure_devices, fit_model, fit_summary

    devices = configure_devices()
    train_set = load_subset(args.resized, args.split, "train")
    val_set = load_subset(args.resized, args.split, "val")
    log.info(
        "train: %s on %d images (val %d), %s",
        train.model, len(train_set.labels), len(val_set.labels), devices.describe(),
    )  # fmt: skip
    # DVCLive writes into a temporary folder that replaces --live at the end, so a killed
    # run leaves the previous curves whole.
    with atomic_directory(args.live) as live_folder:
        with Live(str(live_folder), dvcyaml=False, save_dvc_exp=False) as live:
            result = fit_model(
                train, train_set, val_set, base.seed, devices,
                callbacks=[DVCLiveCallback(live=live)], on_phase=log.info,
            )  # fmt: skip
        with atomic_path(args.model) as temporary:
            result.model.save(temporary)
        card = ModelCard(
            model=train.model,
            class_names=train_set.class_names,
            image_size=size,
            fit=resize.fit,
            max_megapixels=resize.max_megapixels,
        )
        write_card(args.model, card)
    metrics = fit_summary(result, train.monitor)
    write_json(args.metrics, metrics)
    log.info(
        "train: best %s %.4f at epoch %d of %d (val accuracy %.4f), %.0f s, %.0f images/s",
        train.monitor, metrics[train.monitor], metrics["best_epoch"], metrics["epochs_run"],
        metrics["val_accuracy"], metrics["seconds"], metrics["images_per_second"],
    )  # fmt: skip


if __name__ == "__main__":
    run_stage(main)
