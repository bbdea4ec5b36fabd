"""Every error netlab raises, in one family, so a caller can catch netlab's own with one name.

Theory of operation
-------------------
netlab has one error policy:

1. A bad argument raises `ValueError` or `TypeError` naming the argument and what it takes.
2. Everything else netlab raises derives from `NetlabError`, with one subclass per domain:
   the lab (`LabError`, `LabUnavailable`), captures and files (`CaptureError`, `PcapError`),
   analysis (`ConversationError`, `NoHandshakeError`), protocols (`ProtocolError`: HTTP parsing,
   framing, retries), helper programs that failed (`HelperError`: the scripted peer,
   iperf3, load generators) and waits that ran out (`WaitTimeout`: a server that did not stop,
   a peer that did not close).

The command line catches `NetlabError` (and `OSError`) and prints one line, never a traceback.
Some classes also derive from the built-in exception a caller would expect (`PcapError` is a
`ValueError`, `RetryError` a `ConnectionError`, `PeerClosed` an `EOFError`, `WaitTimeout` a
`TimeoutError`), so code written against those keeps working.
"""

from __future__ import annotations

__all__ = [
    "NetlabError", "LabError", "LabUnavailable", "CaptureError", "PcapError", "ConversationError",
    "NoHandshakeError", "ProtocolError", "HelperError", "WaitTimeout",
]


class NetlabError(Exception):
    """Something netlab was asked to do could not be done; the message says what and why."""


class LabError(NetlabError):
    """The lab network failed while running an experiment."""


class LabUnavailable(LabError):
    """This system does not let netlab create a private network namespace (or join one)."""


class CaptureError(NetlabError):
    """A capture could not start or stop as it should."""


class PcapError(CaptureError, ValueError):
    """A file is not a complete pcap or pcapng capture netlab can read."""


class ConversationError(NetlabError, ValueError):
    """Packets cannot be understood as a TCP conversation."""


class NoHandshakeError(ConversationError):
    """The analysis needs a captured handshake and the packets hold none."""


class ProtocolError(NetlabError):
    """A protocol's rules were broken: a malformed HTTP message, a frame too large, a retry given up."""


class HelperError(NetlabError):
    """A program netlab runs beside the notebook (the scripted peer, iperf3, a load generator) failed."""


class WaitTimeout(NetlabError, TimeoutError):
    """Something netlab waited for did not happen within its time bound (a server's threads, a peer's close)."""
