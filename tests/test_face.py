"""The face (`import netlab`): every module a notebook reaches as `netlab.NAME` also imports by that path."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import netlab

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("name", sorted(netlab._all_modules()))
def test_every_module_of_the_face_imports_by_its_old_path_in_a_fresh_python(name):
    # `import netlab.http` worked before the package was layered; a fresh interpreter, so that no
    # earlier `netlab.http` attribute access can have put it in sys.modules.
    code = (f"import importlib, netlab.{name}\n"
            f"import {netlab._all_modules()[name]} as real\n"
            f"assert importlib.import_module('netlab.{name}') is real is netlab.{name}\n"
            "assert real.__spec__.name == real.__name__, real.__spec__\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_from_an_old_path_import_a_name():
    done = subprocess.run([sys.executable, "-c", "from netlab.http import site; from netlab.peer import Script; print('ok')"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr


def test_a_name_that_is_no_module_of_the_face_still_fails_to_import():
    with pytest.raises(ModuleNotFoundError):
        __import__("netlab.no_such_module")
