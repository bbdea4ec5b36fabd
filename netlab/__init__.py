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
from netlab.sockets import EchoServer, echo_server, hello, recv_exactly, recv_until_closed

__all__ = [
    "Capture", "CaptureError", "Conversation", "ConversationError", "EchoServer", "Experiment", "Lab",
    "LabError", "LabUnavailable", "NoHandshakeError", "PcapError", "Segment", "SocketState",
    "checks", "conversations", "draw", "echo_server", "handshake", "hello", "load_pcap",
    "load_recorded", "mode", "recv_exactly", "recv_until_closed", "refused", "run", "save_pcap",
]


def __getattr__(name: str):
    # netlab.draw loads matplotlib (about 0.3 s): only when a notebook first draws, so the
    # lab's helper process, which imports netlab too, starts without it.
    if name == "draw":
        return importlib.import_module("netlab.draw")
    raise AttributeError(f"module 'netlab' has no attribute {name!r}")
