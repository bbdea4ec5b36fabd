"""Where netlab finds the system programs it runs: `ip`, `tc`, `nft`, `unshare`, `iperf3`, ...

Theory of operation
-------------------
Debian gives an ordinary user `PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games`:
no `/usr/sbin`, no `/sbin`, which is where `tc`, `nft` and `sysctl` live. Root's PATH has them,
so a lookup by bare name works for root and fails for a student. netlab therefore looks each
program up once, on PATH first (a program the user put there wins) and then in the folders
where the system keeps its programs, and runs it by its absolute path. A program started
without netlab's imports (the topology agent) is handed the absolute paths it needs.

Rules for this file:
1. Every program netlab runs is found with `program()` (or `command()`), never by bare name.
2. A program that is really missing raises `ProgramMissing`, a `LabUnavailable`: an experiment
   that needs it shows its recording with the one sentence, never a FileNotFoundError. The
   sentence tells "not installed" from "installed but not found" (the Debian package says so).
"""

from __future__ import annotations

import os
import shutil
import subprocess

from netlab.core.errors import LabUnavailable

__all__ = ["ProgramMissing", "SYSTEM_DIRS", "PACKAGES", "find", "program", "command", "search_path"]

# Searched after PATH, in this order: where Debian (and most Linux systems) keep their programs.
SYSTEM_DIRS: tuple[str, ...] = ("/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin")

# The Debian package each program comes in, for the sentence when it is missing.
PACKAGES: dict[str, str] = {
    "ip": "iproute2", "tc": "iproute2", "ss": "iproute2", "nstat": "iproute2",
    "nft": "nftables", "sysctl": "procps",
    "unshare": "util-linux", "nsenter": "util-linux", "setpriv": "util-linux", "prlimit": "util-linux",
    "iperf3": "iperf3", "tracepath": "iputils-tracepath", "ping": "iputils-ping",
    "bird": "bird2", "birdc": "bird2", "bwrap": "bubblewrap",
    "nsd": "nsd", "unbound": "unbound", "dnsmasq": "dnsmasq-base", "conntrack": "conntrack",
}


class ProgramMissing(LabUnavailable):
    """A system program netlab needs is not on this machine, or not where netlab can find it."""

    def __init__(self, name: str, sentence: str) -> None:
        super().__init__(sentence)
        self.name = name


def search_path() -> list[str]:
    """The folders searched, in order: PATH's, then SYSTEM_DIRS not already on it."""
    on_path = [d for d in os.environ.get("PATH", "").split(os.pathsep) if d]
    return on_path + [d for d in SYSTEM_DIRS if d not in on_path]


def find(name: str) -> str | None:
    """The absolute path of program `name`, found on PATH or in the system's folders; None if nowhere."""
    return shutil.which(name, path=os.pathsep.join(search_path()))


def program(name: str, needed_for: str = "") -> str:
    """The absolute path of program `name`; raises ProgramMissing with one sentence if it is nowhere.

    `needed_for` completes the sentence ("to drop a datagram"), so the student reads what the
    missing program would have done.
    """
    found = find(name)
    if found is not None:
        return found
    package = PACKAGES.get(name)
    purpose = f" {needed_for}" if needed_for else ""
    if package and _installed(package):
        why = (f"netlab needs `{name}`{purpose} and Debian's {package} package is installed, but the program is in "
               f"none of the folders netlab searches ({', '.join(search_path())}), so netlab shows recorded captures instead.")
    else:
        what = f" (Debian's {package} package)" if package else ""
        why = (f"This machine has no `{name}` program{what}, which netlab needs{purpose}, "
               "so netlab shows recorded captures instead.")
    raise ProgramMissing(name, why)


def command(argv: list[str] | tuple[str, ...], needed_for: str = "") -> list[str]:
    """`argv` with its program replaced by that program's absolute path (see `program`)."""
    if not argv:
        raise ValueError("a command needs at least a program name")
    first = argv[0]
    return [first if os.path.isabs(first) else program(first, needed_for), *argv[1:]]


def _installed(package: str) -> bool:
    """True when dpkg says `package` is installed (False where there is no dpkg)."""
    tool = shutil.which("dpkg-query", path=os.pathsep.join(("/usr/bin", "/bin")))  # where Debian keeps it
    if tool is None:
        return False
    try:
        done = subprocess.run([tool, "-W", "-f=${db:Status-Status}", package], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return False
    return done.stdout.strip() == "installed"
