"""Experiments a notebook runs in one line: live in the lab, or recorded when the lab is refused.

`run(client)` is the general form: it opens a lab, starts an echo server there, captures the
loopback, calls `client(lab, server_address)` (a student's own code or one of ours), waits for
the connection to finish closing, and returns an `Experiment`: the conversation understood, the
kernel's view of the sockets afterwards (`ss`), and whether all of it is *live* or *recorded*.
`handshake()` and `refused()` are the canned experiments of notebook 03 and the command line.
"""

from __future__ import annotations

import ast
import builtins
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from netlab.capture import DATA, recorded as recorded_packets, save_pcap
from netlab.conversation import Conversation
from netlab.lab import Lab, LabUnavailable, SocketState
from netlab.sockets import EchoServer, hello, one_send_many_recvs, socket_walk, two_sends_one_recv, udp_exchange

__all__ = ["Experiment", "run", "handshake", "refused", "mode"]

# States in which a TCP connection is still closing (or open); the experiment waits them out.
_BUSY = {"ESTAB", "SYN-SENT", "SYN-RECV", "FIN-WAIT-1", "FIN-WAIT-2", "CLOSE-WAIT", "LAST-ACK", "CLOSING"}


@dataclass
class Experiment:
    """What one experiment produced: the conversation, the kernel's sockets after it, live or recorded."""

    conversation: Conversation
    source: str  # "live" or "recorded"
    why: str  # one sentence: how it ran, or why it is recorded
    kernel_states: list[SocketState] = field(default_factory=list)
    result: Any = None  # what the client returned (or the exception it raised)
    capture_ready_seconds: float | None = None

    @property
    def live(self) -> bool:
        return self.source == "live"

    def save(self, path: str | Path) -> Path:
        """Write the captured packets as a pcap file that Wireshark opens."""
        return save_pcap(self.conversation.packets, path)

    def __str__(self) -> str:
        return self.conversation.table()


def mode() -> str:
    """One sentence: does this machine run experiments live, and if not, why not."""
    from netlab.lab import lab_available

    return lab_available()[1]


def run(client: Callable[[Lab, tuple[str, int] | None], Any], *, recorded: str | None = None,
        server: bool = True, close_delay: float = 0.0, timeout: float = 5.0) -> Experiment:
    """Run `client(lab, server_address)` in a fresh lab with an echo server, capturing every packet.

    `recorded` names the capture in netlab/data to show instead when this machine refuses the
    lab. `close_delay` (seconds) holds the server's close after the client's (see EchoServer).
    Exceptions from `client` are kept in `Experiment.result`, not raised: a refused connection
    is an outcome to look at.
    """
    try:
        lab = Lab()
    except LabUnavailable as err:
        if recorded is None:
            raise
        return load_recorded(recorded, why=str(err))
    with lab:
        server_ctx = EchoServer(lab=lab, timeout=timeout, close_delay=close_delay) if server else None
        try:
            with lab.capture(timeout=timeout) as cap:
                try:
                    result = client(lab, server_ctx.address if server_ctx else None)
                except OSError as err:
                    result = err
                states = lab.wait_until(_all_closed, timeout + close_delay)
        finally:
            if server_ctx is not None:
                server_ctx.close()
    return Experiment(
        conversation=Conversation.from_packets(cap.packets, source="live"),
        source="live",
        why="live: captured just now in a private network namespace that netlab created",
        kernel_states=[s for s in states if s.state != "LISTEN"],
        result=result,
        capture_ready_seconds=cap.ready_seconds,
    )


def _all_closed(states: list[SocketState]) -> bool:
    """True when no connection in the lab is still open or closing."""
    return not any(s.state in _BUSY for s in states)


def handshake(message: bytes = b"Hello, World!", close_delay: float = 0.0) -> Experiment:
    """Connect to an echo server in the lab, send `message`, read the echo, close: captured."""
    return run(lambda lab, address: hello(address, message, lab=lab), recorded="handshake" if close_delay == 0 else "handshake-slow-close", close_delay=close_delay)


def _refused_client(lab: Lab, _address: Any) -> Any:
    # A port nobody listens on: bind one to learn a free number, then close it unused.
    with lab.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with lab.create_connection(("127.0.0.1", closed_port), timeout=2.0):
        return "connected (unexpected)"


def refused() -> Experiment:
    """Connect to a lab port where nothing listens: the SYN is answered by a reset."""
    return run(_refused_client, recorded="refused", server=False)


# ---------------------------------------------------------------------------
# Recorded captures: netlab/data/NAME.pcap plus NAME.json (the kernel's sockets, provenance).


def load_recorded(name: str, why: str = "recorded") -> Experiment:
    """Return a recorded experiment shipped with netlab, labelled as recorded."""
    meta = recorded_meta(name)
    states = [SocketState(s["state"], tuple(s["local"]), tuple(s["peer"]) if s["peer"] else None)
              for s in meta.get("kernel_states", [])]
    return Experiment(
        conversation=Conversation.from_packets(recorded_packets(name), source="recorded"),
        source="recorded",
        why=why,
        kernel_states=[s for s in states if s.state != "LISTEN"],
        result=meta.get("result"),
    )


def recorded_meta(name: str) -> dict[str, Any]:
    """What netlab/data/NAME.json says about a recording (its result rebuilt, see `_rebuild`); {} if none."""
    path = DATA / f"{name}.json"
    meta = json.loads(path.read_text()) if path.exists() else {}
    if "result" in meta:
        meta["result"] = _rebuild(meta["result"])
    return meta


def _rebuild(text: Any) -> Any:
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
        from netlab import sockets

        cls = getattr(builtins, call.func.id, None) or getattr(sockets, call.func.id, None)
        if isinstance(cls, type) and issubclass(cls, BaseException):
            try:
                return cls(*(ast.literal_eval(arg) for arg in call.args))
            except ValueError:
                return text
    try:
        return ast.literal_eval(call)
    except ValueError:
        return text


def record_all(directory: Path = DATA) -> list[Path]:
    """Re-record the shipped captures from live runs (for maintainers); return the files written."""
    runs = {
        "handshake": lambda: handshake(),
        "handshake-slow-close": lambda: handshake(close_delay=0.2),
        "refused": refused,
        # notebook 02: the socket calls one by one, TCP as a byte stream, UDP for contrast
        "sockets-walk": socket_walk,
        "sockets-two-sends": two_sends_one_recv,
        "sockets-one-send": one_send_many_recvs,
        "udp-exchange": udp_exchange,
    }
    # notebook 06: each failure in code and on the wire (netlab/failures.py imports this module)
    from netlab import failures
    runs.update({f"errors-{name}": experiment for name, experiment in failures.RECORDINGS.items()})
    # notebook 08: the same request over HTTP and HTTPS, and the certificates a client refuses
    from netlab import tls
    runs.update(tls.RECORDINGS)
    # notebook 04: three HTTP requests over one kept-alive connection, and over one connection each
    from netlab import http
    runs.update(http.RECORDINGS)
    written = []
    for name, experiment in runs.items():
        written += write_recording(experiment(), directory, name)
    # notebook 05: transfers to the scripted peer; their .json also keeps the peer's script and log
    from netlab import peer
    written += peer.record(directory)
    return written


def write_recording(exp: Any, directory: Path, name: str, **extra: Any) -> list[Path]:
    """Save a live experiment as directory/NAME.pcap plus NAME.json (its provenance, result and
    the kernel's sockets; `extra` adds or replaces fields); return the two paths."""
    if not exp.live:
        raise RuntimeError(f"cannot record {name}: {exp.why}")
    pcap = exp.save(directory / f"{name}.pcap")
    meta = {
        "recorded_with": "netlab record, live in a private network namespace",
        "kernel": _kernel(),
        # Lists and dicts of plain values (what each recv returned) are kept as they are for
        # the recorded run; anything else as its repr.
        "result": _plain_or_repr(exp.result),
        "kernel_states": [{"state": s.state, "local": list(s.local), "peer": list(s.peer) if s.peer else None}
                          for s in getattr(exp, "kernel_states", [])],
        **extra,
    }
    path = directory / f"{name}.json"
    path.write_text(json.dumps(meta, indent=2) + "\n")
    return [pcap, path]


def _plain_or_repr(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        try:
            json.dumps(value)
            return value
        except (TypeError, ValueError):
            pass
    return repr(value)


def _kernel() -> str:
    import platform

    return f"{platform.system()} {platform.release()}"

