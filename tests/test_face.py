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


# Every module path a notebook, README or bench script has used as `netlab.X` since the series began
# (git grep of notebooks/, README.md and bench/ before and after the package was layered), each with
# names read from it then. Written out, not read from the face: a path the face stopped offering fails.
OLD_PATHS = {
    "draw": ("ladder", "state_diagram", "time_sequence", "window_plot", "encapsulation", "header_ranges"),
    "http": ("fetch", "site", "parse_response", "serve"),
    "peer": ("Script", "loopback_transfer", "retransmission_times"),
    "failures": ("connect_timeout", "broken_pipe", "blocked_send"),
    "concurrency": ("ThreadedEchoServer", "SelectorEchoServer", "AsyncioEchoServer"),
    "bulk": ("transfer", "compare"),
    "tls": ("same_request", "CertificateAuthority", "CASES"),
    "checks": ("Feedback", "NOT_ANSWERED", "server_port"),
    "congestion": ("after_loss", "figure", "rtt_plot"),
    "below": ("trace", "hops_of"),
    "recordings": ("record_all", "all_recordings"),
}


def test_every_old_public_path_imports_as_a_module_with_its_names_in_a_fresh_python():
    lines = ["import importlib, sys, netlab"]
    for module, names in OLD_PATHS.items():
        lines += [f"import netlab.{module}",
                  f"from netlab.{module} import {', '.join(names)}",
                  f"assert sys.modules['netlab.{module}'] is netlab.{module}",
                  *(f"assert netlab.{module}.{name} is {name}" for name in names)]
    done = subprocess.run([sys.executable, "-c", "\n".join(lines) + "\nprint('ok')"], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "ok\n", done.stderr


def test_a_name_that_is_no_module_of_the_face_still_fails_to_import():
    with pytest.raises(ModuleNotFoundError):
        __import__("netlab.no_such_module")
