"""The lab's helper: root of the lab's namespaces, it makes sockets there, runs commands and captures.

Started by `netlab.core.lab.Lab` inside `unshare --user --map-root-user --net`; it brings `lo` up,
says "ready" with its pid and namespace, then answers one request at a time over the protocol
(`netlab.core.inlab.protocol`), from the table `Helper.REQUESTS`, until its channel closes.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from netlab.core.errors import LabError
from netlab.core.inlab.protocol import answer, recv_msg, send_msg
from netlab.core.programs import program

__all__ = ["Helper", "serve_helper"]


class Helper:
    """The helper's state inside the namespace, and one method per request it answers.

    `REQUESTS` maps a request's name to its method: `Lab.request(op, *args)` on the notebook side
    runs `Helper.REQUESTS[op](helper, *args)` here. A method returns `(result, fds)`: the result
    goes back pickled, the file descriptors with it (SCM_RIGHTS) and are closed here once sent.
    """

    def __init__(self) -> None:
        self.sniffer: Any = None

    def socket(self, family: int, type: int, proto: int) -> tuple[None, list[socket.socket]]:
        return None, [socket.socket(family, type, proto)]

    def run(self, argv: list[str], timeout: float) -> tuple[str, list]:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise LabError(f"{' '.join(argv)} did not finish within {timeout:g} s in the lab; it was stopped") from None
        if done.returncode != 0:
            raise LabError(f"{' '.join(argv)} failed in the lab: {done.stderr.strip()}")
        return done.stdout, []

    def sysctl(self, name: str, value: str) -> tuple[None, list]:
        path = os.path.join("/proc/sys", *name.split("."))
        try:
            with open(path, "w") as f:
                f.write(value)
        except OSError as err:
            raise LabError(f"could not set {name} = {value} in the lab: {err.strerror}") from None
        return None, []

    def sniff_start(self, *args: Any) -> tuple[float, list]:
        from netlab.core.inlab.sniffer import Sniffer

        self.stop_sniffer()
        self.sniffer = Sniffer(*args)
        return self.sniffer.start(), []

    def sniff_stop(self) -> tuple[list, list]:
        frames = self.sniffer.stop() if self.sniffer else []
        self.sniffer = None
        return frames, []

    def stop_sniffer(self) -> None:
        if self.sniffer is not None:
            self.sniffer.stop()
            self.sniffer = None

    REQUESTS: dict[str, Callable[..., tuple[Any, list]]] = {
        "socket": socket, "run": run, "sysctl": sysctl, "sniff_start": sniff_start, "sniff_stop": sniff_stop,
    }


def _start_helper() -> None:
    subprocess.run([program("ip"), "link", "set", "lo", "up"], check=True, capture_output=True, timeout=5)


def serve_helper() -> None:
    """The helper's main loop, inside the namespace (started by `Lab()`, never by hand)."""
    chan = socket.socket(fileno=int(sys.argv[1]))
    try:
        _start_helper()
    except Exception as err:  # report any start-up failure to the notebook side
        send_msg(chan, ("failed", f"{type(err).__name__}: {err}"))
        return
    send_msg(chan, ("ready", {"pid": os.getpid(), "netns": os.stat("/proc/self/ns/net").st_ino}))
    helper = Helper()
    while True:
        try:
            (op, args), _ = recv_msg(chan)
        except (EOFError, OSError):
            break  # the notebook side is gone: stop
        if op == "quit":
            break
        answer(chan, Helper.REQUESTS, helper, op, args)
    helper.stop_sniffer()
    chan.close()
    # Leave without the interpreter's teardown: unloading scapy's thousands of classes takes
    # about 0.3 s, and the notebook waits for this process to end on every Lab.close().
    sys.stderr.flush()
    os._exit(0)
