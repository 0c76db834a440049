"""The code the pipeline's stages share, and the user commands `predict` and `compare`.

    data/    from a dataset source to labelled uint8 arrays: sources, decoding, the split
    model/   architectures, augmentation, fitting, the model card, Grad-CAM, serving
    report/  scores, tables and figures of a trained model's predictions

Importing it quiets TensorFlow's start-up lines (see `quiet_tensorflow_import`).
"""

import os

from image_classifier.quiet import quiet_tensorflow_import

# TensorFlow's C++ log at its default level prints a harmless "NodeDef mentions attribute
# use_unbounded_threadpool" error at every fit (a TF/Keras version skew), which buries the
# stages' own lines. Real failures still raise Python exceptions. A value the user sets wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
quiet_tensorflow_import()
