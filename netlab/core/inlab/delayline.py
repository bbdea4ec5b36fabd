"""The delay line: one program between two links of a lab that delays, impairs, queues and captures.

Theory of operation
-------------------
The kernels netlab runs on have no `netem` and no `codel`, `red` or `fq_codel` (see DESIGN.md),
so a link whose frames must be late, lost, duplicated, reordered, corrupted, rate-limited or
queued under a discipline is cut in two, and this program joins the halves: it reads every
frame arriving on interface `a` and sends it out of `b` (the *forward* direction), and every
frame arriving on `b` out of `a` (*backward*), each direction with its own `Direction`:

    arrives ─▶ numbered drops ─▶ loss ─▶ corruption ─▶ duplication ─▶ [queue ─▶ rate] ─▶ delay (+ reorder gap) ─▶ leaves

 - **Impairments** are drawn from a random generator seeded per direction (`seed`), so the same
   seed and the same frames give the same losses. Corruption flips one bit of the frame's
   payload; with `keep_checksum` it then recomputes the UDP or TCP checksum, so that the flipped
   bit reaches the program (a receiver's kernel drops a segment whose checksum fails, which
   turns corruption into loss). A reordered frame is held `reorder_gap` s longer than the rest,
   so the frames after it overtake it. `drops` and `outage` lose TCP data segments by number
   (retransmissions counted), as a lesson that needs one exact loss asks.
 - **The queue** exists only when the direction has a `rate` (bits/s): frames wait in a queue
   of at most `queue` packets, ruled by a queue discipline, and leave one at a time, each after
   the previous one's transmission time (bytes × 8 / rate). The discipline is a small Python
   class (`Discipline`: `enqueue` and `dequeue`) named by `discipline` ("droptail" or
   "package.module:Class"), so a lesson's RED or CoDel sees the queue it rules: each packet's
   arrival time (its sojourn), the backlog in packets and bytes, and may drop or mark CE (ECN).
   Each direction's random draws are its own, and only frames that carry a payload are drawn
   for corruption, so the same seed gives the same choices for the same frames in each direction.
 - **The capture** is made at one point, `capture` ("a" or "b"): a third packet socket on that
   interface sees both directions there, frames arriving from the host and frames this program
   sends towards it, each with the kernel's time stamp. One point and one clock: every
   acknowledgement is captured after what it acknowledges (the conversation checks it: see
   `Conversation.causality`). The frames are written as a pcap when the program ends.

Pacing under load, measured with bench/delayline.py on this 2-core machine, shared with four
other engineers' test runs (their load alone 7 to 11), through the delay line's own 10 Mbit/s
queue of 100 packets, RTT 40 ms, a CUBIC transfer of 3 s; how late frames left after their due
time, per run (two runs each, both directions alike):

    others' load 7 to 11, nothing added:   p50 0.1 ms   p99 0.2 to 3.9 ms   max 3.4 to 7.6 ms
    the same plus 4 busy loops:            p50 0.1 to 0.8 ms   p99 10 to 30 ms   max 20 to 51 ms

No run stalled for hundreds of ms (the first delay line once stalled 320 ms at a load of 8 to
11), every capture was complete and causal, and the throughput stayed at the rate (9.8 to 10.2
Mbit/s written). The kernel's tbf with the same 4 busy loops: the delay line's hold (no queue in
it) was late by p99 20 ms, max 26 ms: under load, the two lag alike, because the hold is the
same Python program; a queue discipline costs no steadiness on top of it.

A frame that leaves late does not push the link's schedule: the next one is due one
transmission time after the previous one's *due* time, so the rate is kept on average; a stall
longer than `CATCH_UP` s is not made up for (the link was idle meanwhile, as a real one whose
sender stalled), so a stall never turns into a burst longer than that.

Rules for this file:
1. Every wait has a bound: the program ends at `duration` s, or at once when its stdin closes,
   writing its capture and its report (report.json) into the folder `out`.
2. Standard library only, and nothing of the analysis: the program is ready about a quarter of a
   second after it is started, most of it Python's own start.
3. It knows no lesson: a lesson's discipline is named in the order, imported here by name.
"""

from __future__ import annotations

import heapq
import importlib
import json
import os
import random
import select
import socket
import struct
import sys
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from netlab.core.inlab.frames import (
    PACKET_OUTGOING,
    captured_missed,
    no_checksum_offload,
    packet_socket,
    recv_stamped,
    write_pcap,
)

__all__ = ["Direction", "Packet", "Discipline", "DropTail", "MAX_DURATION", "CATCH_UP", "DISCIPLINES", "main"]

MAX_DURATION = 60.0  # seconds: no delay line runs longer
CATCH_UP = 0.005  # seconds of a stall the rate limit makes up for by sending back to back
_FRAMES_PER_PASS = 64  # frames read from one socket before the timers are looked at again


@dataclass
class Direction:
    """What happens to frames going one way: delay (s), impairments (probabilities 0..1), an optional queue.

    `drops` are TCP data segments to `port` lost by number (from 1, retransmissions counted);
    `outage=(N, s)` loses every such segment for `s` seconds from the N-th on. `rate` (bits/s)
    adds a queue of `queue` packets ruled by `discipline` (see `Discipline`), with `options`
    passed to it as keyword arguments. `seed` makes the random impairments repeatable.
    """

    delay: float = 0.0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    reorder_gap: float = 0.005
    corrupt: float = 0.0
    keep_checksum: bool = True
    seed: int | None = None
    drops: list[int] = field(default_factory=list)
    outage: tuple[int, float] | None = None
    port: int | None = None
    rate: float | None = None
    queue: int = 100
    discipline: str = "droptail"
    options: dict[str, Any] = field(default_factory=dict)

    def check(self, name: str) -> Direction:
        """Raise ValueError naming the first field out of its range; return self."""
        if not isinstance(self.delay, (int, float)) or isinstance(self.delay, bool) or not 0 <= self.delay <= 5:
            raise ValueError(f"{name}'s delay must be in seconds, from 0 to 5, not {self.delay!r}")
        for what in ("loss", "duplicate", "reorder", "corrupt"):
            value = getattr(self, what)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value <= 1:
                raise ValueError(f"{name}'s {what} must be a probability from 0 to 1, not {value!r}")
        if not isinstance(self.reorder_gap, (int, float)) or not 0 < self.reorder_gap <= 1:
            raise ValueError(f"{name}'s reorder_gap must be in seconds, above 0 and at most 1, not {self.reorder_gap!r}")
        if self.seed is not None and (not isinstance(self.seed, int) or isinstance(self.seed, bool)):
            raise ValueError(f"{name}'s seed must be an integer or None, not {self.seed!r}")
        if self.rate is not None and (not isinstance(self.rate, (int, float)) or isinstance(self.rate, bool)
                                      or not 10e3 <= self.rate <= 1e9):
            raise ValueError(f"{name}'s rate must be in bits/s, from 10e3 to 1e9, or None, not {self.rate!r}")
        if not isinstance(self.queue, int) or isinstance(self.queue, bool) or not 1 <= self.queue <= 100_000:
            raise ValueError(f"{name}'s queue must be a number of packets from 1 to 100000, not {self.queue!r}")
        if not isinstance(self.drops, (list, tuple)) or not all(
                isinstance(n, int) and not isinstance(n, bool) and n >= 1 for n in self.drops):
            raise ValueError(f"{name}'s drops must be data segments' numbers, from 1, not {self.drops!r}")
        if self.outage is not None and not (
                isinstance(self.outage, (list, tuple)) and len(self.outage) == 2 and isinstance(self.outage[0], int)
                and self.outage[0] >= 1 and isinstance(self.outage[1], (int, float)) and 0 < self.outage[1] <= MAX_DURATION):
            raise ValueError(f"{name}'s outage must be (first data segment, seconds), not {self.outage!r}")
        if self.port is not None and (not isinstance(self.port, int) or not 0 < self.port < 65536):
            raise ValueError(f"{name}'s port must be a TCP port from 1 to 65535 or None, not {self.port!r}")
        if not isinstance(self.options, dict):
            raise ValueError(f"{name}'s options must be a dict of the discipline's keyword arguments, not {self.options!r}")
        if not isinstance(self.discipline, str) or not (self.discipline in DISCIPLINES or ":" in self.discipline):
            raise ValueError(f"{name}'s discipline must be one of {', '.join(DISCIPLINES)} or 'package.module:Class', "
                             f"not {self.discipline!r}")
        if self.rate is not None:
            try:  # here, before anything starts: the program in the lab finds it the same way
                discipline_class(self.discipline)
            except ImportError as err:
                raise ValueError(f"{name}'s discipline {self.discipline!r} cannot be imported: {err}") from None
            except ValueError as err:
                raise ValueError(f"{name}'s discipline: {err}") from None
        return self

    def to_order(self) -> dict[str, Any]:
        return asdict(self)


# ---------------------------------------------------------------------------
# Queue disciplines: what a lesson may write in Python and name in `Direction.discipline`.


class Packet:
    """A frame in the delay line's queue: its bytes, size and arrival time (monotonic seconds)."""

    __slots__ = ("frame", "size", "arrived")

    def __init__(self, frame: bytes, arrived: float) -> None:
        self.frame = frame
        self.size = len(frame)
        self.arrived = arrived

    def sojourn(self, now: float) -> float:
        """Seconds this packet has waited in the queue."""
        return now - self.arrived

    @property
    def ecn_capable(self) -> bool:
        """True for an IPv4 or IPv6 packet whose sender marked it ECT(0) or ECT(1) (RFC 3168)."""
        return _ecn_field(self.frame) in (1, 2)

    def mark_ce(self) -> bool:
        """Set the ECN field to CE (congestion experienced) if the packet is ECN-capable; True if marked.

        An AQM marks such a packet instead of dropping it; the receiver echoes ECE, and the
        sender cuts its window without a loss.
        """
        if not self.ecn_capable:
            return False
        self.frame = _set_ce(self.frame)
        return True


class Discipline:
    """A queue discipline: it decides which packets wait, which leave next, and which are lost.

    The delay line calls `enqueue(packet, now)` when a packet arrives and `dequeue(now)` when the
    link is free to send; `now` is monotonic seconds. A subclass keeps the queue's rules and
    reads the queue (`self.packets`, `self.bytes`, `self.limit`); it loses a packet with
    `self.drop(packet, why)` and marks one with `packet.mark_ce()`. `self.log` is kept in the
    report: (seconds since the start, what happened).
    """

    name = "discipline"

    def __init__(self, limit: int, **options: Any) -> None:
        if options:
            raise ValueError(f"{type(self).__name__} takes no options; got {', '.join(options)}")
        self.limit = limit
        self.packets: deque[Packet] = deque()
        self.bytes = 0
        self.dropped = 0
        self.marked = 0
        self.log: list[tuple[float, str]] = []
        self.started = time.monotonic()

    def enqueue(self, packet: Packet, now: float) -> None:
        """Take `packet` in, or drop it. The default: drop-tail, at `limit` packets."""
        if len(self.packets) >= self.limit:
            self.drop(packet, now, "queue full")
            return
        self.push(packet)

    def dequeue(self, now: float) -> Packet | None:
        """The next packet to send, or None when the queue is empty. The default: first in, first out."""
        return self.pop()

    # What a subclass builds its rules from.

    def push(self, packet: Packet) -> None:
        self.packets.append(packet)
        self.bytes += packet.size

    def pop(self) -> Packet | None:
        if not self.packets:
            return None
        packet = self.packets.popleft()
        self.bytes -= packet.size
        return packet

    def drop(self, packet: Packet, now: float, why: str) -> None:
        self.dropped += 1
        self.log.append((round(now - self.started, 6), f"dropped ({why}), {len(self.packets)} packets waiting"))

    def mark(self, packet: Packet, now: float, why: str) -> bool:
        """Mark `packet` CE if it is ECN-capable (True), else leave it to the caller to drop (False)."""
        if packet.mark_ce():
            self.marked += 1
            self.log.append((round(now - self.started, 6), f"marked CE ({why})"))
            return True
        return False


class DropTail(Discipline):
    """First in, first out; a packet that finds the queue full is lost (what `tbf` and most routers do)."""

    name = "droptail"


DISCIPLINES: dict[str, type[Discipline]] = {"droptail": DropTail}


def discipline_class(name: str) -> type[Discipline]:
    """The class `name` names: a built-in ("droptail") or "package.module:Class" (a lesson's)."""
    if name in DISCIPLINES:
        return DISCIPLINES[name]
    module, _, attribute = name.partition(":")
    cls = getattr(importlib.import_module(module), attribute, None) if module and attribute else None
    if not (isinstance(cls, type) and issubclass(cls, Discipline)):
        raise ValueError(f"{name} is not a Discipline class")
    return cls


# ---------------------------------------------------------------------------
# Frames: what the impairments read and change (IPv4 and IPv6, Ethernet framing).


def _ip_header(frame: bytes) -> tuple[int, int] | None:
    """(IP version, offset of the IP header) for an Ethernet frame carrying IPv4 or IPv6, else None."""
    if len(frame) < 34:
        return None
    kind = frame[12:14]
    if kind == b"\x08\x00":
        return 4, 14
    if kind == b"\x86\xdd" and len(frame) >= 54:
        return 6, 14
    return None


def _ecn_field(frame: bytes) -> int | None:
    ip = _ip_header(frame)
    if ip is None:
        return None
    version, at = ip
    return frame[at + 1] & 3 if version == 4 else (frame[at + 1] >> 4) & 3


def _set_ce(frame: bytes) -> bytes:
    data = bytearray(frame)
    version, at = _ip_header(frame)  # type: ignore[misc]  (only called on an ECN-capable packet)
    if version == 4:
        data[at + 1] |= 3
        ihl = (data[at] & 0x0F) * 4
        data[at + 10:at + 12] = b"\0\0"
        data[at + 10:at + 12] = _checksum(bytes(data[at:at + ihl])).to_bytes(2, "big")
    else:
        data[at + 1] |= 0x30
    return bytes(data)


def _checksum(data: bytes) -> int:
    """The Internet checksum (RFC 1071) of `data`."""
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def _transport(frame: bytes) -> tuple[int, int, int, bytes] | None:
    """(protocol, offset of the TCP or UDP header, offset where the IP packet ends, pseudo-header) of
    an unfragmented IP packet, else None. The end leaves out Ethernet's padding of short frames."""
    ip = _ip_header(frame)
    if ip is None:
        return None
    version, at = ip
    if version == 4:
        ihl = (frame[at] & 0x0F) * 4
        if struct.unpack_from("!H", frame, at + 6)[0] & 0x3FFF:  # a fragment: its checksum covers other frames too
            return None
        proto, total = frame[at + 9], struct.unpack_from("!H", frame, at + 2)[0]
        pseudo = frame[at + 12:at + 20] + struct.pack("!BBH", 0, proto, total - ihl)
        return proto, at + ihl, min(len(frame), at + total), pseudo
    proto, length = frame[at + 6], struct.unpack_from("!H", frame, at + 4)[0]  # no extension headers handled
    pseudo = frame[at + 8:at + 40] + struct.pack("!IxxxB", length, proto)
    return proto, at + 40, min(len(frame), at + 40 + length), pseudo


def _payload_start(frame: bytes, proto: int, at: int) -> int:
    """Where the payload above a TCP (its data offset) or UDP (8 bytes) header begins."""
    return at + ((frame[at + 12] >> 4) * 4 if proto == 6 else 8)


def _has_payload(frame: bytes) -> bool:
    """True for a TCP segment or UDP datagram that carries payload: what corruption may change.

    A header-only frame is left alone: a flipped header bit makes the receiving kernel drop the
    frame (its IP or transport checksum fails), and that is loss, which `loss` already gives.
    """
    found = _transport(frame)
    return bool(found and found[0] in (6, 17) and found[2] > _payload_start(frame, found[0], found[1]))


def _corrupt(frame: bytes, rng: random.Random, keep_checksum: bool) -> tuple[bytes, str]:
    """Flip one bit of the payload above TCP or UDP (or, for anything else, past the Ethernet header).

    With `keep_checksum`, the TCP or UDP checksum is computed again over the changed bytes, so
    the receiving kernel accepts the segment and the flipped bit reaches the program.
    """
    data = bytearray(frame)
    found = _transport(frame)
    start, end = 14, len(data)
    if found and found[0] in (6, 17):
        proto, at, end, pseudo = found
        start = _payload_start(frame, proto, at)
    if start >= end:
        start = 14  # no payload: a bit of the headers, which the receiving kernel will most likely reject
    where = rng.randrange(start, end)
    bit = rng.randrange(8)
    data[where] ^= 1 << bit
    said = f"byte {where - start} of the payload, bit {bit}" if start > 14 else f"byte {where} of the frame, bit {bit}"
    if keep_checksum and found and found[0] in (6, 17) and start > 14:
        proto, at, end, pseudo = found
        field_at = at + (16 if proto == 6 else 6)
        if proto == 17 and data[field_at:field_at + 2] == b"\0\0":
            return bytes(data), said + " (UDP without a checksum)"
        data[field_at:field_at + 2] = b"\0\0"
        value = _checksum(pseudo + bytes(data[at:end])) or (0xFFFF if proto == 17 else 0)
        data[field_at:field_at + 2] = value.to_bytes(2, "big")
        said += ", checksum recomputed"
    return bytes(data), said


def _data_to(frame: bytes, port: int | None) -> bool:
    """True for a TCP segment that carries data, to `port` (any port when None)."""
    found = _transport(frame)
    if not found or found[0] != 6:
        return False
    _, at, end, _ = found
    if port is not None and struct.unpack_from("!H", frame, at + 2)[0] != port:
        return False
    return end > _payload_start(frame, 6, at)


# ---------------------------------------------------------------------------
# The program.


class _Way:
    """One direction's state while the program runs: its random generator, counters and queue."""

    def __init__(self, name: str, spec: dict[str, Any], out: socket.socket, started: float,
                 note: Any) -> None:
        self.name, self.out, self.note = name, out, note
        self.spec = Direction(**{**spec, "outage": tuple(spec["outage"]) if spec.get("outage") else None})
        self.rng = random.Random(self.spec.seed)
        self.drops = set(self.spec.drops)
        self.data_count = 0
        self.outage_until: float | None = None
        self.counts = {"in": 0, "lost": 0, "duplicated": 0, "reordered": 0, "corrupted": 0, "sent": 0}
        self.queue: Discipline | None = None
        if self.spec.rate:
            self.queue = discipline_class(self.spec.discipline)(self.spec.queue, **self.spec.options)
            self.queue.started = started
        self.busy_until = 0.0  # monotonic time the link finishes sending the frame it took last
        self.lateness: list[float] = []  # seconds each frame left after it was due

    def arrive(self, frame: bytes, now: float, hold: Any) -> None:
        """A frame read from this direction's way in: impair it, queue it or hold it."""
        spec, rng = self.spec, self.rng
        self.counts["in"] += 1
        number = self.counts["in"]
        if (spec.drops or spec.outage) and _data_to(frame, spec.port):
            self.data_count += 1
            if spec.outage and self.data_count == spec.outage[0]:
                self.outage_until = now + spec.outage[1]
                self.note(f"{self.name}: data segment {self.data_count}: outage begins, everything lost for "
                          f"{spec.outage[1]:g} s")
            if self.outage_until is not None and now < self.outage_until:
                self.counts["lost"] += 1
                return
            if self.data_count in self.drops:
                self.note(f"{self.name}: data segment {self.data_count}: dropped")
                self.counts["lost"] += 1
                return
        if spec.loss and rng.random() < spec.loss:
            self.note(f"{self.name}: frame {number} lost")
            self.counts["lost"] += 1
            return
        if spec.corrupt and _has_payload(frame) and rng.random() < spec.corrupt:
            frame, said = _corrupt(frame, rng, spec.keep_checksum)
            self.note(f"{self.name}: frame {number} corrupted: {said}")
            self.counts["corrupted"] += 1
        copies = 1
        if spec.duplicate and rng.random() < spec.duplicate:
            self.note(f"{self.name}: frame {number} duplicated")
            self.counts["duplicated"] += 1
            copies = 2
        for _ in range(copies):
            if self.queue is not None:
                self.queue.enqueue(Packet(frame, now), now)
            else:
                self.propagate(frame, now, hold, number)

    def propagate(self, frame: bytes, now: float, hold: Any, number: int) -> None:
        """Hold the frame for the link's delay (longer if it is to be reordered), then send it."""
        spec = self.spec
        delay = spec.delay
        if spec.reorder and self.rng.random() < spec.reorder:
            delay += spec.reorder_gap
            self.note(f"{self.name}: frame {number} held {spec.reorder_gap * 1000:g} ms longer (reordered)")
            self.counts["reordered"] += 1
        hold(now + delay, frame, self)

    def serve(self, now: float, hold: Any) -> float | None:
        """Send queued frames whose turn has come at `rate`; return when the link is next free (or None)."""
        queue = self.queue
        if queue is None:
            return None
        while queue.packets:
            start = max(self.busy_until, now - CATCH_UP)
            if start > now:
                return start
            packet = queue.dequeue(now)
            if packet is None:
                break
            # A frame that reached an idle link starts when it arrived, not CATCH_UP earlier: the
            # catch-up is for a link that stayed busy while this program was late, never a head start.
            start = max(start, packet.arrived)
            self.busy_until = start + packet.size * 8 / self.spec.rate
            self.propagate(packet.frame, self.busy_until, hold, self.counts["in"])
        return None

    def report(self) -> dict[str, Any]:
        late = sorted(self.lateness)

        def at(q: float) -> float:
            return round(late[min(len(late) - 1, int(q * len(late)))] * 1000, 3) if late else 0.0

        queue = self.queue
        return {
            **self.counts,
            "queue_dropped": queue.dropped if queue else 0,
            "queue_marked": queue.marked if queue else 0,
            "queue_log": queue.log if queue else [],
            "late_ms": {"p50": at(0.5), "p99": at(0.99), "max": at(1.0)},
        }


def main() -> None:
    """Read one order (a JSON line on stdin), say "ready", join the links until stdin closes or time runs out."""
    line = sys.stdin.buffer.readline()
    if not line:  # closed before any order: whoever started it gave up
        return
    order = json.loads(line)
    out = Path(order["out"])
    names = {"a": order["a"], "b": order["b"]}
    side = {name: packet_socket(device, outgoing=False) for name, device in names.items()}
    point = order.get("capture")
    capture = packet_socket(names[point], stamped=True) if point else None
    for device in order.get("finish_checksums", []):
        # The hosts' ends of the links that are in this namespace: what they send crosses this
        # program, which passes it on as it is (see no_checksum_offload).
        no_checksum_offload(side["a"], device)
    started = time.monotonic()
    log: list[tuple[float, str]] = []

    def note(what: str) -> None:
        log.append((round(time.monotonic() - started, 6), what))

    ways = {"a": _Way("forward", order["forward"], side["b"], started, note),
            "b": _Way("backward", order["backward"], side["a"], started, note)}
    held: list[tuple[float, int, bytes, _Way]] = []  # (when to send, tie-break, frame, its way)
    ticket = 0

    def hold(when: float, frame: bytes, way: _Way) -> None:
        nonlocal ticket
        ticket += 1
        heapq.heappush(held, (when, ticket, frame, way))

    frames: list[tuple[bytes, float]] = []
    # No duration: a topology's link, which lives as long as the topology, whose end (or its
    # process's) closes stdin.
    deadline = started + min(float(order["duration"]), MAX_DURATION) if order["duration"] is not None else float("inf")
    stdin = sys.stdin.buffer.fileno()
    readers = [side["a"], side["b"], stdin] + ([capture] if capture else [])
    print("ready", flush=True)
    while True:
        now = time.monotonic()
        wake = deadline
        for way in ways.values():
            free = way.serve(now, hold)
            if free is not None:
                wake = min(wake, free)
        while held and held[0][0] <= now:
            due, _, frame, way = heapq.heappop(held)
            try:
                way.out.send(frame)
                way.counts["sent"] += 1
            except OSError:
                way.counts["lost"] += 1  # the far side's queue is full (ENOBUFS): lost there
            way.lateness.append(now - due)
            now = time.monotonic()
        if now >= deadline:
            note("time bound reached")
            break
        if held:
            wake = min(wake, held[0][0])
        ready = select.select(readers, [], [], max(0.0, wake - now) if wake != float("inf") else None)[0]
        if stdin in ready and not os.read(stdin, 4096):
            break
        for name in ("a", "b"):
            sock = side[name]
            if sock not in ready:
                continue
            for _ in range(_FRAMES_PER_PASS):
                try:
                    frame, address = sock.recvfrom(65535)
                except BlockingIOError:
                    break
                if address[2] == PACKET_OUTGOING:
                    continue  # a kernel without PACKET_IGNORE_OUTGOING: what the namespace sent
                ways[name].arrive(frame, time.monotonic(), hold)
        if capture is not None and capture in ready:
            _drain(capture, frames)
    if capture is not None:
        _drain(capture, frames)
    report = {"log": log, "forward": ways["a"].report(), "backward": ways["b"].report(),
              "capture_drops": captured_missed(capture) if capture else 0}
    for sock in [*side.values(), capture]:
        if sock is not None:
            sock.close()
    if capture is not None:
        frames.sort(key=lambda f: f[1])  # the kernel's times at one point: the order things happened there
        write_pcap(out / "link.pcap.part", frames)
        os.replace(out / "link.pcap.part", out / "link.pcap")
    (out / "report.json.part").write_text(json.dumps(report))
    os.replace(out / "report.json.part", out / "report.json")


def _drain(sock: socket.socket, frames: list[tuple[bytes, float]]) -> None:
    """Read every frame waiting on the capture socket, with its kernel time, both directions."""
    for _ in range(4 * _FRAMES_PER_PASS):
        try:
            frame, stamp, _address = recv_stamped(sock, 262144)
        except BlockingIOError:
            return
        frames.append((frame, stamp))


if __name__ == "__main__":
    # Run as `python -m`, this module is `__main__`; a lesson's discipline imports it by its name.
    # One module under both names, so that the lesson's class subclasses this very `Discipline`.
    sys.modules.setdefault("netlab.core.inlab.delayline", sys.modules[__name__])
    main()
