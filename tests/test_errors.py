"""netlab's one error family (netlab.core.errors): what the package raises, beyond a bad argument, is a NetlabError."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import netlab
from netlab.core.errors import WaitTimeout

PACKAGE = Path(netlab.__file__).parent
# Built-in exceptions a caller cannot tell from Python's own; a wait that ran out is a WaitTimeout.
BARE = {"RuntimeError", "TimeoutError", "Exception"}


def _raised_names(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call) and isinstance(node.exc.func, ast.Name):
            found.append((node.lineno, node.exc.func.id))
    return found


def test_the_package_raises_no_bare_runtime_or_timeout_error():
    bare = [f"{path.relative_to(PACKAGE.parent)}:{line} raises {name}"
            for path in sorted(PACKAGE.rglob("*.py")) for line, name in _raised_names(path) if name in BARE]
    assert not bare, "raise a NetlabError subclass (netlab.core.errors) instead: " + "; ".join(bare)


def test_a_wait_that_ran_out_is_a_netlab_error_and_still_a_timeout_error():
    with pytest.raises(netlab.NetlabError):
        raise WaitTimeout("the server did not stop within 2 s")
    with pytest.raises(TimeoutError):
        raise WaitTimeout("the server did not stop within 2 s")
    assert netlab.WaitTimeout is WaitTimeout
