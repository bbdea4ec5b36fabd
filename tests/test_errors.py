"""netlab's one error family (netlab.core.errors): what the package raises, beyond a bad argument, is a NetlabError."""

from __future__ import annotations

import ast
import builtins
from pathlib import Path

import pytest

import netlab
from netlab.core.errors import WaitTimeout

PACKAGE = Path(netlab.__file__).parent
# Built-in exceptions a caller cannot tell from Python's own; a wait that ran out is a WaitTimeout.
BARE = {"RuntimeError", "TimeoutError", "Exception"}
# What a bad argument raises (the policy's rule 1), and what argparse's types raise for it.
ARGUMENT = {"TypeError", "ValueError", "ArgumentTypeError"}
# What Python's data model asks a special method to raise: `__getattr__` (of a module or a class)
# AttributeError, `__getitem__` KeyError.
SPECIAL = {"__getattr__": "AttributeError", "__getitem__": "KeyError"}
# Python's own exceptions the package may raise elsewhere beyond a bad argument, where each one is
# what the protocol it takes part in expects, by file (relative to netlab/); anything else is a NetlabError.
PROTOCOL = {
    "__init__.py": {"ImportError"},  # two lessons offering one name: the package cannot be imported as it is
    "checks.py": {"ImportError"},  # two lessons with a check of one name
    "core/arguments.py": {"NotADirectoryError", "PermissionError"},  # the folder the user named, with its name
    "classroom/edition.py": {"FileNotFoundError"},  # the same, for the folders of notebooks a user names
    "classroom/grading.py": {"FileNotFoundError", "NotADirectoryError"},
    "classroom/nbval_plugin.py": {"SystemExit"},  # pytest's way to stop a session
    "core/checking.py": {"AssertionError"},  # a check's verdict in pytest
    "core/lab.py": {"SystemExit"},  # the lab's helper exits when its channel ends
    "core/inlab/protocol.py": {"EOFError"},  # the agent protocol's channel ended: the in-lab program then exits
    "core/peer.py": {"OSError"},  # the socket error (ECONNRESET, …) the peer's kernel-less client reports
    "core/inlab/topology_agent.py": {"OSError"},  # in the lab; the agent sends it back, TopologyError raises it
    "lessons/below/experiments.py": {"SystemExit"},  # the resolver's child process ends
    "lessons/concurrency/experiments.py": {"NotImplementedError", "BlockingIOError"},  # an abstract method; accept()'s EAGAIN
    "lessons/http/commands.py": {"KeyboardInterrupt"},  # SIGTERM ends the server as Ctrl-C does
}


def _raised_names(path: Path) -> list[tuple[int, str]]:
    """(line, name) of each exception `path` raises by name, leaving out what a special method must raise."""
    found = []

    def visit(node: ast.AST, function: str) -> None:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            function = node.name
        if isinstance(node, ast.Raise) and node.exc is not None:
            exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
            name = exc.id if isinstance(exc, ast.Name) else exc.attr if isinstance(exc, ast.Attribute) else None
            if name is not None and SPECIAL.get(function) != name:
                found.append((node.lineno, name))
        for child in ast.iter_child_nodes(node):
            visit(child, function)

    visit(ast.parse(path.read_text(encoding="utf-8")), "")
    return found


def test_the_package_raises_no_bare_runtime_or_timeout_error():
    bare = [f"{path.relative_to(PACKAGE.parent)}:{line} raises {name}"
            for path in sorted(PACKAGE.rglob("*.py")) for line, name in _raised_names(path) if name in BARE]
    assert not bare, "raise a NetlabError subclass (netlab.core.errors) instead: " + "; ".join(bare)


def test_beyond_a_bad_argument_the_package_raises_its_own_errors():
    builtin = {name for name in dir(builtins) if isinstance(getattr(builtins, name), type)
               and issubclass(getattr(builtins, name), BaseException)}
    stray = []
    for path in sorted(PACKAGE.rglob("*.py")):
        allowed = ARGUMENT | PROTOCOL.get(path.relative_to(PACKAGE).as_posix(), set())
        stray += [f"{path.relative_to(PACKAGE.parent)}:{line} raises {name}"
                  for line, name in _raised_names(path) if name in builtin and name not in allowed]
    assert not stray, "raise a NetlabError subclass (netlab.core.errors) instead: " + "; ".join(stray)


def test_a_peer_that_closes_too_soon_is_a_netlab_error_and_still_an_eof_error():
    import socket

    from netlab.core.sockets import PeerClosed, recv_exactly

    left, right = socket.socketpair()
    with left, right:
        left.sendall(b"1234")
        left.close()
        with pytest.raises(PeerClosed, match="6 of 10 bytes still missing") as closed:
            recv_exactly(right, 10)
    assert isinstance(closed.value, EOFError) and isinstance(closed.value, netlab.NetlabError)
    assert netlab.PeerClosed is PeerClosed


def test_an_unknown_recording_is_a_bad_argument_naming_those_netlab_ships():
    with pytest.raises(ValueError, match="no recorded capture named 'no-such-run'; netlab ships .*'handshake'"):
        netlab.load_recorded("no-such-run")


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
    with pytest.raises((ValueError, netlab.NetlabError)):  # a bad argument, or what grading needs and lacks
        args.func(args)
    assert "netlab: error" not in capsys.readouterr().err  # the subcommand printed nothing of it
    assert main(argv) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("netlab: error: ")]
    assert len(errors) == 1, errors
