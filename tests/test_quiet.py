"""TensorFlow's start-up lines are dropped where a stage or command starts, nothing else is,
and importing the package changes nothing in the importing process."""

import sys
import textwrap

from tests.conftest import ROOT, run

STARTUP_WORDS = ("oneDNN custom operations", "Could not find cuda drivers", "absl::InitializeLog")


def test_a_process_the_package_starts_prints_no_start_up_lines(tmp_path):
    script = textwrap.dedent(
        """
        from image_classifier.console import run_stage

        def main(argv):
            import keras
            print(keras.__version__)

        run_stage(main)
        """
    )
    result = run([sys.executable, "-c", script], tmp_path)
    assert result.stdout.strip()  # keras did import
    assert not [word for word in STARTUP_WORDS if word in result.stderr], result.stderr


# Every module of the package, imported one by one: none changes an environment variable,
# adds an import hook of its own or replaces a file descriptor of the importing process. The
# one whose import first brings in TensorFlow is excused what changed then (TensorFlow sets
# variables of its own); every module after it is checked with TensorFlow already there.
# Libraries change things when imported (scikit-learn sets KMP_* variables, six adds a hook):
# the libraries the package imports, but TensorFlow's, are imported before the first look,
# and only hooks of the package's own are looked for.
SIDE_EFFECTS = """
import ast, os, importlib, sys
from pathlib import Path
TENSORFLOW = {"tensorflow", "keras", "tf2onnx", "onnx", "onnxruntime", "ai_edge_litert", "dvclive"}
libraries = set()
for path in Path("image_classifier").rglob("*.py"):
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            libraries |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            libraries.add(node.module.split(".")[0])
for library in sorted(libraries - TENSORFLOW - {"image_classifier"}):
    importlib.import_module(library)
assert "tensorflow" not in sys.modules

def state():
    ours = [hook for hook in sys.meta_path if type(hook).__module__.startswith("image_classifier")]
    return dict(os.environ), ours, (os.fstat(2).st_ino, os.fstat(2).st_dev)

files = sorted(Path("image_classifier").rglob("*.py"), key=lambda path: len(path.parts))
names = [".".join(path.with_suffix("").parts).removesuffix(".__init__") for path in files]
checked = []
before = state()
for name in names:
    had_tensorflow = "tensorflow" in sys.modules
    importlib.import_module(name)
    after = state()
    if after != before and (had_tensorflow or "tensorflow" not in sys.modules):
        changed = set(after[0].items()) ^ set(before[0].items())
        sys.exit(f"importing {name} changed {changed or after[1:]}")
    checked.append(name)
    before = after
print(len(checked))
"""


def test_importing_the_package_changes_nothing_in_the_process(tmp_path):
    result = run([sys.executable, "-c", SIDE_EFFECTS], ROOT, check=False)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout) > 30  # every module, not a few


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
