"""One module per pipeline stage (run as `python -m stages.<name>`) and the modules they share."""

import os

# TensorFlow's C++ log: at its default level every fit() prints a harmless "NodeDef mentions
# attribute use_unbounded_threadpool" error (a TF/Keras version skew) that buries the stages'
# own output. Real failures still raise Python exceptions. A value the user sets wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
