"""Run a program as an ordinary user would: uid 65534, Debian's PATH for such a user, an empty HOME.

Theory of operation
-------------------
CI and many instructors' machines run as root, whose PATH holds /usr/sbin and whose processes
may do what a student's may not; a student on Debian has PATH=/usr/local/bin:/usr/bin:/bin:
/usr/local/games:/usr/games (/etc/login.defs) and no privilege at all. What runs here as root
and must behave as it will for a student (the notebooks' kernel in the test run, the lab's tests
once more) is started through `as_uid`: `setpriv` (util-linux) drops to uid 65534 with no
supplementary groups, and `env -i` gives it only the environment named.

That uid must be able to run a Python and read the packages: root's Python may live under /root
(mode 700), so `python()` finds one of the same minor version it can run (Debian's
/usr/bin/python3.11 next to a pyenv 3.11), and `pythonpath()` hands it this environment's
packages by PYTHONPATH, so that the programs the lab starts find them too.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

from netlab.core import programs

__all__ = ["UID", "DEBIAN_USER_PATH", "as_uid", "can_read", "python", "pythonpath", "environment", "unavailable"]

UID = 65534  # nobody: an ordinary uid that exists on every Linux system
DEBIAN_USER_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games"  # /etc/login.defs, ENV_PATH


def as_uid(argv: list[str], env: dict[str, str]) -> list[str]:
    """`argv` run as uid UID with exactly the environment `env` (setpriv, then env -i)."""
    return [programs.program("setpriv"), f"--reuid={UID}", f"--regid={UID}", "--clear-groups", "--",
            programs.program("env"), "-i", *(f"{k}={v}" for k, v in env.items()), *argv]


def can_read(path: str | Path) -> bool:
    """True when uid UID may read `path` and pass through it (and every folder above it)."""
    try:
        done = subprocess.run(as_uid([programs.program("test"), "-r", str(path), "-a", "-x", str(path)], {}),
                              capture_output=True, timeout=10, cwd="/")
    except (OSError, subprocess.SubprocessError, programs.ProgramMissing):
        return False
    return done.returncode == 0


@functools.cache  # asked by the nbval plugin, the test run's collection and a test: one answer per process
def python() -> str | None:
    """A Python of this one's minor version that uid UID can run (compiled packages need the same), or None."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (os.path.realpath(sys.executable), f"/usr/bin/python{version}"):
        if not os.path.exists(candidate):
            continue
        try:
            done = subprocess.run(as_uid([candidate, "-c", "import sys; print(sys.version)"], {}),
                                  capture_output=True, text=True, timeout=30, cwd="/")
        except (OSError, subprocess.SubprocessError, programs.ProgramMissing):
            continue
        if done.returncode == 0 and done.stdout.startswith(version):
            return candidate
    return None


def pythonpath(project: str | Path) -> str:
    """PYTHONPATH for uid UID: `project` (where netlab is), then this environment's packages."""
    paths = sysconfig.get_paths()
    return os.pathsep.join(dict.fromkeys([str(project), paths["purelib"], paths["platlib"]]))


def environment(home: str | Path, project: str | Path) -> dict[str, str]:
    """The whole environment of a program run as uid UID: Debian's PATH, `home`, this environment's packages."""
    return {"PATH": DEBIAN_USER_PATH, "HOME": str(home), "LANG": "C.UTF-8", "PYTHONPATH": pythonpath(project),
            "PYTHONDONTWRITEBYTECODE": "1"}


@functools.cache
def unavailable(project: str | Path) -> str | None:
    """None when root can run Python as uid UID with `project` and this environment's packages; else why not."""
    if os.geteuid() != 0:
        return "only root can become another user"
    if programs.find("setpriv") is None:
        return "setpriv (util-linux) is not installed"
    if python() is None:
        return f"uid {UID} can run no Python {sys.version_info.major}.{sys.version_info.minor} here"
    for path in pythonpath(project).split(os.pathsep):
        if not can_read(path):
            return f"uid {UID} cannot read {path}"
    return None
