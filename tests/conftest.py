"""What every test file shares: live runs, and what "nothing left behind" means."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest

# tests/data holds what tests read, not tests: explorer.ipynb is run by tests/test_browser.py in
# JupyterLab, not by nbval (it stores no outputs to compare). A conftest.py of its own there would
# shadow this one for the test files that import helpers from `conftest`.
collect_ignore = ["data"]


# What tests/test_ordinary_user.py runs as uid 65534 with Debian's PATH: the lab, the scripted peer,
# the bottleneck and its delay line, the routed topologies, the home network's daemons and the program
# lookup, whose programs live in /usr/sbin (and the delay line's socket options, which an ordinary
# user's lab may be refused).
AS_ORDINARY_USER = ("tests/test_lab.py", "tests/test_peer.py", "tests/test_congestion.py", "tests/test_delayline.py",
                    "tests/test_below.py", "tests/test_routes.py", "tests/test_names.py", "tests/test_programs.py")


@pytest.hookimpl(trylast=True)  # after -m and -k have chosen: only a run that keeps the ordinary user's test
def pytest_collection_modifyitems(config, items):
    """Where root runs the ordinary user's test, the files it runs are not run a second time as root."""
    if os.geteuid() != 0 or not any(item.path.name == "test_ordinary_user.py" for item in items):
        return
    from netlab.classroom import ordinary_user

    if ordinary_user.unavailable(Path(__file__).resolve().parent.parent) is not None:
        return  # the ordinary user's test will skip: root runs them as before
    names = {Path(f).name for f in AS_ORDINARY_USER}
    twice = [item for item in items if item.path.name in names]
    if twice:
        config.hook.pytest_deselected(items=twice)
        items[:] = [item for item in items if item.path.name not in names]


@pytest.fixture(autouse=True)
def live_unless_told(request, monkeypatch):
    """A test that needs the lab runs live even where the shell sets NETLAB_RECORDED; the others run as told.

    So `NETLAB_RECORDED=1 ./run test --fast` runs the fast tier recorded, as a machine without
    namespaces would, and a full run stays live whatever the developer's shell says.
    """
    if request.node.get_closest_marker("lab"):
        monkeypatch.delenv("NETLAB_RECORDED", raising=False)


def _children() -> list[int]:
    """Processes (zombies included) whose parent is this test process."""
    me, found = os.getpid(), []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue  # it ended while we looked
        # Field 4 is the parent pid; the command name (field 2) may hold spaces, so split after ')'.
        if int(stat.rpartition(")")[2].split()[1]) == me:
            found.append(int(entry))
    return found


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _gone(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


@pytest.fixture
def nothing_left_behind():
    """Fail the test if it leaves a thread, a file descriptor or a child process (a zombie too) behind."""
    # Compared by identity, not by count: an earlier test's leftovers (a Jupyter kernel client's
    # heartbeat thread, say) may end during this one and must not hide, or be taken for, a leak.
    threads, fds, children = set(threading.enumerate()), _fd_targets(), set(_children())
    yield
    new_threads = [t for t in threading.enumerate() if t not in threads]
    assert not new_threads, f"threads left: {new_threads}"
    new_fds = _fd_targets() - fds
    assert not new_fds, f"file descriptors left open: {sorted(new_fds)}"
    left = set(_children()) - children
    assert not left, f"child processes left behind: {_commands(left)}"


def _fd_targets() -> set[tuple[str, str]]:
    """This process's open file descriptors with what each points to (`socket:[inode]`, a path).

    eventfds are left out: netlab opens none, while pyzmq (the Jupyter kernel clients of the
    grading tests) opens and closes them on its own threads at its own times.
    """
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue  # the descriptor listdir itself used, closed by now
        if target != "anon_inode:[eventfd]":
            found.add((fd, target))
    return found


def _commands(pids) -> list[str]:
    """What each process runs, to name a process left behind."""
    found = []
    for pid in sorted(pids):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
            found.append(f"{pid}: {argv or '(a zombie)'}")
        except OSError:
            found.append(f"{pid}: (ended)")
    return found


@pytest.fixture
def interrupt_in():
    """Call interrupt_in(seconds): KeyboardInterrupt arrives then, as from Jupyter's stop button."""
    def interrupt(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    yield lambda seconds: signal.setitimer(signal.ITIMER_REAL, seconds)
    signal.setitimer(signal.ITIMER_REAL, 0)
    signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def without_programs(monkeypatch):
    """Call without_programs("nft", ...): netlab's lookup (netlab.core.programs) finds none of them, anywhere.

    netlab calls `programs.find` through its module (never a copy imported by name), so this one
    patch reaches every caller.
    """
    from netlab.core import programs

    found = programs.find

    def hide(*names: str) -> None:
        monkeypatch.setattr(programs, "find", lambda name: None if name in names else found(name))

    return hide
