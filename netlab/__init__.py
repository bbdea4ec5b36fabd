"""netlab: see your own TCP handshake, captured live in a private lab network.

The names a notebook uses, one line per idea:

    exp = netlab.handshake()          # live in the lab, or recorded where the lab is refused
    print(exp.conversation)           # the segments as a table
    netlab.draw.ladder(exp.conversation)

This module is the face of the package: it gathers the core's names and the lessons' modules
under one `netlab`, and nothing in netlab imports it back. Importing netlab does nothing else:
no processes, no sockets, no matplotlib settings. See README, "How it works", for the layers.

Every name is loaded when first used: the lab's helper processes import netlab too (their code
lives in it), and each `Lab()` would otherwise pay about 0.1 s for modules it never uses.
"""

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from typing import Any

# The names `netlab.NAME` offers, by the module that defines each.
_NAMES = {
    "netlab.core.capture": ("Capture",),
    "netlab.core.conversation": ("Conversation", "Segment", "conversations"),
    # errors: one family
    "netlab.core.errors": (
        "NetlabError", "LabError", "LabUnavailable", "CaptureError", "PcapError", "ConversationError",
        "NoHandshakeError", "ProtocolError", "HelperError", "WaitTimeout",
    ),
    "netlab.core.experiment": ("Experiment", "load_recorded", "mode", "run"),
    "netlab.core.explore": ("explore",),  # ipywidgets and matplotlib load on first use
    "netlab.core.lab": ("Lab", "SocketState"),
    "netlab.core.pcapfiles": ("load_pcap", "save_pcap"),
    # notebooks 02 and 06: echo servers, framing, a retry that gives up cleanly
    "netlab.core.sockets": (
        "EchoServer", "MessageTooLarge", "RetryError", "connect_with_retry", "echo_server", "hello",
        "recv_exactly", "recv_message", "recv_until_closed", "send_message",
    ),
    # notebooks 00 and 03: the handshake, the delayed ACK with Nagle's algorithm, a restart during TIME-WAIT
    "netlab.lessons.handshake": ("handshake", "nagle", "refused", "restart_server"),
    # notebook 02: what socket calls put on the wire
    "netlab.lessons.sockets": (
        "Datagrams", "one_send_many_recvs", "run_server", "short_read", "socket_walk", "two_clients",
        "two_sends_one_recv", "udp_exchange", "udp_loss", "walk_steps",
    ),
}
_HOME = {name: module for module, names in _NAMES.items() for name in names}

# Modules a notebook reaches as `netlab.NAME` (`netlab.http.serve()`).
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

__all__ = [*_HOME, *sorted(_MODULES)]


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    elif name in _HOME:
        value = getattr(importlib.import_module(_HOME[name]), name)
    else:
        raise AttributeError(f"module 'netlab' has no attribute {name!r}")
    globals()[name] = value  # the next use is an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})


class _ModulePaths(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """`import netlab.http` (and `from netlab.http import site`) gives the module `netlab.http` names.

    The modules notebooks reach as `netlab.NAME` live in the core or a lesson since the package was
    layered; this finder keeps their old import paths working by answering for exactly those names.
    """

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.partition(".")
        if package == __name__ and name in _MODULES:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        return importlib.import_module(_MODULES[spec.name.partition(".")[2]])

    def exec_module(self, module: Any) -> None:
        pass  # the real module ran when it was imported under its own name


if not any(isinstance(finder, _ModulePaths) for finder in sys.meta_path):
    sys.meta_path.append(_ModulePaths())
