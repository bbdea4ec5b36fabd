"""Is parsing pipelined HTTP linear in the bytes? `parse_messages` on 1, 2 and 8 MB of requests.

Goal (issue 26): twice the bytes take about twice the time. Before, each message was parsed
from a copy of all the bytes after it, so 2 MB took 3.4 × the time of 1 MB (358 and 1,203 ms).
The input is GET requests of about 100 bytes back to back, as a client pipelining on one
connection sends them; the best of `--repeat` runs counts (CPU time of this process).

Run from the repository's root:

    .venv/bin/python bench/http_parse.py
    .venv/bin/python bench/http_parse.py --sizes 1 2 8 16 --repeat 5
"""

from __future__ import annotations

import argparse
import time

from netlab.core.http import parse_messages

REQUEST = b"GET /page/%06d HTTP/1.1\r\nHost: lab.example\r\nAccept: */*\r\nUser-Agent: bench\r\n\r\n"


def pipelined(megabytes: float) -> tuple[bytes, int]:
    """About `megabytes` MB of requests back to back, and how many."""
    one = len(REQUEST % 0)
    count = int(megabytes * 1_000_000) // one
    return b"".join(REQUEST % n for n in range(count)), count


def best_seconds(data: bytes, count: int, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        messages = parse_messages(data, "request")
        best = min(best, time.process_time() - start)
        assert len(messages) == count, (len(messages), count)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=float, nargs="+", default=[1, 2, 8], help="MB of requests (default 1 2 8)")
    parser.add_argument("--repeat", type=int, default=3, help="runs per size; the best counts (default 3)")
    args = parser.parse_args()
    print(f"{'MB':>5} {'requests':>9} {'ms':>8} {'µs/request':>11} {'ms per MB':>10}")
    for size in args.sizes:
        data, count = pipelined(size)
        seconds = best_seconds(data, count, args.repeat)
        print(f"{size:>5g} {count:>9,} {seconds * 1000:>8.0f} {seconds / count * 1e6:>11.2f} {seconds * 1000 / size:>10.0f}")


if __name__ == "__main__":
    main()
