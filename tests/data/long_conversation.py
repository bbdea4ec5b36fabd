"""A TCP conversation of any length, made with scapy: for the explorer's tests and its browser test.

The client sends `pairs` data segments of 100 bytes, each acknowledged, between a handshake and a
four-segment close: 2 * pairs + 7 segments in all.
"""

from __future__ import annotations

from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether

CLIENT, SERVER = ("10.0.0.1", 40000), ("10.0.0.2", 80)


def packets(pairs: int) -> list:
    """Handshake, `pairs` data segments each with its ACK, then FIN, ACK, FIN, ACK."""
    c_isn, s_isn = 1000, 5000
    out = []

    def seg(from_client: bool, flags: str, seq: int, ack: int, data: bytes = b"") -> None:
        src, dst = (CLIENT, SERVER) if from_client else (SERVER, CLIENT)
        pkt = Ether() / IP(src=src[0], dst=dst[0]) / TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq, ack=ack,
                                                         window=64240) / data
        pkt = Ether(bytes(pkt))
        pkt.time = len(out) * 0.001
        out.append(pkt)

    seg(True, "S", c_isn, 0)
    seg(False, "SA", s_isn, c_isn + 1)
    seg(True, "A", c_isn + 1, s_isn + 1)
    c, s = c_isn + 1, s_isn + 1
    for _ in range(pairs):
        seg(True, "PA", c, s, b"x" * 100)
        c += 100
        seg(False, "A", s, c)
    seg(True, "FA", c, s)
    seg(False, "A", s, c + 1)
    seg(False, "FA", s, c + 1)
    seg(True, "A", c + 1, s + 1)
    return out
