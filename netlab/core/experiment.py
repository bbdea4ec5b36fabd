"""The experiment runner: live in a fresh lab, or recorded where this machine refuses the lab.

Theory of operation
-------------------
Every experiment a notebook runs returns an `Experiment` (or a subclass that adds what its
lesson needs): the packets captured, whether they are *live* or *recorded* and one sentence
saying why, the kernel's view of the lab's sockets afterwards, and the program's own result.

Rules for this file:
1. There is one fallback, `live_or_recorded`: open a lab and run the live experiment in it, or,
   where the lab is refused (`LabUnavailable`), load the recording of the same experiment
   shipped in netlab/data. No lesson catches `LabUnavailable` itself to load a recording.
2. A recording is NAME.pcap plus NAME.json. `write_recording` writes both and `load_recorded`
   (with `recorded_meta`) is the one reader; a subclass keeps its own fields in the .json
   through `recording_fields` and gets them back through `from_recording`.
3. This file knows no lesson: which experiments are recorded is said by each lesson module's
   `RECORDINGS`, and `netlab.recordings.record_all` walks them.
"""

from __future__ import annotations

import ast
import builtins
import json
import platform
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

from netlab.core import pcapfiles
from netlab.core.conversation import Conversation, conversations
from netlab.core.errors import LabError, LabUnavailable, WaitTimeout
from netlab.core.lab import Lab, SocketState, lab_available
from netlab.core.pcapfiles import recorded_packets, save_pcap
from netlab.core.sockets import EchoServer

__all__ = [
    "Experiment", "LIVE", "all_closed", "at_once", "live_or_recorded", "lab_or_host", "lab_or_none", "load_recorded", "mode",
    "recorded_meta", "rebuild", "run", "write_recording",
]

LIVE = "live: captured just now in a private network namespace that netlab created"

# States in which a TCP connection is still closing (or open); an experiment waits them out.
_BUSY = {"ESTAB", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "LAST-ACK", "CLOSING"}

E = TypeVar("E", bound="Experiment")
R = TypeVar("R")  # what an experiment run by `at_once` returns


@dataclass
class Experiment:
    """What one experiment produced: its packets, live or recorded, the kernel's sockets after it."""

    packets: list
    source: str  # "live" or "recorded"
    why: str  # one sentence: how it ran, or why it is recorded
    kernel_states: list[SocketState] = field(default_factory=list)
    result: Any = None  # what the program returned (or the exception it raised)
    capture_ready_seconds: float | None = None

    @property
    def live(self) -> bool:
        return self.source == "live"

    @cached_property
    def conversation(self) -> Conversation:
        """The TCP conversation captured (the first, where there are several)."""
        return Conversation.from_packets(self.packets, source=self.source)

    @cached_property
    def conversations(self) -> list[Conversation]:
        """One Conversation per TCP connection, in the order they opened."""
        return conversations(self.packets, source=self.source)

    def save(self, path: str | Path) -> Path:
        """Write the captured packets as a pcap file that Wireshark opens."""
        return save_pcap(self.packets, path)

    def recording_fields(self) -> dict[str, Any]:
        """What a subclass keeps in its recording's .json beyond the result and sockets."""
        return {}

    @classmethod
    def from_recording(cls, meta: dict[str, Any]) -> dict[str, Any]:
        """The subclass's own fields, read back from a recording's .json (see `recording_fields`)."""
        return {}

    def __str__(self) -> str:
        return self.conversation.table()


def mode() -> str:
    """One sentence: does this machine run experiments live, and if not, why not."""
    return lab_available()[1]


def live_or_recorded(live: Callable[[Lab], E], recorded: str | None, *, kind: type[E] = Experiment,  # type: ignore[assignment]
                     lab: Lab | None = None) -> E:
    """Run `live(lab)` in a fresh lab, or return recording `recorded` (as a `kind`) if the lab is refused.

    The lab is closed when `live` returns or fails; a program or namespace refused inside the lab
    during `live` (LabUnavailable) also gives the recording. With `recorded=None` a refusal is
    raised. Given a `lab` (one a notebook keeps for many cells), `live` runs there and it stays open.
    """
    fresh = lab is None
    if lab is None:
        try:
            lab = Lab()
        except LabUnavailable as err:
            if recorded is None:
                raise
            return load_recorded(recorded, why=str(err), kind=kind)
    try:
        return live(lab)
    except LabUnavailable as err:  # a program could not join the lab (Lab.check_join), or a namespace in it was refused
        if recorded is None:
            raise
        why = str(err)
    finally:
        if fresh:
            lab.close()
    return load_recorded(recorded, why=why, kind=kind)


def lab_or_none() -> tuple[Lab | None, str]:
    """A fresh lab and "live: …", or None and the reason, for what can also run on this host's loopback."""
    try:
        return Lab(), "live: in a private network namespace that netlab created"
    except LabUnavailable as err:
        return None, str(err)


class lab_or_host:  # noqa: N801  (used like a function: `with lab_or_host() as (lab, where, why)`)
    """A fresh lab, or this host's loopback where the lab is refused: `with` yields (lab or None, where, why).

    For what can run either way but is captured only in the lab (servers under load, bulk
    transfers): `where` is "lab" or "host"; `why` is one sentence saying which and, for the host, why.
    """

    def __enter__(self) -> tuple[Lab | None, str, str]:
        self.lab, why = lab_or_none()
        if self.lab is not None:
            try:
                self.lab.check_join()  # what runs here starts programs in the lab (Lab.popen)
            except LabUnavailable as err:
                self.lab.close()
                self.lab, why = None, str(err)
        if self.lab is None:
            return None, "host", (f"host loopback: {why} Nothing is captured here, so servers and clients ran "
                                  "on this machine's 127.0.0.1 instead.")
        return self.lab, "lab", "live: servers and clients ran in a private network namespace that netlab created"

    def __exit__(self, *exc: object) -> None:
        if self.lab is not None:
            self.lab.close()


def all_closed(states: list[SocketState]) -> bool:
    """True when no connection in the lab is still open or closing."""
    return not any(s.state in _BUSY for s in states)


def run(client: Callable[[Lab, tuple[str, int] | None], Any], *, recorded: str | None = None,
        server: bool = True, close_delay: float = 0.0, timeout: float = 5.0,
        kind: type[E] = Experiment) -> E:  # type: ignore[assignment]
    """Run `client(lab, server_address)` in a fresh lab with an echo server, capturing every packet.

    `recorded` names the capture in netlab/data to show instead when this machine refuses the
    lab. `close_delay` (seconds) holds the server's close after the client's (see EchoServer).
    Exceptions from `client` are kept in `Experiment.result`, not raised: a refused connection
    is an outcome to look at. The result is a `kind`, live or recorded (an Experiment or a
    subclass whose own fields all have defaults).
    """

    def live(lab: Lab) -> E:
        server_ctx = EchoServer(lab=lab, timeout=timeout, close_delay=close_delay) if server else None
        try:
            with lab.capture(timeout=timeout) as cap:
                try:
                    result = client(lab, server_ctx.address if server_ctx else None)
                except OSError as err:
                    result = err
                states = lab.wait_until(all_closed, timeout + close_delay)
        finally:
            if server_ctx is not None:
                server_ctx.close()
        return kind(cap.packets, "live", LIVE, kernel_states=[s for s in states if s.state != "LISTEN"],
                    result=result, capture_ready_seconds=cap.ready_seconds)

    return live_or_recorded(live, recorded, kind=kind)


# ---------------------------------------------------------------------------
# Recorded captures: netlab/data/NAME.pcap plus NAME.json (the kernel's sockets, provenance).


def load_recorded(name: str, why: str = "recorded", *, kind: type[E] = Experiment) -> E:  # type: ignore[assignment]
    """Return a recording shipped with netlab as a `kind` (an Experiment or subclass), labelled as recorded."""
    meta = recorded_meta(name)
    states = [SocketState(s["state"], tuple(s["local"]), tuple(s["peer"]) if s["peer"] else None)
              for s in meta.get("kernel_states", [])]
    return kind(recorded_packets(name), "recorded", why, kernel_states=[s for s in states if s.state != "LISTEN"],
                result=meta.get("result"), **kind.from_recording(meta))


def recorded_meta(name: str) -> dict[str, Any]:
    """What netlab/data/NAME.json says about a recording (its result rebuilt, see `rebuild`); {} if none."""
    path = pcapfiles.DATA / f"{name}.json"
    meta = json.loads(path.read_text()) if path.exists() else {}
    if "result" in meta:
        meta["result"] = rebuild(meta["result"])
    return meta


def rebuild(text: Any) -> Any:
    """Turn a recorded repr back into the value: `ConnectionResetError(104, 'Connection reset by peer')`
    into that exception, `b'...'` into bytes; anything else stays the text it is.

    So a recorded run gives the same kind of result as a live one (`exp.result.errno` works).
    Only literals and Python's own or netlab's exception classes are rebuilt, never a call.
    """
    if not isinstance(text, str):
        return text
    try:
        call = ast.parse(text, mode="eval").body
    except SyntaxError:
        return text
    if isinstance(call, ast.Call) and isinstance(call.func, ast.Name) and not call.keywords:
        cls = getattr(builtins, call.func.id, None) or _netlab_exception(call.func.id)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            try:
                return cls(*(ast.literal_eval(arg) for arg in call.args))
            except ValueError:
                return text
    try:
        return ast.literal_eval(call)
    except ValueError:
        return text


def _netlab_exception(name: str) -> type | None:
    from netlab.core import errors, sockets

    return getattr(errors, name, None) or getattr(sockets, name, None)


def write_recording(exp: Experiment, directory: Path, name: str) -> list[Path]:
    """Save a live experiment as directory/NAME.pcap plus NAME.json (its provenance, result, the
    kernel's sockets and the subclass's `recording_fields`); return the two paths."""
    if not exp.live:
        raise LabError(f"cannot record {name}: {exp.why}")
    pcap = exp.save(Path(directory) / f"{name}.pcap")
    meta = {
        "recorded_with": "netlab record, live in a private network namespace",
        "kernel": f"{platform.system()} {platform.release()}",
        # Lists and dicts of plain values (what each recv returned) are kept as they are for
        # the recorded run; anything else as its repr.
        "result": _plain_or_repr(exp.result),
        "kernel_states": [{"state": s.state, "local": list(s.local), "peer": list(s.peer) if s.peer else None}
                          for s in exp.kernel_states],
        **exp.recording_fields(),
    }
    path = Path(directory) / f"{name}.json"
    path.write_text(json.dumps(meta, indent=2) + "\n")
    return [pcap, path]


def _plain_or_repr(value: Any) -> Any:
    if isinstance(value, (list, dict, int, float)) and not isinstance(value, bool):
        try:
            json.dumps(value)
            return value
        except (TypeError, ValueError):
            pass
    return repr(value)


def at_once(*experiments: Callable[[], R], timeout: float = 60.0) -> list[R]:
    """Run experiments at the same time, each in its own thread and its own lab; return their results in order.

    Each lab has its own namespaces, links, queue and delay line: the runs share nothing but
    the machine's CPUs. A run's time is mostly waiting (round trips, a queue draining), so two
    take about as long as one. The first failure is raised once all have ended; no run takes
    longer than `timeout` seconds (each is bounded far below it by its own time bounds).
    """
    results: list[Any] = [None] * len(experiments)
    errors: list[BaseException | None] = [None] * len(experiments)

    def one(i: int) -> None:
        try:
            results[i] = experiments[i]()
        except BaseException as err:  # noqa: BLE001  (raised in the caller's thread below)
            errors[i] = err

    threads = [threading.Thread(target=one, args=(i,), name=f"netlab-experiment-{i}", daemon=True)
               for i in range(len(experiments))]
    for t in threads:
        t.start()
    end = time.monotonic() + timeout
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    if any(t.is_alive() for t in threads):
        raise WaitTimeout(f"experiments still running after {timeout:g} s")
    for err in errors:
        if err is not None:
            raise err
    return results
