"""pcap files in and out, and the recorded captures shipped with netlab (netlab/data).

Rules for this file:
1. It knows nothing of the lab: analysis of any capture, live or from a file, needs only this.
2. A file that is not a complete capture raises `PcapError` naming the file and the problem
   (before scapy reads it, so scapy's own errors never reach the user).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterable
from pathlib import Path

from netlab.core.errors import PcapError

__all__ = ["DATA", "PcapError", "load_pcap", "save_pcap", "recorded_packets"]

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


def load_pcap(path: str | os.PathLike) -> list:
    """Read a pcap or pcapng file; raise PcapError if it is not one or is cut short."""
    import scapy.layers.all  # noqa: F401  (registers the link types, or every frame reads as Raw)
    from scapy.error import Scapy_Exception
    from scapy.utils import rdpcap

    path = Path(path)
    if not path.is_file():
        raise PcapError(f"{path}: no such file")
    _check_complete(path)
    try:
        return list(rdpcap(str(path)))
    except (Scapy_Exception, EOFError, struct.error) as err:
        raise PcapError(f"{path}: cannot be read as a capture ({err})") from None


def _check_complete(path: Path) -> None:
    """Walk the file's record lengths (not its contents) to catch a cut-short capture."""
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
        _check_pcapng(path, data)
        return
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


def _check_pcapng(path: Path, data: bytes) -> None:
    size = len(data)
    if size < 12:
        raise PcapError(f"{path}: truncated pcapng: the section header is cut short")
    endian = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
    offset, number = 0, 0
    while offset < size:
        number += 1
        if offset + 12 > size:
            raise PcapError(f"{path}: truncated pcapng: block {number} is cut short")
        (length,) = struct.unpack_from(endian + "I", data, offset + 4)
        if length < 12:
            raise PcapError(f"{path}: not a valid pcapng file: block {number} has length {length}")
        offset += length
        if offset > size:
            raise PcapError(f"{path}: truncated pcapng: block {number} is missing {offset - size} bytes")


def recorded_packets(name: str) -> list:
    """Return the packets of a recorded capture shipped with netlab (`netlab/data/NAME.pcap`)."""
    path = DATA / f"{name}.pcap"
    if not path.is_file():
        names = sorted(p.stem for p in DATA.glob("*.pcap"))
        raise FileNotFoundError(f"no recorded capture named {name!r}; netlab ships {names}")
    return load_pcap(path)
