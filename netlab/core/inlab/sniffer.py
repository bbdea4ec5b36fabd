"""The lab's capture: every frame on one interface, read by the helper inside the lab (see lab.py).

The notebook side is `netlab.core.capture.Capture`: it asks the helper to start and stop a
`Sniffer`, and turns the frames it gets back into scapy packets. This file only reads: raw
bytes and the kernel's times, nothing dissected, nothing of the analysis imported.

Stopping is a race: a sniffer stopped right after the last packet may not have read it yet. So
the helper sends itself one "end marker" (on lo a UDP datagram, on any other link one raw
Ethernet frame out of it) and waits (with a timeout) until the sniffer has seen it; everything
before the marker has then been read. The marker is not kept.
"""

from __future__ import annotations

import socket
import struct
import threading
import time

from netlab.core.errors import CaptureError
from netlab.core.inlab.frames import ETH_P_ALL, SO_TIMESTAMPNS, SOL_PACKET, recv_stamped

__all__ = ["Sniffer"]

_MARKER = b"netlab end-of-capture marker"
_MARKER_ETHERTYPE = 0x88B5  # IEEE 802 "local experimental" EtherType

# From <linux/if_packet.h> and <linux/if_arp.h>: what the socket module lacks.
_PACKET_ADD_MEMBERSHIP = 1
_PACKET_MR_PROMISC = 1
# A link's ARPHRD type -> the pcap link type its frames are: lo and veths carry Ethernet frames.
_LINKTYPES = {1: 1, 772: 1}  # ARPHRD_ETHER, ARPHRD_LOOPBACK -> LINKTYPE_ETHERNET


class Sniffer:
    """Read every frame on one lab interface, as raw bytes with the kernel's receive time.

    A plain packet socket (AF_PACKET, every protocol) bound to the interface: once bound, the
    kernel queues every frame for it, so the capture is ready as soon as `start()` returns, and
    nothing is dissected here (the notebook side does that with scapy). Only a capture filter
    needs scapy (its compiler, through libpcap), so a lab that never filters never imports it:
    that keeps a lab's start at a tenth of a second. On lo each packet passes twice, leaving and
    arriving; the leaving copy is dropped, as scapy's own L2Socket does.
    """

    BUFFER = 4 * 1024 * 1024  # the socket's queue: a burst of 64 KB frames on lo fits (capped by net.core.rmem_max)
    LARGEST = 256 * 1024  # one frame: lo's MTU is 64 KiB, and GSO hands the socket larger ones

    def __init__(self, iface: str, filter: str | None, timeout: float) -> None:
        self.iface = iface
        self.filter = filter
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._marker_sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._frames: list[tuple[int, bytes, float]] = []
        self._failure: str | None = None

    def start(self) -> float:
        t0 = time.perf_counter()
        try:
            self._open()
        except BaseException:
            self._close_sockets()
            raise
        self._thread = threading.Thread(target=self._read, name=f"netlab capture on {self.iface}", daemon=True)
        self._thread.start()
        return time.perf_counter() - t0

    def _open(self) -> None:
        self._sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.BUFFER)
        self._sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        # The end marker: on lo a datagram from this socket to itself; on any other interface
        # (a veth, say) an Ethernet frame of the local experimental type sent straight out of it.
        if self.iface == "lo":
            self._marker_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._marker_sock.bind(("127.0.0.1", 0))
            marker_filter = f"udp port {self._marker_sock.getsockname()[1]}"
        else:
            self._marker_sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
            marker_filter = f"ether proto {_MARKER_ETHERTYPE:#x}"
        try:
            if self.iface != "lo":
                self._marker_sock.bind((self.iface, 0))
            self._sock.bind((self.iface, 0))
        except OSError as err:
            raise CaptureError(f"cannot capture on {self.iface!r}: {err.strerror}") from None
        if self.filter:
            self._attach_filter(f"({self.filter}) or ({marker_filter})")
        if self.iface != "lo":
            # Every frame the link carries, as scapy's sniffer does (a veth has no MAC filter, but
            # another kind of link might).
            index = socket.if_nametoindex(self.iface)
            self._sock.setsockopt(SOL_PACKET, _PACKET_ADD_MEMBERSHIP, struct.pack("IHH8s", index, _PACKET_MR_PROMISC, 0, b""))

    def _attach_filter(self, bpf: str) -> None:
        """Compile `bpf` with scapy (libpcap) and attach it: a filter that cannot compile fails here, at once."""
        from scapy.error import Scapy_Exception

        try:
            from scapy.arch.linux import attach_filter

            attach_filter(self._sock, bpf, self.iface)
        except (ImportError, OSError, Scapy_Exception) as err:
            raise CaptureError(f"the capture filter {self.filter!r} cannot be used: {err}") from None

    def _read(self) -> None:
        """Read frames until the end marker arrives (the reading thread); a failure is kept for stop()."""
        sock = self._sock
        sock.settimeout(0.1)  # so that a closed socket ends this loop
        try:
            while True:
                try:
                    frame, stamp, address = recv_stamped(sock, self.LARGEST)
                except TimeoutError:
                    continue
                if self.iface == "lo" and address[2] == socket.PACKET_OUTGOING:
                    continue
                if frame.endswith(_MARKER):
                    return
                linktype = _LINKTYPES.get(address[3])
                if linktype is None:
                    self._failure = f"cannot capture on {self.iface!r}: its link type (ARPHRD {address[3]}) is not Ethernet"
                    return
                self._frames.append((linktype, frame, stamp))
        except OSError as err:
            if self._sock is not None:  # not closed by stop()
                self._failure = f"the capture on {self.iface} failed: {err.strerror or err}"

    def stop(self) -> list[tuple[int, bytes, float]]:
        thread, self._thread = self._thread, None
        if thread is None:
            return []
        if thread.is_alive() and self._marker_sock is not None:
            if self._marker_sock.family == socket.AF_INET:
                self._marker_sock.sendto(_MARKER, self._marker_sock.getsockname())
            else:
                # Broadcast destination, zero source; padded in front to Ethernet's 60-byte minimum
                # so that the frame still ends with the marker.
                header = b"\xff" * 6 + b"\x00" * 6 + _MARKER_ETHERTYPE.to_bytes(2, "big")
                self._marker_sock.send(header + b"\x00" * max(0, 46 - len(_MARKER)) + _MARKER)
            thread.join(self.timeout)  # returns when the marker is read
        seen = not thread.is_alive()
        self._close_sockets()
        thread.join(1.0)  # a closed socket ends the reading loop within its 0.1 s timeout
        if self._failure:
            raise CaptureError(self._failure)
        if not seen:
            raise CaptureError(f"the capture on {self.iface} did not see its end marker within {self.timeout:g} s")
        frames, self._frames = self._frames, []
        return frames

    def _close_sockets(self) -> None:
        for name in ("_sock", "_marker_sock"):
            sock = getattr(self, name)
            setattr(self, name, None)
            if sock is not None:
                sock.close()
