"""RED and CoDel: queue disciplines for the delay line's own queue (`netlab.core.inlab.delayline.Discipline`).

The kernel in the lab offers no `red`, `codel` or `fq_codel` qdisc here, so the notebook's
bottleneck names one of these by its module path, e.g.
`Bottleneck(lab, rate=5e6, queue=100, discipline="netlab.lessons.sharing.queues:CoDel")`.
Each marks an ECN-capable packet CE where it would drop another (RFC 3168).
"""

from __future__ import annotations

import math
import random
from typing import Any

from netlab.core.inlab.delayline import Discipline, Packet

__all__ = ["Red", "CoDel"]


class Red(Discipline):
    """Random Early Detection (Floyd and Jacobson, 1993), in packets.

    On each arrival the average queue `avg` follows the queue's length with weight `weight`
    (an exponentially weighted moving average). Below `min_th` every packet is taken in;
    between `min_th` and `max_th` a packet is dropped (or marked CE) with a probability rising
    linearly from 0 to `max_p`; above `max_th`, or when the queue is full, it is dropped.
    (The "count" refinement of the paper, which spreads the drops out, is left out for clarity.)
    """

    name = "red"

    def __init__(self, limit: int, min_th: float | None = None, max_th: float | None = None,
                 max_p: float = 0.1, weight: float = 0.002, seed: int = 0, **options: Any) -> None:
        super().__init__(limit, **options)
        self.min_th = limit / 4 if min_th is None else min_th
        self.max_th = limit * 3 / 4 if max_th is None else max_th
        if not 0 <= self.min_th < self.max_th <= limit:
            raise ValueError(f"RED needs 0 ≤ min_th < max_th ≤ limit; got {self.min_th}, {self.max_th}, {limit}")
        if not 0 < max_p <= 1 or not 0 < weight <= 1:
            raise ValueError(f"RED's max_p and weight lie in (0, 1]; got {max_p}, {weight}")
        self.max_p = max_p
        self.weight = weight
        self.avg = 0.0
        self.random = random.Random(seed)

    def enqueue(self, packet: Packet, now: float) -> None:
        self.avg += self.weight * (len(self.packets) - self.avg)
        if len(self.packets) >= self.limit:
            self.drop(packet, now, "queue full")
            return
        if self.avg >= self.max_th:
            if not self.mark(packet, now, f"average {self.avg:.1f} ≥ max_th"):
                self.drop(packet, now, f"average {self.avg:.1f} ≥ max_th")
                return
        elif self.avg > self.min_th:
            p = self.max_p * (self.avg - self.min_th) / (self.max_th - self.min_th)
            if self.random.random() < p:
                why = f"early, p={p:.3f}"
                if not self.mark(packet, now, why):
                    self.drop(packet, now, why)
                    return
        self.push(packet)


class CoDel(Discipline):
    """Controlled Delay (RFC 8289): it watches how long packets wait, not how many there are.

    Each packet's sojourn time is read when it leaves. While the sojourn stays above `target`
    (5 ms) for a whole `interval` (100 ms, about a round trip), CoDel enters its dropping state:
    it drops (or marks CE) one packet, then the next after interval/√count, and so on, faster
    and faster, until a packet leaves with a sojourn below `target` (or the queue holds less than
    one packet's worth) and it stops. Re-entering soon after leaving resumes near the last count
    (RFC 8289 §5.6), so a standing queue is not given a fresh slow start.
    """

    name = "codel"

    def __init__(self, limit: int, target: float = 0.005, interval: float = 0.1, mtu: int = 1514,
                 **options: Any) -> None:
        super().__init__(limit, **options)
        if not 0 < target < interval:
            raise ValueError(f"CoDel needs 0 < target < interval; got {target}, {interval}")
        self.target = target
        self.interval = interval
        self.mtu = mtu
        self.first_above_time = 0.0  # when the sojourn will have been above target for an interval (0: it is not above)
        self.drop_next = 0.0  # when the next drop is due, in the dropping state
        self.count = 0  # drops since entering the dropping state
        self.last_count = 0
        self.dropping = False
        self.sojourns: list[tuple[float, float]] = []  # (seconds since the start, sojourn) of each packet sent

    def control_law(self, t: float) -> float:
        """When the next drop is due: an interval divided by √count after `t` (RFC 8289 §5.5)."""
        return t + self.interval / math.sqrt(self.count)

    def _leave(self, now: float) -> tuple[Packet | None, bool]:
        """The head packet, and whether it may be dropped: its sojourn has been above target for an interval."""
        packet = self.pop()
        if packet is None:
            self.first_above_time = 0.0
            return None, False
        sojourn = packet.sojourn(now)
        self.sojourns.append((round(now - self.started, 6), round(sojourn, 6)))
        if sojourn < self.target or self.bytes <= self.mtu:
            self.first_above_time = 0.0  # below target, or too little queued to matter
            return packet, False
        if self.first_above_time == 0.0:
            self.first_above_time = now + self.interval
            return packet, False
        return packet, now >= self.first_above_time

    def _signal(self, packet: Packet, now: float) -> bool:
        """Mark `packet` CE (True: send it) or drop it (False)."""
        why = f"sojourn above {self.target * 1000:g} ms for {self.interval * 1000:g} ms, count {self.count}"
        if self.mark(packet, now, why):
            return True
        self.drop(packet, now, why)
        return False

    def dequeue(self, now: float) -> Packet | None:
        packet, ok_to_drop = self._leave(now)
        if self.dropping:
            if not ok_to_drop:
                self.dropping = False  # the sojourn went below target: leave the dropping state
            while self.dropping and packet is not None and now >= self.drop_next:
                self.count += 1
                if self._signal(packet, now):
                    self.drop_next = self.control_law(self.drop_next)
                    return packet
                packet, ok_to_drop = self._leave(now)
                if not ok_to_drop:
                    self.dropping = False
                else:
                    self.drop_next = self.control_law(self.drop_next)
        elif ok_to_drop and packet is not None:
            self.dropping = True
            delta = self.count - self.last_count
            self.count = delta if delta > 1 and now - self.drop_next < 16 * self.interval else 1
            self.drop_next = self.control_law(now)
            self.last_count = self.count
            if not self._signal(packet, now):
                packet, _ = self._leave(now)
        return packet
