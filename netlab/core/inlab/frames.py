"""Frames off a lab's links: the kernel's time stamp on each, and the one file format they are kept in.

Every program in the lab that reads a link (the capture, the scripted peer, the delay line)
reads frames from a packet socket with the kernel's receive (or transmit) time, never a time
Python takes after the fact, and writes them as a classic pcap (what `tcpdump -w` writes) that
the notebook side reads with scapy. Standard library only: writing a pcap needs no dissection.
"""

from __future__ import annotations

import os
import socket
import struct
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["SO_TIMESTAMPNS", "recv_stamped", "kernel_time", "write_pcap", "packet_socket", "no_checksum_offload",
           "captured_missed", "PACKET_OUTGOING"]

# setsockopt(SOL_SOCKET, SO_TIMESTAMPNS, 1): each frame read with recvmsg carries the kernel's time.
SO_TIMESTAMPNS = 35
# From <linux/if_ether.h> and <linux/if_packet.h>: what the socket module lacks.
ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_OUTGOING = 4  # a frame this host sent (sll_pkttype)
_PACKET_STATISTICS = 6
_PACKET_IGNORE_OUTGOING = 23  # Linux 4.20: the socket is not given the frames the host sends
_PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1)  # microseconds, snaplen 256 KiB, Ethernet
_RECORD = struct.Struct("<IIII")


def recv_stamped(sock: socket.socket, size: int = 65535) -> tuple[bytes, float, Any]:
    """Read one frame (up to `size` bytes) from a packet socket with the kernel's receive time
    (SO_TIMESTAMPNS, seconds), not the moment Python got to it; return (frame, time, address)."""
    data, anc, _flags, addr = sock.recvmsg(size, socket.CMSG_SPACE(16))
    return data, kernel_time(anc), addr


def kernel_time(ancillary: list[tuple[int, int, bytes]]) -> float:
    """The kernel's time (Unix seconds) in a recvmsg's ancillary data (SO_TIMESTAMPNS); now if it has none."""
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(value) >= 16:
            sec, nsec = struct.unpack("qq", value[:16])
            return sec + nsec / 1e9
    import time

    return time.time()


def packet_socket(device: str, *, stamped: bool = False, outgoing: bool = True, buffer: int = 4 * 2**20) -> socket.socket:
    """A raw packet socket bound to `device`, non-blocking: every protocol, `buffer` bytes each way.

    `stamped`: each frame comes with the kernel's time (recv_stamped). `outgoing=False`: the socket
    is not given the frames this namespace sends on the device (a forwarding socket needs only
    what arrives), where the kernel can (Linux 4.20); otherwise they come marked PACKET_OUTGOING.
    The buffer is forced past net.core.rmem_max where the lab's root may (it is root of the lab's
    user namespace, which owns the network namespace), else capped at it.
    """
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        for forced, plain in ((33, socket.SO_RCVBUF), (32, socket.SO_SNDBUF)):  # SO_RCVBUFFORCE, SO_SNDBUFFORCE
            try:
                sock.setsockopt(socket.SOL_SOCKET, forced, buffer)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, plain, buffer)
        if stamped:
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        if not outgoing:
            try:
                sock.setsockopt(SOL_PACKET, _PACKET_IGNORE_OUTGOING, 1)
            except OSError:
                pass  # an older kernel: the reader skips PACKET_OUTGOING frames itself
        sock.bind((device, 0))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def captured_missed(sock: socket.socket) -> int:
    """Frames the kernel dropped because the socket's queue was full (PACKET_STATISTICS, since last asked)."""
    return struct.unpack("II", sock.getsockopt(SOL_PACKET, _PACKET_STATISTICS, 8))[1]


def write_pcap(path: str | os.PathLike, frames: Iterable[tuple[bytes, float]]) -> Path:
    """Write Ethernet frames and their times (Unix seconds) as a classic pcap, bytes as they are.

    No dissection: a program that saw a busy link writes tens of thousands of frames in a
    fraction of a second. Times are rounded to the microsecond, as tcpdump and scapy write them.
    """
    path = Path(path)
    with open(path, "wb") as out:
        out.write(_PCAP_HEADER)
        for data, stamp in frames:
            sec = int(stamp)
            carry, usec = divmod(round((stamp - sec) * 1_000_000), 1_000_000)
            out.write(_RECORD.pack(sec + carry, usec, len(data), len(data)))
            out.write(data)
    return path


def no_checksum_offload(sock: socket.socket, device: str) -> None:
    """Make `device`'s kernel fill in checksums itself (ethtool -K DEV tx off, via SIOCETHTOOL).

    A veth leaves a TCP or UDP checksum for "the hardware" to finish, and there is none: a program
    that reads its frames and passes them on would pass segments whose checksum the receiver's
    kernel rejects. `sock` is any socket in the device's namespace.
    """
    import ctypes
    import fcntl

    value = ctypes.create_string_buffer(struct.pack("II", 0x17, 0))  # ETHTOOL_STXCSUM, off
    request = struct.pack("16sP", device.encode(), ctypes.addressof(value)).ljust(40, b"\0")
    fcntl.ioctl(sock.fileno(), 0x8946, request)  # SIOCETHTOOL
