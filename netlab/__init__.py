"""netlab: see your own TCP handshake, captured live in a private lab network.

The names a notebook uses, one line per idea:

    exp = netlab.handshake()          # live in the lab, or recorded where the lab is refused
    print(exp.conversation)           # the segments as a table
    netlab.draw.ladder(exp.conversation)

Importing netlab does nothing else: no processes, no sockets, no matplotlib settings.
"""

import importlib

from netlab import checks, failures
from netlab.capture import Capture, CaptureError, PcapError, load_pcap, save_pcap
from netlab.conversation import Conversation, ConversationError, NoHandshakeError, Segment, conversations
from netlab.experiments import Experiment, handshake, load_recorded, mode, refused, run
from netlab.lab import Lab, LabError, LabUnavailable, SocketState
from netlab.sockets import EchoServer, echo_server, hello, recv_exactly, recv_until_closed
from netlab.sockets import RetryError, connect_with_retry
from netlab.sockets import (Datagrams, MessageTooLarge, one_send_many_recvs, recv_message, send_message,
                            socket_walk, two_sends_one_recv, udp_exchange, walk_steps)
from netlab import tls
from netlab import peer
from netlab import http

__all__ = [
    # notebook 05: the scripted remote peer on a 1500-byte link
    "peer",
    "Capture", "CaptureError", "Conversation", "ConversationError", "EchoServer", "Experiment", "Lab",
    "LabError", "LabUnavailable", "NoHandshakeError", "PcapError", "Segment", "SocketState",
    "checks", "conversations", "draw", "echo_server", "handshake", "hello", "load_pcap",
    "load_recorded", "mode", "recv_exactly", "recv_until_closed", "refused", "run", "save_pcap",
    # notebook 02: framing, and what socket calls put on the wire
    "Datagrams", "MessageTooLarge", "one_send_many_recvs", "recv_message", "send_message", "socket_walk",
    "two_sends_one_recv", "udp_exchange", "walk_steps",
    # notebook 06: failures in code and on the wire, and a retry that gives up cleanly
    "RetryError", "connect_with_retry", "failures",
    # notebook 04: HTTP parsed and checked against the standard library, the lab web server, keep-alive
    "http",
    # notebook 08: certificates made at run time, HTTP against HTTPS, TLS records dissected
    "tls",
    # notebook 07: one echo protocol served three ways, under load; a bulk transfer beside iperf3
    "bulk", "concurrency",
]


def __getattr__(name: str):
    # netlab.draw loads matplotlib (about 0.3 s): only when a notebook first draws, so the
    # lab's helper process, which imports netlab too, starts without it.
    if name == "draw":
        return importlib.import_module("netlab.draw")
    # netlab.concurrency loads asyncio: also only when first used, for the same reason.
    if name in ("concurrency", "bulk"):
        return importlib.import_module(f"netlab.{name}")
    raise AttributeError(f"module 'netlab' has no attribute {name!r}")
