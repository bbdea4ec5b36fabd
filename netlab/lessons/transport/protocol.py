"""The header of the student's protocol: a scapy layer bound to the lesson's UDP port.

    | flags (1 byte: DATA, ACK, FIN) | seq (4 bytes) | ack (4 bytes) | checksum (2 bytes) | payload ... |

`Segment(flags="DATA", seq=3) / payload` builds one (bytes() fills in the checksum, as scapy does
for IP and TCP); `Segment(data)` reads one back, and `segment.intact()` says whether its checksum
still matches (a flipped bit on the way does not). Because the class is bound to `PORT` on UDP,
every capture of the lab's path dissects the student's segments by name, like TCP's.
"""

from __future__ import annotations

from scapy.fields import FlagsField, IntField, XShortField
from scapy.layers.inet import UDP
from scapy.packet import Packet, bind_layers
from scapy.utils import checksum

__all__ = ["Segment", "PORT", "PAYLOAD", "HEADER"]

PORT = 4013  # the lesson's UDP port: the sender and the receiver both use it, so both directions dissect
PAYLOAD = 1000  # bytes: the most data one segment carries in this lesson's cases
HEADER = 11  # bytes of the header


class Segment(Packet):
    """One segment of the student's reliable transport (header 11 bytes, then the payload)."""

    name = "netlab transport"
    fields_desc = [
        FlagsField("flags", 0, 8, ["DATA", "ACK", "FIN"]),
        IntField("seq", 0),  # the segment's number, from 0 (not a byte count, unlike TCP)
        IntField("ack", 0),  # what the receiver acknowledges: the next number it expects, or the one it got
        XShortField("chksum", None),  # the Internet checksum of header and payload (RFC 1071); None: computed
    ]

    def post_build(self, pkt: bytes, pay: bytes) -> bytes:
        if self.chksum is None:
            value = checksum(pkt[:9] + b"\0\0" + pay)
            pkt = pkt[:9] + value.to_bytes(2, "big")
        return pkt + pay

    def intact(self) -> bool:
        """True when the checksum matches the header and payload as they arrived (no bit flipped on the way)."""
        raw = bytes(self)
        return checksum(raw[:9] + b"\0\0" + raw[11:]) == self.chksum

    def mysummary(self) -> str:
        return self.sprintf("netlab transport %flags% seq=%seq% ack=%ack%")


bind_layers(UDP, Segment, dport=PORT)
bind_layers(UDP, Segment, sport=PORT)
