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


# ---------------------------------------------------------------------------
# One error line per subcommand, printed in one place: `netlab.__main__.main`.


def _prints_an_error_line(path: Path) -> list[int]:
    """Lines of `path` where a print call writes "netlab: error"."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
            if any("netlab: error" in ast.unparse(arg) for arg in node.args):
                found.append(node.lineno)
    return found


def test_only_main_prints_the_error_line():
    main = PACKAGE / "__main__.py"
    printers = {f"{path.relative_to(PACKAGE.parent)}:{line}" for path in sorted(PACKAGE.rglob("*.py"))
                for line in _prints_an_error_line(path)}
    assert printers == {f"netlab/__main__.py:{line}" for line in _prints_an_error_line(main)}
    assert len(printers) == 1, "a subcommand raises its error; main() prints it: " + ", ".join(sorted(printers))


@pytest.mark.parametrize("argv", [["cwnd", "--cc", "no-such-algorithm"], ["grade", "{tmp}", "--workers", "-3"],
                                  ["grade", "{tmp}", "--cell-timeout", "-1"]])
def test_a_subcommand_raises_its_error_and_main_prints_it_once(argv, tmp_path, capsys, monkeypatch):
    from netlab.__main__ import build_parser, main

    monkeypatch.setenv("NETLAB_RECORDED", "1")
    if argv[0] == "cwnd":
        from netlab.lessons.congestion.experiments import available_algorithms

        if not available_algorithms():
            pytest.skip("this kernel names no congestion control, so any name is tried")
    argv = [a.format(tmp=tmp_path) for a in argv]
    args = build_parser().parse_args(argv)
    with pytest.raises(ValueError):
        args.func(args)
    assert "netlab: error" not in capsys.readouterr().err  # the subcommand printed nothing of it
    assert main(argv) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("netlab: error: ")]
    assert len(errors) == 1, errors
