"""Two bulk flows through one bottleneck, the second started later: each one's share, and Jain's index."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from netlab.core.bottleneck import Bottleneck, send_sampled
from netlab.core.lab import Lab
from netlab.core.sockets import TcpInfo

from .fairness import jain_index

__all__ = ["Flow", "Shared", "two_flows"]


@dataclass
class Flow:
    """One sender's run: its congestion control, when it started (s after the first) and its TCP_INFO samples."""

    algorithm: str
    started: float
    samples: list[TcpInfo]

    def throughput(self, start: float, end: float) -> float:
        """Bits/s acknowledged between Unix times `start` and `end` (the samples nearest inside them)."""
        inside = [s for s in self.samples if start <= s.time <= end]
        if len(inside) < 2 or inside[-1].time <= inside[0].time:
            raise ValueError(f"the {self.algorithm} flow has too few samples between the two times")
        return (inside[-1].bytes_acked - inside[0].bytes_acked) * 8 / (inside[-1].time - inside[0].time)


@dataclass
class Shared:
    """Both flows, and the interval in which both were sending (Unix seconds)."""

    flows: list[Flow]
    both_from: float
    both_to: float

    def throughputs(self) -> list[float]:
        return [flow.throughput(self.both_from, self.both_to) for flow in self.flows]

    def jain(self) -> float:
        """Jain's fairness index over the time both flows were sending."""
        return jain_index(self.throughputs())


def two_flows(lab: Lab, algorithms: tuple[str, str] = ("cubic", "cubic"), *, rate: float = 5e6, queue: int = 100,
              rtt: float = 0.03, seconds: float = 2.0, apart: float = 0.5, discipline: str | None = None) -> Shared:
    """Two bulk transfers through one bottleneck of the lab, the second `apart` s after the first; both end together."""
    if not 0 <= apart < seconds:
        raise ValueError(f"the second flow must start within the run: 0 ≤ apart < seconds; got {apart}, {seconds}")
    runs: dict[int, list[TcpInfo]] = {}
    failed: list[BaseException] = []
    with Bottleneck(lab, rate=rate, queue=queue, rtt=rtt, capture=False, discipline=discipline) as path:
        with path.connect(algorithms[0]) as first, path.connect(algorithms[1]) as second:
            def send(n: int, sock, delay: float) -> None:
                try:
                    time.sleep(delay)
                    runs[n] = send_sampled(sock, seconds=seconds - delay)[1]
                except BaseException as err:  # handed to the caller below
                    failed.append(err)
            threads = [threading.Thread(target=send, args=(0, first, 0.0)),
                       threading.Thread(target=send, args=(1, second, apart))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(seconds + 10)
    if failed:
        raise failed[0]
    flows = [Flow(algorithms[n], started=n * apart, samples=runs[n]) for n in (0, 1)]
    both_from = flows[1].samples[0].time
    both_to = min(flows[0].samples[0].time + seconds, flows[1].samples[-1].time)
    return Shared(flows, both_from, both_to)
