"""netlab: see your own TCP handshake, captured live in a private lab network.

The names a notebook uses, one line per idea:

    exp = netlab.handshake()          # live in the lab, or recorded where the lab is refused
    print(exp.conversation)           # the segments as a table
    netlab.draw.ladder(exp.conversation)

Importing netlab does nothing else: no processes, no sockets, no matplotlib settings.
"""

import importlib

from netlab import checks
from netlab.capture import Capture, CaptureError, PcapError, load_pcap, save_pcap
from netlab.conversation import Conversation, ConversationError, NoHandshakeError, Segment, conversations
from netlab.experiments import Experiment, handshake, load_recorded, mode, refused, run
from netlab.lab import Lab, LabError, LabUnavailable, SocketState
from netlab.sockets import (Datagrams, EchoServer, MessageTooLarge, RetryError, connect_with_retry, echo_server,
                            hello, one_send_many_recvs, recv_exactly, recv_message, recv_until_closed,
                            send_message, socket_walk, two_sends_one_recv, udp_exchange, walk_steps)

# One module per lesson, loaded when a notebook first uses it (`netlab.http.serve()`): the lab's
# helper process imports netlab too, and should start without matplotlib, asyncio, ssl or the
# HTTP server (together about 0.1 s on every Lab()).
_LESSON_MODULES = {
    "draw",  # ladder, state diagram, time-sequence graph, window plot, encapsulation (matplotlib)
    "http",  # notebook 04: HTTP parsed and checked against the standard library, the lab web server
    "peer",  # notebook 05: the scripted remote host on a 1500-byte link
    "failures",  # notebook 06: each failure in code and on the wire
    "concurrency", "bulk",  # notebook 07: one echo protocol served three ways; bulk beside iperf3
    "tls",  # notebook 08: certificates made at run time, HTTP against HTTPS, TLS records dissected
}

__all__ = [
    "Capture", "CaptureError", "Conversation", "ConversationError", "EchoServer", "Experiment", "Lab",
    "LabError", "LabUnavailable", "NoHandshakeError", "PcapError", "Segment", "SocketState",
    "checks", "conversations", "echo_server", "handshake", "hello", "load_pcap",
    "load_recorded", "mode", "recv_exactly", "recv_until_closed", "refused", "run", "save_pcap",
    # notebook 02: framing, and what socket calls put on the wire
    "Datagrams", "MessageTooLarge", "one_send_many_recvs", "recv_message", "send_message", "socket_walk",
    "two_sends_one_recv", "udp_exchange", "walk_steps",
    # notebook 06: a retry that gives up cleanly
    "RetryError", "connect_with_retry",
    *sorted(_LESSON_MODULES),
]


def __getattr__(name: str):
    if name in _LESSON_MODULES:
        return importlib.import_module(f"netlab.{name}")
    raise AttributeError(f"module 'netlab' has no attribute {name!r}")
