"""Packet capture in the lab: every packet on a lab interface, from a `with` block's start to its end.

Theory of operation
-------------------
A `Capture` asks the lab's helper to open a packet socket on the interface and returns once it
is bound: from then on the kernel queues every frame for it, and a thread in the helper drains
the queue. On `lo` the kernel shows every packet twice (once leaving, once arriving); the
outgoing copy is dropped, as scapy's `L2Socket` does, so each packet is recorded once. The
helper does not dissect (scapy does that on the notebook side) and imports scapy only to compile
a capture filter, which keeps the lab quick to start.

Stopping is the other race: a sniffer stopped right after the last packet may not have read it
yet. So the helper sends itself one UDP "end marker" datagram on the same interface (on a link
other than lo, one raw Ethernet frame out of it) and waits (with a timeout) until the sniffer has
seen it; everything before the marker has then been read. The marker is removed from the result.

The helper's side, the packet socket that reads the frames, is `netlab.core.inlab.sniffer`:
a packet's way is one way, captured in the lab (frames with the kernel's times) → this file
(scapy packets) → the conversation → tables, ladders, the explorer.

Rules for this file:
1. Every start and stop has a timeout and raises `CaptureError` naming what did not happen.
2. Packets cross from the helper as raw bytes plus kernel timestamps, never re-dissected there.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from netlab.core.conversation import Conversation
from netlab.core.errors import CaptureError, LabError
from netlab.core.pcapfiles import save_pcap

__all__ = ["Capture", "CaptureError", "packets_from"]

# ---------------------------------------------------------------------------
# The notebook side.


class Capture:
    """Record packets on a lab interface while the `with` block runs.

    After the block, `packets` holds what was captured (scapy packets with kernel timestamps),
    and `ready_seconds` how long the sniffer took to be ready.
    """

    def __init__(self, lab: Any, iface: str = "lo", timeout: float = 5.0, filter: str | None = None) -> None:
        self._lab = lab
        self.iface = iface
        self.timeout = timeout
        self.filter = filter
        self.packets: list = []
        self.ready_seconds: float | None = None

    def __enter__(self) -> Capture:
        self.ready_seconds, _ = self._lab.request(
            "sniff_start", self.iface, self.filter, self.timeout, timeout=self.timeout + 5
        )
        return self

    def __exit__(self, exc_type: type | None, *exc: object) -> None:
        try:
            frames, _ = self._lab.request("sniff_stop", timeout=self.timeout + 5)
        except LabError:
            if exc_type is None:
                raise
            return  # the block's own error (an interrupt, a dead lab) says more than this one
        self.packets = packets_from(frames)

    def conversation(self, stream: int | None = None, source: str = "live") -> Conversation:
        """Return the TCP conversation captured (stream N when there are several)."""
        return Conversation.from_packets(self.packets, stream=stream, source=source)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the capture as a standard pcap file (Wireshark, tcpdump and tshark read it)."""
        return save_pcap(self.packets, path)


def packets_from(frames: Iterable[tuple[int, bytes, float]]) -> list:
    """Frames from the lab (pcap link type, bytes, kernel time in s) as scapy packets with their `time`."""
    # A lab's links carry Ethernet frames with ARP, IPv4, IPv6, ICMP, TCP and UDP: these three
    # modules dissect them all, in 0.4 s where `scapy.layers.all` takes 1.2 s, which the first
    # capture of every notebook paid. A lesson that needs more (TLS, DNS) loads it itself.
    import scapy.layers.inet  # noqa: F401
    import scapy.layers.inet6  # noqa: F401
    import scapy.layers.l2  # noqa: F401
    from scapy.config import conf
    from scapy.packet import Raw

    packets = []
    for linktype, data, stamp in frames:
        cls = conf.l2types.num2layer.get(linktype, Raw)
        pkt = cls(data)
        pkt.time = stamp
        packets.append(pkt)
    return packets
