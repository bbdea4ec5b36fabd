"""Notebook 05: data transfer to the scripted peer on a 1500-byte link, and on the lab's loopback.

The peer itself (`Script`, `transfer`) is core (`netlab.core.peer`); this module re-exports the
names notebook 05 uses, so `netlab.peer.Script` and `netlab.peer.transfer` keep working, and adds
the lesson's own experiments: retransmission timeouts, the same write on loopback.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable
from typing import Any

from netlab.core.arguments import check_int
from netlab.core.conversation import CLIENT_TO_SERVER
from netlab.core.experiment import Experiment, live_or_recorded
from netlab.core.lab import Lab
from netlab.core.peer import (
    LAB_ADDRESS,
    MAX_DURATION,
    MSS,
    MTU,
    PEER_ADDRESS,
    Peer,
    PeerError,
    PeerEvent,
    PeerExperiment,
    Script,
    add_link,
    pattern,
    transfer,
)

__all__ = [
    "retransmissions", "retransmission_times", "loopback_transfer", "swap_words", "RECORDINGS",
    # the core's scripted peer, as notebook 05 uses it
    "Script", "Peer", "PeerError", "PeerEvent", "PeerExperiment", "add_link", "transfer", "pattern",
    "LAB_ADDRESS", "PEER_ADDRESS", "MTU", "MSS",
]


def retransmissions(count: int = 5, *, recorded: str | None = "transfer-retransmit") -> PeerExperiment:
    """Send 100 bytes to a peer that never acknowledges, until the kernel has resent them `count` times.

    The kernel retransmits on its timer, doubling the timeout each time, so `count` = 5 takes
    about 0.2 + 0.4 + 0.8 + 1.6 + 3.2 ≈ 6 s.
    """
    check_int("count", count, 1, 8)
    bound = min(MAX_DURATION, 0.25 * 2 ** (count + 1) + 5)
    script = Script().never_ack().stop_after(segments=count + 1).within(bound)
    return transfer(script, data=100, recorded=recorded, timeout=bound)


def retransmission_times(conv: Any) -> list[float]:
    """When the first data segment was sent again: seconds after its first copy, one per copy."""
    copies = [s for s in conv.segments if s.direction == CLIENT_TO_SERVER and s.length]
    if not copies:
        return []
    first = copies[0]
    return [s.time - first.time for s in copies[1:] if s.seq == first.seq]


def loopback_transfer(data: int = 100_000, *, recorded: str | None = "transfer-lo", timeout: float = 10.0) -> Experiment:
    """The same write between two sockets on the lab's loopback (MTU 65536), for comparison."""
    check_int("data", data, 1, 10_000_000)
    return live_or_recorded(lambda lab: _loopback_transfer(lab, pattern(data), timeout), recorded)


def _loopback_transfer(lab: Lab, payload: bytes, timeout: float) -> Experiment:
    with lab.create_server() as server, lab.capture(timeout=timeout) as cap:
        with lab.create_connection(server.getsockname(), timeout=timeout) as client:
            server.settimeout(timeout)
            conn, _ = server.accept()
            with conn:
                # One thread plays both programs: send while there is room, read what has arrived.
                client.setblocking(False)
                conn.setblocking(False)
                sent, received, deadline = 0, 0, time.monotonic() + timeout
                while received < len(payload) and time.monotonic() < deadline:
                    want_write = [client] if sent < len(payload) else []
                    readable, writable, _ = select.select([conn], want_write, [], 0.1)
                    if writable:
                        sent += client.send(payload[sent:sent + 65536])
                    if readable:
                        received += len(conn.recv(65536))
                client.shutdown(socket.SHUT_WR)
        lab.wait_until(lambda states: not any(s.state not in ("LISTEN", "TIME-WAIT", "CLOSED") for s in states), timeout)
    return Experiment(cap.packets, "live",
                      "live: captured just now on the loopback of a private network namespace that netlab created",
                      result=received)


def swap_words(packet: Any, word: int = 0) -> tuple[Any, Any]:
    """Return a TCP segment with a correct checksum, and a damaged copy that keeps that checksum.

    The copy has 16-bit words `word` and `word + 1` of its data swapped: a ones'-complement sum
    adds the same words in any order, so this damage passes the Internet checksum (RFC 1071,
    section 2). `packet` is a captured frame or IP packet carrying TCP data; both results are
    scapy IP packets (the intact one with the checksum scapy computes).
    """
    from scapy.layers.inet import IP, TCP

    check_int("word", word, 0, 32_767)
    if IP not in packet or TCP not in packet:
        raise ValueError("swap_words needs an IP packet carrying a TCP segment")
    rebuilt = IP(bytes(packet[IP]))
    del rebuilt[TCP].chksum  # scapy computes a deleted checksum again when it builds the packet
    intact = IP(bytes(rebuilt))
    raw = bytearray(bytes(intact))
    start = intact.ihl * 4 + intact[TCP].dataofs * 4 + 2 * word
    end = intact.ihl * 4 + intact[TCP].dataofs * 4 + (intact.len - intact.ihl * 4 - intact[TCP].dataofs * 4)
    if start + 4 > end:
        raise ValueError(f"the segment carries {max(0, end - start + 2 * word)} bytes of data: too few to swap words "
                         f"{word} and {word + 1}")
    first, second = raw[start:start + 2], raw[start + 2:start + 4]
    if first == second:
        raise ValueError(f"words {word} and {word + 1} are equal ({bytes(first).hex()}): swapping them changes nothing; "
                         "choose another word")
    raw[start:start + 4] = second + first  # the checksum field is left as it was, as a faulty link would
    return intact, IP(bytes(raw))


# The recordings shipped in netlab/data, re-recorded by `python -m netlab record`; their .json
# also keeps the peer's script, its log and the lab kernel's counters.
RECORDINGS: dict[str, Callable[[], Experiment]] = {
    "transfer-mtu": lambda: transfer(Script(), data=100_000),
    "transfer-lo": lambda: loopback_transfer(100_000, recorded=None),
    "transfer-window": lambda: transfer(Script().accept(window=14600).stop_reading(after=0, seconds=1.0), data=30_000),
    "transfer-corrupt": lambda: transfer(Script().corrupt_ack(1), data=1000),
    "transfer-retransmit": lambda: retransmissions(4, recorded=None),
    "transfer-fast": lambda: transfer(Script().drop(3), data=30_000),
    "transfer-rtt": lambda: transfer(Script().accept(window=4380).ack_late(0.1), data=20_000),
}


