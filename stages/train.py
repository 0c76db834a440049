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
    from image_classifier.model.fitting import (
        configure_devices,
        member_count,
        member_params,
        step_cap_note,
    )
    from image_classifier.model.mirror import learnt_params

    check_input_size(train.model, image_size(args.resized))
    devices = configure_devices()
    train_set = load_subset(args.resized, args.split, "train")
    val_set = load_subset(args.resized, args.split, "val")
    train = with_fitting_batch_size(train, len(train_set.labels))
    members = member_count(train, len(train_set.labels))
    train = member_params(train, members)
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
    if members > 1:
        log.info(
            "train: %d networks of %d epochs each from their own random starts, answers "
            "averaged (train.members)",
            members,
            train.epochs,
        )
    with atomic_directory(args.live) as live_folder:
        results, backups = [], []
        for member in range(train.members):
            if train.members > 1:
                log.info("train: network %d of %d", member + 1, train.members)
            result, backup = fit_with_backup(
                args, live_folder, train, base.seed, member, train_set, val_set, devices
            )
            results.append(result)
            backups.append(backup)
        networks = [result.model for result in results]
        model, card, calibration = finish_model(networks, card, train, val_set)
        with atomic_path(args.model) as temporary:
            model.save(temporary)
        write_card(args.model, card)
    for backup in backups:
        backup.remove()
    if args.backup.is_dir() and not any(args.backup.iterdir()):
        args.backup.rmdir()  # the members' folders were in it
    metrics = summary(results, train.monitor) | {
        "params": learnt_params(model),
        "calibration": asdict(calibration),
    }
    write_json(args.metrics, metrics)
    log_summary(metrics, calibration, train.monitor)


def member_seed(seed: int, member: int) -> int:
    """The seed of network `member` (0-based): the first trains as a single network would."""
    return seed + 1000 * member


def member_live_folder(live_folder: Path, member: int) -> Path:
    """Curves of the first network in the live folder itself, the others' beside them."""
    return live_folder / f"member-{member + 1}" if member else live_folder


def summary(results: list, monitor: str) -> dict:
    """The first network's figures (its curves are the ones plotted), the time of all, and
    each network's best epoch and val scores."""
    from image_classifier.model.fitting import fit_summary

    first = fit_summary(results[0], monitor)
    if len(results) == 1:
        return first
    members = [fit_summary(result, monitor) for result in results]
    keep = ("best_epoch", "epochs_run", monitor, "val_loss", "val_accuracy", "seconds")
    return first | {
        "seconds": round(sum(member["seconds"] for member in members), 1),
        "members": [{k: v for k, v in member.items() if k in keep} for member in members],
    }


def with_fitting_batch_size(train: TrainParams, images: int) -> TrainParams:
    batch_size, cut = fitting_batch_size("train.batch_size", train.batch_size, images)
    if not cut:
        return train
    log.warning("train: warning: %s", cut)
    return train.model_copy(update={"batch_size": batch_size})


def fit_with_backup(
    args, live_folder: Path, train: TrainParams, seed: int, member: int, train_set, val_set, devices
):
    """fit_model of network `member` with DVCLive's curves and a backup a killed run resumes
    from.

    DVCLive writes into a temporary folder that replaces --live at the end, so a killed run
    leaves the previous curves whole; the backup keeps a copy of them every epoch. A network
    that finished before the kill is read back from its backup, not trained again."""
    from dvclive import Live
    from dvclive.keras import DVCLiveCallback

    from image_classifier.model.fitting import fit_model, new_model
    from image_classifier.model.resume import Backup, training_key

    seed = member_seed(seed, member)
    key = training_key(
        {"train": train.model_dump(), "seed": seed},
        [args.resized / IMAGES_FILE, args.split],
        Path(image_classifier.__file__).parent,
    )
    live = member_live_folder(live_folder, member)
    root = args.backup / f"member-{member + 1}" if train.members > 1 else args.backup
    backup = Backup(root, key, folders={"live": live})
    if backup.resuming:
        log.info(
            "train: resuming from epoch %d (backup in %s)", backup.epochs_done + 1, backup.folder
        )
        backup.restore_folders()
    if finished := backup.read_finished():
        log.info("train: network %d finished before (backup in %s)", member + 1, backup.folder)
        return finished_result(*finished, new_model(train, train_set, devices)), backup
    with Live(str(live), dvcyaml=False, save_dvc_exp=False, resume=backup.resuming) as logger:
        result = fit_model(
            train,
            train_set,
            val_set,
            seed,
            devices,
            callbacks=[DVCLiveCallback(live=logger)],
            on_phase=log.info,
            backup=backup,
        )
    backup.save_finished(result.model.get_weights(), finished_facts(result))
    return result, backup


def finished_facts(result) -> dict:
    """A FitResult but its model, as JSON."""
    return {name: value for name, value in vars(result).items() if name != "model"}


def finished_result(weights: list, facts: dict, model):
    """The FitResult of a network read back from its backup, its weights set into `model`."""
    from image_classifier.model.fitting import FitResult

    model.set_weights(weights)
    return FitResult(model=model, **facts)


def finish_model(members: list, card, train: TrainParams, val_set):
    """The trained networks as one model, their answers averaged, with flip averaging (if
    trained on mirror images, train.flip) and its temperature on val folded in; its card says
    all of it and the unsure threshold."""
    from image_classifier.model.calibration import calibrate
    from image_classifier.model.mirror import averaged_model

    flip_average = train.flip_average and train.flip
    model = averaged_model(members, flip=flip_average)
    calibration = calibrate(
        model, val_set.images, val_set.labels, train.unsure_error_ratio, train.batch_size
    )
    card = card.model_copy(
        update={
            "temperature": calibration.temperature,
            "flip_average": flip_average,
            "members": len(members),
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
