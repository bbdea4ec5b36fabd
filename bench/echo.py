"""Three echo servers under the same load: requests per second and p99 at each concurrency.

One run puts the same load on a thread-per-connection server, a `selectors` event loop and an
`asyncio` server (netlab.concurrency), in one lab: C clients (default 1, 10, 100, 500) each sending
M messages of 32 bytes, one at a time, from separate load-generator processes. It prints, per
model and C, echoes per second, p50 and p99 round-trip times, the server's threads and context
switches per echo, and CPU time per echo on each side; then each model's rate relative to the
fastest at each C; then whether the load generator limited the figures: how much of each run the
busiest generator spent working, and the largest C again with half and twice as many generator
processes. Each point is the fastest of --rounds interleaved runs (3 by default; the table's
spread column says how far the slowest fell below it).

Run from the repository's root (a few minutes on 2 cores; --rounds 1 for a single pass):

    .venv/bin/python bench/echo.py
    .venv/bin/python bench/echo.py --clients 1,50,500 --messages 400 --generators 3
"""

from __future__ import annotations

import argparse
import os
import time

import netlab


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", default="1,10,100,500", help="client counts C, comma-separated (default 1,10,100,500)")
    parser.add_argument("--messages", type=int, default=200, help="messages per client M (default 200)")
    parser.add_argument("--generators", type=int, default=2, help="load-generator processes (default 2)")
    parser.add_argument("--rounds", type=int, default=3, help="runs per point, the fastest kept (default 3)")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    concurrency = netlab.concurrency

    cores, load = os.cpu_count(), os.getloadavg()[0]
    print(f"echo bench: {cores} cores, load average {load:.1f} before the run "
          f"(other work on the machine lowers and scatters every figure below)")
    began = time.perf_counter()
    results = concurrency.compare(clients=clients, messages=args.messages, generators=args.generators,
                                  rounds=args.rounds)
    print(results.why)
    print()
    print(results.table())

    print("\nechoes per second relative to the fastest model at each C:")
    print(f"{'clients':>8}" + "".join(f"{m:>11}" for m in results.models))
    for c in results.clients:
        ratios = results.ratios(c)
        print(f"{c:>8}" + "".join(f"{ratios[m]:>11.2f}" for m in results.models))
    top = results.clients[-1]
    pairs = [("selectors", "threads"), ("asyncio", "threads"), ("asyncio", "selectors")]
    print(f"at {top} clients: " + ", ".join(
        f"{a}/{b} {results.point(a, top).requests_per_second / results.point(b, top).requests_per_second:.2f}"
        for a, b in pairs))
    print(f"p99 at {top} clients: " + ", ".join(f"{m} {results.point(m, top).p99_ms:.1f} ms" for m in results.models))

    print(f"\nIs the load generator the bottleneck? At {top} clients, with fewer and more generator processes:")
    counts = sorted({max(1, args.generators // 2), args.generators, 2 * args.generators})
    others = {g: concurrency.compare(clients=[top], messages=args.messages, generators=g, rounds=args.rounds,
                                     progress=False)
              for g in counts if g != args.generators}
    runs = {g: (others[g] if g in others else results) for g in counts}
    for model in results.models:
        cells = [f"{g} → {runs[g].point(model, top).requests_per_second:6.0f}/s, "
                 f"busiest {runs[g].point(model, top).generator_busy:4.0%}"
                 for g in counts]
        print(f"  {model:<10} " + "   ".join(cells))
    print("  (a generator busy near 100 % limits the rate; well under, it was waiting for echoes or for a core.")
    print("   A rate that does not rise with more generators was set by the server; on 2 shared cores")
    print("   expect ±20 % between any two runs, most of all for the thread model at high C)")
    more_correct = all(r.correct for r in others.values())
    print(f"\nall echoes correct: {results.correct and more_correct}; wall time {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
