"""pcap files in and out, and the recorded captures shipped with netlab (netlab/data).

Rules for this file:
1. It knows nothing of the lab: analysis of any capture, live or from a file, needs only this.
2. A file that is not a complete capture raises `PcapError` naming the file and the problem
   (before scapy reads it, so scapy's own errors never reach the user). So does a file whose
   link type scapy cannot read, naming the link type; scapy's own warning is not printed.
3. Reading registers the dissectors a capture from the wild needs beyond scapy's defaults
   (Geneve, GTP-U, MPLS, BSD loopback with IPv6), so tunnels are opened as Wireshark opens them.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import struct
from collections.abc import Iterable
from pathlib import Path

from netlab.core.errors import PcapError

__all__ = ["DATA", "PcapError", "load_pcap", "save_pcap", "recorded_packets", "write_frames"]

DATA = Path(__file__).resolve().parent.parent / "data"
# No capture tool writes a record larger than this (tcpdump's largest snap length is 256 KiB).
_MAX_RECORD = 256 * 1024


def save_pcap(packets: Iterable, path: str | os.PathLike) -> Path:
    """Write packets as a classic pcap file (what tcpdump -w writes); return the path."""
    from scapy.utils import wrpcap

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    wrpcap(str(path), list(packets))
    return path


# Link types scapy cannot read that captures from the wild use, by number (tcpdump's names).
_LINK_TYPE_NAMES = {
    104: "Cisco HDLC", 106: "IP over Fibre Channel", 107: "Frame Relay", 122: "IP over Fibre Channel",
    129: "ARCNET (Linux)", 138: "Apple IP over IEEE 1394", 140: "SS7 MTP2", 143: "DOCSIS",
    178: "Juniper Ethernet", 199: "IPMB", 203: "LAPD", 220: "USB (Linux, memory-mapped)", 240: "NetAnalyzer",
    242: "IP over InfiniBand", 189: "USB (Linux)", 7: "ARCNET", 8: "SLIP", 10: "FDDI",
}


def write_frames(path: str | os.PathLike, frames: Iterable[tuple[bytes, float]]) -> Path:
    """Write Ethernet frames and their times (seconds) as a classic pcap, from the bytes as they are.

    The lab's one frame file format (`netlab.core.inlab.frames.write_pcap`), with the folder made:
    no frame is parsed, so a program that saw a busy link writes its capture in a fraction of a second.
    """
    from netlab.core.inlab.frames import write_pcap

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_pcap(path, frames)


def load_pcap(path: str | os.PathLike) -> list:
    """Read a pcap or pcapng file; raise PcapError if it is not one, is cut short, or has a link
    type scapy cannot read (named in the message)."""
    from scapy.error import Scapy_Exception
    from scapy.utils import rdpcap

    _register_dissectors()
    path = Path(path)
    if not path.is_file():
        raise PcapError(f"{path}: no such file")
    data = path.read_bytes()
    link_types = _check_complete(path, data)
    source: str | io.BytesIO = str(path)
    if any(lt > 0xFFFF for lt in link_types) and data[:4] in _PCAP_MAGICS:
        # The upper bits of a pcap link type say the frames end with their FCS: the link type is
        # the lower 16 bits (scapy knows only those); the FCS is left out by the IP lengths anyway.
        data = data[:20] + bytes(b & m for b, m in zip(data[20:24], _LOW16[data[:4] in _PCAP_MAGICS_LE])) + data[24:]
        source = io.BytesIO(data)
    try:
        with _scapy_quiet():
            packets = list(rdpcap(source))
    except (Scapy_Exception, EOFError, struct.error) as err:
        raise PcapError(f"{path}: cannot be read as a capture ({err})") from None
    _check_link_types(path, packets, link_types)
    return packets


_PCAP_MAGICS_LE = (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1")
_PCAP_MAGICS = _PCAP_MAGICS_LE + (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d")
_LOW16 = {True: b"\xff\xff\x00\x00", False: b"\x00\x00\xff\xff"}  # little-endian, big-endian


@functools.cache
def _register_dissectors() -> None:
    """Teach scapy the tunnels and link layers Wireshark opens that scapy does not by default."""
    import scapy.contrib.geneve  # noqa: F401  (UDP 6081)
    import scapy.contrib.gtp  # noqa: F401  (GTP-U, UDP 2152)
    import scapy.contrib.mpls  # noqa: F401  (Ethernet type 0x8847)
    import scapy.layers.all  # noqa: F401  (registers the link types, or every frame reads as Raw)
    from scapy.layers.inet6 import IPv6
    from scapy.layers.l2 import Loopback
    from scapy.packet import bind_layers

    # BSD loopback (link type 0) gives the address family of the host that captured: AF_INET6
    # is 24 on NetBSD and OpenBSD, 28 on FreeBSD, 30 on macOS (scapy knows only Linux's 10).
    for family in (24, 28, 30):
        bind_layers(Loopback, IPv6, type=family)


@contextlib.contextmanager
def _scapy_quiet():
    """Keep scapy's own warnings (an unknown link type, say) off the screen while reading:
    netlab says what matters in its own words."""
    logger = logging.getLogger("scapy.runtime")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _check_link_types(path: Path, packets: list, link_types: list[int]) -> None:
    """Raise PcapError naming the link type when scapy could read none of the frames."""
    from scapy.config import conf

    unknown = sorted({lt & 0xFFFF for lt in link_types} - set(conf.l2types.num2layer))
    if not unknown or not packets or any(not isinstance(p, conf.raw_layer) for p in packets):
        return
    names = ", ".join(f"{lt} ({_LINK_TYPE_NAMES[lt]})" if lt in _LINK_TYPE_NAMES else str(lt) for lt in unknown)
    raise PcapError(f"{path}: its frames have link type {names}, which scapy (and so netlab) cannot read; "
                    "Wireshark or tshark may")


def _check_complete(path: Path, data: bytes | None = None) -> list[int]:
    """Walk the file's record lengths (not its contents) to catch a cut-short capture; return its
    link types (one for a pcap, one per interface for a pcapng)."""
    if data is None:
        data = path.read_bytes()
    size = len(data)
    if not size:
        raise PcapError(f"{path}: the file is empty, not a capture")
    magic = data[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1"):
        endian = "<"
    elif magic in (b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        endian = ">"
    elif magic == b"\x0a\x0d\x0d\x0a":
        return _check_pcapng(path, data)
    else:
        raise PcapError(f"{path}: not a pcap or pcapng file (it starts with {data[:8]!r})")
    if size < 24:
        raise PcapError(f"{path}: truncated pcap: the 24-byte file header is cut short ({size} bytes)")
    offset, number = 24, 0
    while offset < size:
        number += 1
        if offset + 16 > size:
            raise PcapError(f"{path}: truncated pcap: the header of packet {number} is cut short")
        (caplen,) = struct.unpack_from(endian + "I", data, offset + 8)
        if caplen > _MAX_RECORD:
            raise PcapError(f"{path}: not a valid pcap: packet {number} claims {caplen} bytes")
        offset += 16 + caplen
        if offset > size:
            raise PcapError(f"{path}: truncated pcap: packet {number} is missing {offset - size} of its {caplen} bytes")
    return [struct.unpack_from(endian + "I", data, 20)[0]]


def _check_pcapng(path: Path, data: bytes) -> list[int]:
    size = len(data)
    link_types = []
    if size < 12:
        raise PcapError(f"{path}: truncated pcapng: the section header is cut short")
    endian = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    offset, number = 0, 0
    while offset < size:
        number += 1
        if offset + 12 > size:
            raise PcapError(f"{path}: truncated pcapng: block {number} is cut short")
        block_type, length = struct.unpack_from(endian + "II", data, offset)
        if length < 12:
            raise PcapError(f"{path}: not a valid pcapng file: block {number} has length {length}")
        if block_type == 1 and offset + 10 <= size:  # an Interface Description Block: its link type
            link_types.append(struct.unpack_from(endian + "H", data, offset + 8)[0])
        offset += length
        if offset > size:
            raise PcapError(f"{path}: truncated pcapng: block {number} is missing {offset - size} bytes")
    return link_types


def recorded_packets(name: str) -> list:
    """Return the packets of a recorded capture shipped with netlab (`netlab/data/NAME.pcap`); a name netlab
    does not ship is a bad argument (ValueError, naming those it ships)."""
    path = DATA / f"{name}.pcap"
    if not path.is_file():
        names = sorted(p.stem for p in DATA.glob("*.pcap"))
        raise ValueError(f"no recorded capture named {name!r}; netlab ships {names}")
    return load_pcap(path)
