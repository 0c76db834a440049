"""gradcam: where the model looks, as Grad-CAM heatmaps over test images of every class.

For each class, some correct predictions and the most confident mistakes (chosen from
evaluate's predictions.csv), each captioned with the true label, the predicted label and
the confidence; one PNG grid per class in --out.
"""

import logging

import numpy as np

from image_classifier.atomic import atomic_directory
from image_classifier.console import StageError, parse_paths, run_stage
from image_classifier.data.dataset import load_subset, read_csv
from image_classifier.model.attribution import choose_layer, gradcam_heatmap
from image_classifier.params import BaseParams, GradcamParams, read_params
from image_classifier.report.charts import Panel, image_grid_figure, save_figure
from image_classifier.report.tables import TABLE_COLUMNS, caption, choose_examples

log = logging.getLogger(__name__)


def class_figure(model, layer, test, predictions, name, right, wrong, columns):
    """One class's grid: right answers on top (green), mistakes below (red), heatmaps over."""
    rows = np.concatenate([right, wrong]).astype(int)
    class_of = {class_name: index for index, class_name in enumerate(test.class_names)}
    predicted = predictions.loc[rows, "predicted"].map(class_of).to_numpy()
    heatmaps = gradcam_heatmap(model, test.images[rows], predicted, layer) if len(rows) else []
    colors = ["darkgreen"] * len(right) + ["firebrick"] * len(wrong)
    panels = [
        Panel(test.images[row], caption(predictions.loc[row]), heatmap, color)
        for row, heatmap, color in zip(rows, heatmaps, colors, strict=True)
    ]
    title = (
        f"Grad-CAM for {name} at layer {layer}: right (green), most confident mistakes (red);"
        "\nwarm colours = evidence for the predicted class"
    )
    return image_grid_figure([panels[: len(right)], panels[len(right) :]], title, columns)


def main(argv: list[str] | None = None) -> None:
    args = parse_paths(
        argv,
        __doc__,
        "resized",
        "split",
        "model",
        predictions="evaluate's CSV",
        out="folder for one PNG per class",
    )
    params = read_params()
    base, gradcam = BaseParams.from_params(params), GradcamParams.from_params(params)

    from image_classifier.model.architectures import load_trained_model

    # The model first: a bad gradcam.layer stops the stage before the test set is loaded.
    model = load_trained_model(args.model)
    layer = choose_layer(model, gradcam.layer)
    test = load_subset(args.resized, args.split, "test")
    predictions = read_csv(args.predictions, TABLE_COLUMNS)
    predictions["confidence"] = predictions["confidence"].astype(float)
    if predictions["path"].tolist() != test.paths:
        raise StageError(f"{args.predictions} is not of this test split: re-run evaluate")
    columns = max(gradcam.correct_per_class, gradcam.wrong_per_class, 1)
    with atomic_directory(args.out) as out:
        for name in test.class_names:
            right, wrong = choose_examples(
                predictions, name, gradcam.correct_per_class, gradcam.wrong_per_class, base.seed
            )
            figure = class_figure(model, layer, test, predictions, name, right, wrong, columns)
            save_figure(figure, out / f"{name}.png", dpi=80)
    log.info("gradcam: %d classes from layer %s -> %s", len(test.class_names), layer, args.out)


if __name__ == "__main__":
    run_stage(main)
