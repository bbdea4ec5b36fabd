"""netlab: see your own TCP handshake, captured live in a private lab network.

The names a notebook uses, one line per idea:

    exp = netlab.handshake()          # live in the lab, or recorded where the lab is refused
    print(exp.conversation)           # the segments as a table
    netlab.draw.ladder(exp.conversation)

This module is the face of the package: it gathers the core's names and the lessons' modules
under one `netlab`, and nothing in netlab imports it back. Importing netlab does nothing else:
no processes, no sockets, no matplotlib settings. See README, "How it works", for the layers.
"""

import importlib
from typing import Any

from netlab.core.capture import Capture
from netlab.core.conversation import Conversation, Segment, conversations
from netlab.core.errors import (
    CaptureError,
    ConversationError,
    HelperError,
    LabError,
    LabUnavailable,
    NetlabError,
    NoHandshakeError,
    PcapError,
    ProtocolError,
)
from netlab.core.experiment import Experiment, load_recorded, mode, run
from netlab.core.explore import explore  # ipywidgets and matplotlib load on first use
from netlab.core.lab import Lab, SocketState
from netlab.core.pcapfiles import load_pcap, save_pcap
from netlab.core.sockets import (
    EchoServer,
    MessageTooLarge,
    RetryError,
    connect_with_retry,
    echo_server,
    hello,
    recv_exactly,
    recv_message,
    recv_until_closed,
    send_message,
)
from netlab.lessons.handshake import handshake, nagle, refused, restart_server
from netlab.lessons.sockets import (
    Datagrams,
    one_send_many_recvs,
    run_server,
    short_read,
    socket_walk,
    two_clients,
    two_sends_one_recv,
    udp_exchange,
    udp_loss,
    walk_steps,
)

# Modules a notebook reaches as `netlab.NAME`, loaded when first used (`netlab.http.serve()`): the
# lab's helper process imports netlab too, and should start without matplotlib, asyncio, ssl or
# the HTTP server (together about 0.1 s on every Lab()).
_MODULES = {
    "draw": "netlab.core.draw",  # ladder, state diagram, time-sequence graph, window plot, encapsulation
    "http": "netlab.lessons.http",  # notebook 04: HTTP checked against the standard library, the lab web server
    "peer": "netlab.lessons.transfer",  # notebook 05: the scripted remote host on a 1500-byte link
    "failures": "netlab.lessons.failures",  # notebook 06: each failure in code and on the wire
    "concurrency": "netlab.lessons.concurrency",  # notebook 07: one echo protocol served three ways
    "bulk": "netlab.lessons.bulk",  # notebook 07: one connection as fast as it goes, beside iperf3
    "tls": "netlab.lessons.tls",  # notebook 08: certificates made at run time, HTTP against HTTPS
    "congestion": "netlab.lessons.congestion",  # notebook 09: cwnd from the kernel, through a bottleneck
    "below": "netlab.lessons.below",  # notebook 10: a router in the lab, ARP, TTL, ICMP, path MTU, names, IPv6
    "checks": "netlab.checks",  # the exercises' checks
}

__all__ = [
    "Capture", "Conversation", "EchoServer", "Experiment", "Lab", "Segment", "SocketState",
    "conversations", "echo_server", "explore", "handshake", "hello", "load_pcap", "load_recorded", "mode",
    "recv_exactly", "recv_until_closed", "refused", "run", "save_pcap",
    # notebook 03: the delayed ACK with Nagle's algorithm, a restart during TIME-WAIT
    "nagle", "restart_server",
    # errors: one family (netlab.core.errors)
    "NetlabError", "LabError", "LabUnavailable", "CaptureError", "PcapError", "ConversationError",
    "NoHandshakeError", "ProtocolError", "HelperError",
    # notebook 02: framing, and what socket calls put on the wire
    "Datagrams", "MessageTooLarge", "one_send_many_recvs", "recv_message", "send_message", "socket_walk",
    "two_sends_one_recv", "udp_exchange", "walk_steps", "short_read", "udp_loss", "two_clients", "run_server",
    # notebook 06: a retry that gives up cleanly
    "RetryError", "connect_with_retry",
    *sorted(_MODULES),
]


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(_MODULES[name])
    raise AttributeError(f"module 'netlab' has no attribute {name!r}")
