"""TensorFlow prints start-up lines that no setting turns off.

"oneDNN custom operations are on", "Could not find cuda drivers" and their absl preamble
come from C++ before absl logging is initialised, so TF_CPP_MIN_LOG_LEVEL does not reach
them (tensorflow#100442), and each comes twice; LiteRT's interpreter announces its CPU
delegate the same way. While `tensorflow` is imported (and while LiteRT allocates), the
stderr file descriptor goes through a pipe: those lines are dropped and every other line
is passed on as it arrives, so a real error (or a crash) still shows.
"""

import contextlib
import importlib.abc
import importlib.util
import os
import sys
import threading
from collections.abc import Iterator

START_UP_NOISE = (
    b"All log messages before absl::InitializeLog() is called are written to STDERR",
    b"oneDNN custom operations are on",
    b"Could not find cuda drivers on your machine",
    b"This TensorFlow binary is optimized to use available CPU instructions",
    b"To enable the following instructions:",
    b"Created TensorFlow Lite XNNPACK delegate for CPU",
    # The LiteRT converter's one line on what it quantized (the export stage logs its own).
    b"fully_quantize: 0, inference_type: 6",
)


def is_noise(line: bytes) -> bool:
    return any(noise in line for noise in START_UP_NOISE)


@contextlib.contextmanager
def filtered_stderr() -> Iterator[None]:
    """Route file descriptor 2 through a filter that drops START_UP_NOISE lines."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no usable stderr (a closed descriptor): nothing to filter
        yield
        return
    reader, writer = os.pipe()
    os.dup2(writer, 2)
    os.close(writer)

    def relay() -> None:
        with os.fdopen(reader, "rb") as lines:
            for line in lines:
                if not is_noise(line):
                    os.write(saved, line)

    thread = threading.Thread(target=relay, name="quiet-stderr", daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last writer: the relay sees the end and stops
        thread.join(timeout=5)
        os.close(saved)


class _QuietLoader(importlib.abc.Loader):
    def __init__(self, loader: importlib.abc.Loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        with filtered_stderr():
            self.loader.exec_module(module)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """Finds `tensorflow` as usual, then imports it through `filtered_stderr`."""

    def find_spec(self, name, path=None, target=None):
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)  # once: the real finders find it now
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow() -> None:
    """For a process this package starts (a stage, predict, compare), called before anything
    imports TensorFlow: its C++ log at the default level prints a harmless "NodeDef mentions
    attribute use_unbounded_threadpool" error at every fit (a TF/Keras version skew), which
    buries the stages' own lines, and the first `import tensorflow` (or keras) prints the
    start-up lines above. Real failures still raise Python exceptions. A log level the user
    set wins."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if "tensorflow" in sys.modules or any(isinstance(f, _QuietFinder) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _QuietFinder())
