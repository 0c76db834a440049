"""train: fit train.model on the train split; keep the epoch with the best train.monitor.

A killed run resumes from its last finished epoch (image_classifier/model/resume.py). With
train.flip_average (and train.flip) the model then answers on each photo and its mirror
image, averaged (image_classifier/model/mirror.py). It is calibrated on the val split (a
temperature folded into its last layer, and the confidence below which predict says
"unsure"; image_classifier/model/calibration.py). Writes the model (Keras format) and
beside it its card (class names, input contract, calibration; image_classifier/model/card.py),
per-epoch curves through DVCLive, and a metrics JSON.
"""

import logging
from dataclasses import asdict
from pathlib import Path

import image_classifier
from image_classifier.atomic import atomic_directory, atomic_path, write_json
from image_classifier.console import parse_paths, run_stage
from image_classifier.data.dataset import (
    fitting_batch_size,
    image_size,
    load_subset,
    read_contract,
)
from image_classifier.data.filenames import IMAGES_FILE
from image_classifier.model.card import make_card, write_card
from image_classifier.params import BaseParams, TrainParams, read_params

log = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> None:
    args = parse_paths(
        argv,
        __doc__,
        "resized",
        "split",
        model="the .keras file to write",
        live="DVCLive folder for curves",
        metrics="summary JSON to write",
        backup="folder for the backup a killed run resumes from (outside every DVC output)",
    )
    params = read_params()
    base, train = BaseParams.from_params(params), TrainParams.from_params(params)
    # Keras is imported only now, after the params were found valid.
    from image_classifier.model.architectures import check_input_size
    from image_classifier.model.fitting import configure_devices, fit_summary, step_cap_note

    check_input_size(train.model, image_size(args.resized))
    devices = configure_devices()
    train_set = load_subset(args.resized, args.split, "train")
    val_set = load_subset(args.resized, args.split, "val")
    train = with_fitting_batch_size(train, len(train_set.labels))
    # Checked before training, so that a card that cannot be written stops nothing half-way.
    card = make_card(
        model=train.model, class_names=train_set.class_names, **read_contract(args.resized)
    )
    log.info(
        "train: %s on %d images (val %d), %s",
        train.model,
        len(train_set.labels),
        len(val_set.labels),
        devices.describe(),
    )
    if note := step_cap_note(train, len(train_set.labels)):
        log.info("train: %s", note)
    with atomic_directory(args.live) as live_folder:
        result, backup = fit_with_backup(
            args, live_folder, train, base.seed, train_set, val_set, devices
        )
        model, card, calibration = finish_model(result.model, card, train, val_set)
        with atomic_path(args.model) as temporary:
            model.save(temporary)
        write_card(args.model, card)
    backup.remove()
    metrics = fit_summary(result, train.monitor) | {"calibration": asdict(calibration)}
    write_json(args.metrics, metrics)
    log_summary(metrics, calibration, train.monitor)


def with_fitting_batch_size(train: TrainParams, images: int) -> TrainParams:
    batch_size, cut = fitting_batch_size("train.batch_size", train.batch_size, images)
    if not cut:
        return train
    log.warning("train: warning: %s", cut)
    return train.model_copy(update={"batch_size": batch_size})


def fit_with_backup(
    args, live_folder: Path, train: TrainParams, seed: int, train_set, val_set, devices
):
    """fit_model with DVCLive's curves and a backup a killed run resumes from.

    DVCLive writes into a temporary folder that replaces --live at the end, so a killed run
    leaves the previous curves whole; the backup keeps a copy of them every epoch."""
    from dvclive import Live
    from dvclive.keras import DVCLiveCallback

    from image_classifier.model.fitting import fit_model
    from image_classifier.model.resume import Backup, training_key

    key = training_key(
        {"train": train.model_dump(), "seed": seed},
        [args.resized / IMAGES_FILE, args.split],
        Path(image_classifier.__file__).parent,
    )
    backup = Backup(args.backup, key, folders={"live": live_folder})
    if backup.resuming:
        log.info(
            "train: resuming from epoch %d (backup in %s)", backup.epochs_done + 1, backup.folder
        )
        backup.restore_folders()
    with Live(str(live_folder), dvcyaml=False, save_dvc_exp=False, resume=backup.resuming) as live:
        result = fit_model(
            train,
            train_set,
            val_set,
            seed,
            devices,
            callbacks=[DVCLiveCallback(live=live)],
            on_phase=log.info,
            backup=backup,
        )
    return result, backup


def finish_model(model, card, train: TrainParams, val_set):
    """The trained model with flip averaging (if trained on mirror images, train.flip) and its
    temperature on val folded in; its card says both and the unsure threshold."""
    from image_classifier.model.calibration import calibrate
    from image_classifier.model.mirror import with_mirror_average

    flip_average = train.flip_average and train.flip
    model = with_mirror_average(model) if flip_average else model
    calibration = calibrate(
        model, val_set.images, val_set.labels, train.unsure_error_ratio, train.batch_size
    )
    card = card.model_copy(
        update={
            "temperature": calibration.temperature,
            "flip_average": flip_average,
            "unsure_below": calibration.unsure_below,
        }
    )
    return model, card, calibration


def log_summary(metrics: dict, calibration, monitor: str) -> None:
    log.info(
        "train: best %s %.4f at epoch %d of %d (val accuracy %.4f), %.0f s, %.0f images/s",
        monitor,
        metrics[monitor],
        metrics["best_epoch"],
        metrics["epochs_run"],
        metrics["val_accuracy"],
        metrics["seconds"],
        metrics["images_per_second"],
    )
    log.info(
        "train: temperature %.3f: %s; answers below %.0f%% confidence will be marked unsure",
        calibration.temperature,
        calibration.reason,
        100 * calibration.unsure_below,
    )


if __name__ == "__main__":
    run_stage(main)
