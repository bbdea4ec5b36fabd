"""The series' one execution (netlab.classroom.nbval_plugin): as an ordinary user, and the student edition in it.

Each test runs a child pytest with the project's nbval options on a small notebook written here,
with its expected outputs stored as nbval compares them, and reads the child's verdict.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output
from test_classroom import sample  # two exercises whose checks need no lab

from netlab.classroom import edition, ordinary_user

pytestmark = pytest.mark.notebook

ROOT = Path(__file__).resolve().parent.parent
OPTIONS = ["--nbval", "--nbval-current-env", "-p", "netlab.classroom.nbval_plugin", "-p", "no:cacheprovider",
           "-W", "ignore::pytest.PytestUnknownMarkWarning"]  # the child reads no pyproject.toml, where `notebook` is


def _child(notebook: Path, *extra: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """pytest on `notebook` with the project's nbval options (not its addopts: no sanitize file, no durations)."""
    # The folder must be readable by the ordinary user whose kernel runs it, and tmp_path is not (mode 700).
    notebook.parent.chmod(0o755)
    return subprocess.run([sys.executable, "-m", "pytest", "-o", "addopts=", *OPTIONS, "-q", "-rA", str(notebook), *extra],
                          cwd=ROOT, capture_output=True, text=True, timeout=300, env={**os.environ, **(env or {})})


def _write(nb: dict, folder: Path, name: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    return edition.write_notebook(nb, folder / name)


def _printed(source: str, text: str) -> nbformat.NotebookNode:
    cell = new_code_cell(source, execution_count=1)
    cell.outputs = [new_output("stream", name="stdout", text=text)]
    return cell


@pytest.mark.skipif(os.geteuid() != 0, reason="only root's run becomes an ordinary user; an ordinary user's runs as itself")
def test_as_root_the_kernel_is_an_ordinary_user_with_debians_path_and_its_own_folder(tmp_path):
    why = ordinary_user.unavailable(ROOT)
    if why:
        pytest.skip(f"no ordinary user's kernel here: {why}")
    nb = new_notebook(cells=[_printed(
        "import os, shutil\nprint(os.getuid(), os.environ['PATH'], shutil.which('tc'), os.access('.', os.W_OK))",
        f"{ordinary_user.UID} {ordinary_user.DEBIAN_USER_PATH} None True\n")])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    path = _write(json.loads(nbformat.writes(nb)), tmp_path / "nb", "uid.ipynb")
    done = _child(path)
    assert done.returncode == 0, done.stdout[-3000:]
    # NETLAB_NOTEBOOKS_AS_ROOT=1 keeps root's kernel: the same stored output then fails, which shows the first was not root.
    as_root = _child(path, env={"NETLAB_NOTEBOOKS_AS_ROOT": "1"})
    assert as_root.returncode == 1 and "0 /" in as_root.stdout, as_root.stdout[-3000:]


def _stored(nb: dict, folder: Path) -> Path:
    """`nb` executed once in this process's environment and written with its outputs, as the series is stored."""
    from nbclient import NotebookClient

    folder.mkdir(parents=True, exist_ok=True)
    node = nbformat.reads(json.dumps(nb), as_version=4)
    NotebookClient(node, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(folder)}}).execute()
    return _write(json.loads(nbformat.writes(node)), folder, "98-sample.ipynb")


def test_each_exercise_runs_its_student_edition_in_the_same_kernel_before_the_answer(tmp_path):
    done = _child(_stored(sample(), tmp_path / "nb"))
    assert done.returncode == 0, done.stdout[-3000:]
    passed = [line for line in done.stdout.splitlines() if line.startswith("PASSED")]
    names = [line.split("::", 1)[1] for line in passed]
    # nbval numbers code cells from 0: the first exercise's answer is code cell 1, the second's is 3.
    assert names == ["Cell 0", "student edition 98-ex1", "Cell 1", "Cell 2", "student edition 98-ex2", "Cell 3", "Cell 4"]


def test_a_student_edition_that_would_not_run_fails_naming_the_exercise(tmp_path):
    # The solution binds the name the check reads in a way the stub maker cannot see: the stub leaves
    # it unbound, so the student's own run would end in a NameError, not in "Not answered yet".
    nb = sample()
    nb["cells"][2]["source"] = f'{edition.BEGIN}\nglobals()["answer"] = 8760 // 1460\n{edition.END}'
    nb = _stored(nb, tmp_path / "nb")
    done = _child(nb)
    assert done.returncode == 1
    failed = [line for line in done.stdout.splitlines() if line.startswith("FAILED")]
    assert len(failed) == 1 and "student edition 98-ex1" in failed[0], done.stdout[-3000:]
    assert "98-ex1: the student edition's cell 3 raised NameError" in done.stdout
