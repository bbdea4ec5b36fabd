"""How steady is the delay line's pacing, idle and under load? A bulk transfer through its own queue.

Goal: under load (busy loops on every core, as five engineers or a class of students sharing a
server make), frames still leave the delay line within a few ms of their due time (p99), and
the longest stall is tens of ms, not hundreds (the first delay line once stalled 320 ms at a
load of 8 to 11, and the capture then said so).

Each run opens a lab, a `Bottleneck` whose queue is the delay line's own (`discipline="droptail"`,
10 Mbit/s, 100 packets, RTT 40 ms), and sends with CUBIC for `--seconds` s. It prints the
throughput the sender got, the queue's drops, the capture's count of causality breaks (0: every
ACK after what it acknowledges) and, per direction, how late frames left after their due time
(`late_ms`: p50, p99, max). `--busy N` starts N processes that spin for the whole run; `--tbf`
runs the kernel's tbf queue instead of the delay line's, for comparison.

Run from the repository's root:

    .venv/bin/python bench/delayline.py                  # idle, then 4 busy loops
    .venv/bin/python bench/delayline.py --busy 8 --runs 3
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time

import netlab
from netlab.core.bottleneck import Bottleneck, send_sampled
from netlab.core.conversation import Conversation


def spin(until: float) -> None:
    """Burn one core until `until` (time.time())."""
    while time.time() < until:
        pass


def one_run(seconds: float, tbf: bool) -> dict:
    with netlab.Lab() as lab:
        with Bottleneck(lab, rate=10e6, queue=100, rtt=0.04, discipline=None if tbf else "droptail",
                        duration=seconds + 10) as path:
            with path.connect("cubic") as sock:
                sent, _ = send_sampled(sock, seconds=seconds)
        report = path.report
    conv = Conversation.from_packets(report.packets)
    return {"written Mbit/s": sent * 8 / seconds / 1e6, "queue drops": report.queue_drops,
            "not causal": len(conv.causality), "capture drops": report.capture_drops,
            "forward late ms": report.forward["late_ms"], "backward late ms": report.backward["late_ms"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--busy", type=int, nargs="*", default=[0, 4], help="busy loops per series of runs")
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--tbf", action="store_true", help="the kernel's tbf queue instead of the delay line's")
    args = parser.parse_args()
    print(f"delay line bench: {args.runs} runs of {args.seconds:g} s per load, "
          f"{'tbf' if args.tbf else 'the delay line'}'s queue, 10 Mbit/s, RTT 40 ms; {os.cpu_count()} cores")
    for busy in args.busy:
        until = time.time() + args.runs * (args.seconds + 3) + 5
        loops = [multiprocessing.Process(target=spin, args=(until,), daemon=True) for _ in range(busy)]
        for loop in loops:
            loop.start()
        try:
            for n in range(args.runs):
                result = one_run(args.seconds, args.tbf)
                print(f"busy loops {busy}  run {n + 1}: load {os.getloadavg()[0]:.1f}  "
                      + "  ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in result.items()))
        finally:
            for loop in loops:
                loop.terminate()
                loop.join(5)


if __name__ == "__main__":
    main()
