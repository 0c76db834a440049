"""TensorFlow's start-up lines are dropped, and nothing else is."""

import sys
import textwrap

from tests.conftest import ROOT, run

STARTUP_WORDS = ("oneDNN custom operations", "Could not find cuda drivers", "absl::InitializeLog")


def test_importing_keras_prints_no_start_up_lines(tmp_path):
    result = run(
        [sys.executable, "-c", "import image_classifier, keras; print(keras.__version__)"],
        tmp_path,
    )
    assert result.stdout.strip()  # keras did import
    assert not [word for word in STARTUP_WORDS if word in result.stderr], result.stderr


def test_the_filter_keeps_every_other_line_in_order(tmp_path):
    """What C++ code writes to file descriptor 2 during the import: the known start-up lines
    go, a real error line (here between them) comes through, and so does output after it."""
    script = textwrap.dedent(
        """
        import os, sys
        from image_classifier.quiet import filtered_stderr
        with filtered_stderr():
            os.write(2, b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n")
            os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on. You may see ...\\n")
            os.write(2, b"F0000 real.cc:1] a real failure\\n")
            os.write(2, b"I0000 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.\\n")
            print("python's own stderr", file=sys.stderr)
        os.write(2, b"after the import\\n")
        """
    )
    result = run([sys.executable, "-c", script], ROOT)
    assert result.stderr.splitlines() == [
        "F0000 real.cc:1] a real failure",
        "python's own stderr",
        "after the import",
    ]
