"""Notebook 03: the TCP handshake and teardown, and a refused connection, captured in the lab."""

from __future__ import annotations

from collections.abc import Callable

from netlab.core.experiment import Experiment, run
from netlab.core.sockets import connect_to_unused_port, hello

__all__ = ["handshake", "refused", "RECORDINGS"]


def handshake(message: bytes = b"Hello, World!", close_delay: float = 0.0) -> Experiment:
    """Connect to an echo server in the lab, send `message`, read the echo, close: captured.

    `close_delay` (seconds) holds the server's close after the client's FIN, so the teardown
    can show four segments instead of three.
    """
    return run(lambda lab, address: hello(address, message, lab=lab),
               recorded="handshake" if close_delay == 0 else "handshake-slow-close", close_delay=close_delay)


def refused() -> Experiment:
    """Connect to a lab port where nothing listens: the SYN is answered by a reset."""
    return run(connect_to_unused_port, recorded="refused", server=False)


# The recordings shipped in netlab/data, re-recorded by `python -m netlab record`.
RECORDINGS: dict[str, Callable[[], Experiment]] = {
    "handshake": handshake,
    "handshake-slow-close": lambda: handshake(close_delay=0.2),
    "refused": refused,
}
