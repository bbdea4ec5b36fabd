"""Packet capture in the lab: every packet on a lab interface, from a `with` block's start to its end.

Theory of operation
-------------------
A `Capture` asks the lab's helper to start scapy's `AsyncSniffer` and returns only once the
sniffer is *ready* (its `started_callback` fired): `start()` itself returns long before the
socket listens, and traffic sent in that gap is lost. On `lo` the kernel shows every packet
twice (once leaving, once arriving); the sniffer reads with scapy's `L2Socket`, which drops the
outgoing copy, so each packet is recorded once.

Stopping is the other race: a sniffer stopped right after the last packet may not have read it
yet. So the helper sends itself one UDP "end marker" datagram on the same interface (on a link
other than lo, one raw Ethernet frame out of it) and waits (with a timeout) until the sniffer has
seen it; everything before the marker has then been read. The marker is removed from the result.

Rules for this file:
1. Every start and stop has a timeout and raises `CaptureError` naming what did not happen.
2. Packets cross from the helper as raw bytes plus kernel timestamps, never re-dissected there.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from netlab.core.conversation import Conversation
from netlab.core.errors import CaptureError, LabError
from netlab.core.pcapfiles import save_pcap

if TYPE_CHECKING:
    from netlab.core.lab import Lab

__all__ = ["Capture", "CaptureError", "Sniffer"]

_MARKER = b"netlab end-of-capture marker"
_MARKER_ETHERTYPE = 0x88B5  # IEEE 802 "local experimental" EtherType


# ---------------------------------------------------------------------------
# The notebook side.


class Capture:
    """Record packets on a lab interface while the `with` block runs.

    After the block, `packets` holds what was captured (scapy packets with kernel timestamps),
    and `ready_seconds` how long the sniffer took to be ready.
    """

    def __init__(self, lab: Lab, iface: str = "lo", timeout: float = 5.0, filter: str | None = None) -> None:
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
        self.packets = _rebuild(frames)

    def conversation(self, stream: int | None = None, source: str = "live") -> Conversation:
        """Return the TCP conversation captured (stream N when there are several)."""
        return Conversation.from_packets(self.packets, stream=stream, source=source)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the capture as a standard pcap file (Wireshark, tcpdump and tshark read it)."""
        return save_pcap(self.packets, path)


def _rebuild(frames: Iterable[tuple[int, bytes, float]]) -> list:
    import scapy.layers.all  # noqa: F401  (registers the link types: Ethernet, Linux SLL, ...)
    from scapy.config import conf
    from scapy.packet import Raw

    packets = []
    for linktype, data, stamp in frames:
        cls = conf.l2types.num2layer.get(linktype, Raw)
        pkt = cls(data)
        pkt.time = stamp
        packets.append(pkt)
    return packets


# ---------------------------------------------------------------------------
# The helper side (runs inside the lab namespace; see lab.py).


class Sniffer:
    def __init__(self, iface: str, filter: str | None, timeout: float) -> None:
        self.iface = iface
        self.filter = filter
        self.timeout = timeout
        self._sniffer = None
        self._marker_sock: socket.socket | None = None

    def start(self) -> float:
        from scapy.arch.common import compile_filter
        from scapy.arch.linux import L2ListenSocket, L2Socket
        from scapy.error import Scapy_Exception
        from scapy.sendrecv import AsyncSniffer

        # The end marker: on lo a datagram from this socket to itself; on any other interface
        # (a veth, say) an Ethernet frame of the local experimental type sent straight out of it.
        if self.iface == "lo":
            self._marker_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._marker_sock.bind(("127.0.0.1", 0))
            marker_filter = f"udp port {self._marker_sock.getsockname()[1]}"
        else:
            self._marker_sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            try:
                self._marker_sock.bind((self.iface, 0))
            except OSError as err:
                self._close_marker()
                raise CaptureError(f"cannot capture on {self.iface!r}: {err.strerror}") from None
            marker_filter = f"ether proto {_MARKER_ETHERTYPE:#x}"
        bpf = self.filter
        if bpf:
            # Compile first: a filter that cannot compile would otherwise fail only at stop(),
            # after the started callback silently never fired.
            bpf = f"({bpf}) or ({marker_filter})"
            try:
                compile_filter(bpf, iface=self.iface)
            except (ImportError, Scapy_Exception, OSError) as err:
                self._close_marker()
                raise CaptureError(f"the capture filter {self.filter!r} cannot be used: {err}") from None
        ready = threading.Event()
        sniff_socket = L2Socket if self.iface == "lo" else L2ListenSocket
        self._sniffer = AsyncSniffer(
            iface=self.iface, filter=bpf, L2socket=sniff_socket, store=True,
            started_callback=ready.set, stop_filter=self._is_marker,
        )
        t0 = time.perf_counter()
        self._sniffer.start()
        if not ready.wait(self.timeout):
            self._force_stop()
            raise CaptureError(f"the capture on {self.iface} was not ready within {self.timeout:g} s")
        return time.perf_counter() - t0

    @staticmethod
    def _is_marker(pkt) -> bool:
        return bytes(pkt).endswith(_MARKER)

    def stop(self) -> list[tuple[int, bytes, float]]:
        if self._sniffer is None:
            return []
        sniffer, self._sniffer = self._sniffer, None
        if self._marker_sock is not None and sniffer.thread is not None and sniffer.thread.is_alive():
            if self._marker_sock.family == socket.AF_INET:
                self._marker_sock.sendto(_MARKER, self._marker_sock.getsockname())
            else:
                # Broadcast destination, zero source; padded in front to Ethernet's 60-byte minimum
                # so that the frame still ends with the marker.
                header = b"\xff" * 6 + b"\x00" * 6 + _MARKER_ETHERTYPE.to_bytes(2, "big")
                self._marker_sock.send(header + b"\x00" * max(0, 46 - len(_MARKER)) + _MARKER)
            sniffer.thread.join(self.timeout)  # returns when the marker is seen
        self._close_marker()
        if sniffer.thread is not None and sniffer.thread.is_alive():
            self._sniffer = sniffer
            self._force_stop()
            raise CaptureError(f"the capture on {self.iface} did not see its end marker within {self.timeout:g} s")
        results = sniffer.results or []
        from scapy.config import conf

        frames = []
        for pkt in results:
            if self._is_marker(pkt):
                continue
            linktype = conf.l2types.layer2num.get(type(pkt), 1)
            frames.append((linktype, bytes(pkt), float(pkt.time)))
        return frames

    def _force_stop(self) -> None:
        sniffer, self._sniffer = self._sniffer, None
        self._close_marker()
        if sniffer is None:
            return
        try:
            sniffer.stop(join=False)
        except Exception:
            pass  # not running any more: nothing to stop
        if sniffer.thread is not None:
            sniffer.thread.join(2.0)

    def _close_marker(self) -> None:
        if self._marker_sock is not None:
            self._marker_sock.close()
            self._marker_sock = None


