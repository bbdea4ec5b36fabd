"""A delay line on a link of a lab or a topology: the notebook's handle on the in-lab program.

    with DelayLine(lab.popen, "dl0", "dl1", forward=Direction(delay=0.02, loss=0.05, seed=1),
                   backward=Direction(delay=0.02), capture="a") as line:
        ...                                    # traffic between the hosts beyond dl0 and dl1
    line.report.packets, line.report.log       # the capture at dl0, what was lost, duplicated, queued

The program itself (`netlab.core.inlab.delayline`) joins two interfaces of one namespace and
says what it does to each direction; this side starts it with `launch` (a function that runs a
command in that namespace and returns its `Popen`: `Lab.popen`, or a topology host's), gives it
its order, and reads its capture and report when it ends. Any link can have one: a lab's
bottleneck (`netlab.core.bottleneck`), a topology's link cut in two by a pair of veths.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netlab.core.arguments import check_seconds
from netlab.core.errors import HelperError
from netlab.core.inlab.delayline import MAX_DURATION, Direction
from netlab.core.lab import last_line, read_line, stop_program
from netlab.core.pcapfiles import load_pcap

__all__ = ["DelayLine", "DelayLineError", "DelayReport", "Direction", "START_TIMEOUT", "STOP_TIMEOUT"]

START_TIMEOUT = 15.0  # seconds for the program to start and open its sockets
STOP_TIMEOUT = 10.0  # seconds for it to end once asked (it writes its capture), before it is killed


class DelayLineError(HelperError):
    """The delay line could not start, or ended without its capture and report."""


@dataclass
class DelayReport:
    """What the delay line did, read when it ends: its capture, its log and each direction's counts."""

    packets: list = field(default_factory=list)  # every frame at the capture point, both directions
    log: list[tuple[float, str]] = field(default_factory=list)  # (seconds since its start, what it did)
    forward: dict[str, Any] = field(default_factory=dict)  # frames in, lost, duplicated, ..., sent; queue; lateness
    backward: dict[str, Any] = field(default_factory=dict)
    capture_drops: int = 0  # frames the capture socket missed (PACKET_STATISTICS): a full capture has 0


class DelayLine:
    """Join interfaces `a` and `b` through the delay line: `forward` rules frames a → b, `backward` b → a.

    `capture` ("a", "b" or None) is where both directions are captured, with the kernel's times.
    `finish_checksums` names the hosts' ends of the links that live in the same namespace, whose
    checksums must be finished by their kernel (a veth leaves them to hardware that does not exist).
    `duration` (s) bounds the program's life; None leaves it to the owner's end (a topology's
    link lives as long as the topology: the program ends when its stdin closes, at `close()` or
    when this process ends). `name` is what its errors call it. After the block,
    `report` holds what it did.
    """

    def __init__(self, launch: Callable[..., subprocess.Popen], a: str, b: str, *,
                 forward: Direction | None = None, backward: Direction | None = None, capture: str | None = "a",
                 duration: float | None = 15.0, finish_checksums: Sequence[str] = (), name: str = "the delay line") -> None:
        if capture not in ("a", "b", None):
            raise ValueError(f"capture must be 'a', 'b' or None, not {capture!r}")
        for name, device in (("a", a), ("b", b)):
            if not isinstance(device, str) or not 0 < len(device) < 16:
                raise ValueError(f"{name} must be an interface's name (1 to 15 characters), not {device!r}")
        if duration is not None:
            check_seconds("duration", duration, MAX_DURATION)
        self.forward = (forward or Direction()).check("forward")
        self.backward = (backward or Direction()).check("backward")
        self._launch, self.a, self.b, self.capture = launch, a, b, capture
        self.duration = None if duration is None else float(duration)
        self.finish_checksums, self.name = list(finish_checksums), name
        self.report = DelayReport()
        self._proc: subprocess.Popen | None = None
        self._dir: str | None = None
        self._ordered = False

    def start(self) -> None:
        """Start the program (Python and its imports take a few tens of ms) before its links exist."""
        if self._proc is None:
            self._proc = self._launch([sys.executable, "-m", "netlab.core.inlab.delayline"], stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE)

    def __enter__(self) -> DelayLine:
        try:
            self.open()
        except BaseException:
            self.close()
            raise
        return self

    def open(self) -> None:
        """Start the program if it is not yet, give it its order, and return once it joins the links."""
        self.start()
        self._dir = tempfile.mkdtemp(prefix="netlab-delayline-")
        order = {"a": self.a, "b": self.b, "forward": self.forward.to_order(), "backward": self.backward.to_order(),
                 "capture": self.capture, "out": self._dir, "duration": self.duration,
                 "finish_checksums": self.finish_checksums}
        proc = self._proc
        proc.stdin.write(json.dumps(order).encode() + b"\n")
        proc.stdin.flush()
        line = read_line(proc.stdout, START_TIMEOUT).decode(errors="replace")
        if line != "ready":
            proc.kill()
            code = proc.wait(STOP_TIMEOUT)
            detail = last_line(proc.stderr.read().decode(errors="replace")) if proc.stderr else ""
            when = f"within {START_TIMEOUT:g} s" if code < 0 else f"(it ended with status {code})"
            raise DelayLineError(f"{self.name} did not start {when}: {detail or line or 'it said nothing'}")
        self._ordered = True

    def close(self) -> None:
        """Stop the program and read its capture and report (nothing is left running)."""
        proc, self._proc = self._proc, None
        try:
            if proc is not None:
                killed, said = stop_program(proc, STOP_TIMEOUT)
                if self._ordered:
                    self._collect(killed, said)
        finally:
            self._ordered = False
            if self._dir is not None:
                shutil.rmtree(self._dir, ignore_errors=True)
                self._dir = None

    def _collect(self, killed: bool, said: str) -> None:
        out = Path(self._dir or "")
        if not (out / "report.json").is_file():
            raise DelayLineError(f"{self.name} ended without writing its report"
                                 + (f" (it did not stop within {STOP_TIMEOUT:g} s)" if killed else "")
                                 + (f": {said}" if said else ""))
        data = json.loads((out / "report.json").read_text())
        self.report.log = [tuple(entry) for entry in data["log"]]
        self.report.forward, self.report.backward = data["forward"], data["backward"]
        self.report.capture_drops = data["capture_drops"]
        self.report.packets = load_pcap(out / "link.pcap") if self.capture else []

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: object) -> None:
        try:
            self.close()
        except DelayLineError as err:
            if exc is None:
                raise
            exc.add_note(str(err))
