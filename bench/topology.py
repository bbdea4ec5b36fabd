"""How long does a routed topology take to build, and its first capture? Build N and time each step.

Each run opens a lab, builds a plan in it (notebook 10's PATH or notebook 11's five-host plan,
with its per-link delays), captures one ping from the client to the farthest host on every link,
and closes. Figures per step, in ms: median and worst of N runs (one warm-up run not counted).

    *build*          Topology(lab, plan).__enter__(): the agent started, namespaces, links, routes
                     (and the delay lines of delayed links), settled
    *first capture*  net.capture(...) entered, one ping, left: frames read back as packets

Run from the repository's root:

    .venv/bin/python bench/topology.py               # 10 runs of each plan
    .venv/bin/python bench/topology.py --runs 5 --plan routes
"""

from __future__ import annotations

import argparse
import statistics
import time

import netlab
from netlab.core.topology import PATH, Topology


def plans() -> dict[str, tuple]:
    from netlab.lessons.routes.experiments import LINKS, PLAN, SERVER

    return {"path": (PATH, {"ipv6": True}, ("c0", "r1"), "10.2.0.2"),
            "routes": (PLAN, {"ipv6": False}, LINKS, SERVER)}


def one(plan, options: dict, links: tuple, destination: str) -> tuple[float, float, int]:
    with netlab.Lab() as lab:
        t0 = time.perf_counter()
        with Topology(lab, plan, **options) as net:
            t1 = time.perf_counter()
            with net.capture(*links) as cap:
                net.client.run("ping", "-c", "1", "-W", "2", destination)
            t2 = time.perf_counter()
    return (t1 - t0) * 1e3, (t2 - t1) * 1e3, len(cap.packets)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--plan", choices=["path", "routes", "both"], default="both")
    args = parser.parse_args()
    for name, (plan, options, links, destination) in plans().items():
        if args.plan not in (name, "both"):
            continue
        one(plan, options, links, destination)  # warm-up
        builds, captures, frames = [], [], set()
        for _ in range(args.runs):
            b, c, n = one(plan, options, links, destination)
            builds.append(b)
            captures.append(c)
            frames.add(n)
        print(f"{name:<7} build: median {statistics.median(builds):6.1f} ms, worst {max(builds):6.1f} ms;  "
              f"first capture (1 ping): median {statistics.median(captures):6.1f} ms, worst {max(captures):6.1f} ms;  "
              f"frames {sorted(frames)}  ({args.runs} runs)")


if __name__ == "__main__":
    main()
