"""netlab's bulk transfer against iperf3 on the same loopback: throughput of each and the ratio.

netlab.bulk.transfer moves N bytes (default 10⁹) over one TCP connection in a lab:
the sender `sendall`s a memoryview of one preallocated block, the receiver `recv_into`s one
preallocated bytearray, as two threads of one process. iperf3 (two processes, written in C) moves
the same N bytes on the same lab's loopback, with the same write size and with its default
(128 KiB). Each figure is the best of R runs, the run least disturbed by other work. Then
netlab's transfer with other buffer sizes, and a naive version (recv() of new bytes objects,
sendall of bytes slices, 64 KiB) to show what memoryview and recv_into buy, and the receiver in a
second process instead of a thread (one process vs two, as iperf3 runs).

Goal: netlab ≥ 0.7 × iperf3 with the same write size.

Run from the repository's root (under a minute on 2 cores):

    .venv/bin/python bench/bulk.py
    .venv/bin/python bench/bulk.py --bytes 2000000000 --runs 5
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time

import netlab

GOAL = 0.7
MiB = 1 << 20


def naive(lab: netlab.Lab, nbytes: int, chunk: int = 65536) -> float:
    """The first version one writes: slices of bytes to send, a new bytes object per recv. Returns Gbit/s."""
    data = bytes(nbytes)
    got = {}
    with lab.create_server(backlog=1) as listener:
        def receive() -> None:
            conn, _ = listener.accept()
            with conn:
                total = 0
                while chunk_in := conn.recv(chunk):
                    total += len(chunk_in)
                got["bytes"], got["end"] = total, time.perf_counter()

        receiver = threading.Thread(target=receive, daemon=True)
        receiver.start()
        with lab.create_connection(listener.getsockname(), timeout=60) as sock:
            start = time.perf_counter()
            for offset in range(0, nbytes, chunk):
                sock.sendall(data[offset:offset + chunk])  # each slice copies the chunk
            sock.shutdown(socket.SHUT_WR)
            receiver.join(60)
    assert got.get("bytes") == nbytes, got
    return nbytes * 8 / (got["end"] - start) / 1e9


# The receiver as a program of its own in the lab: it prints its port, then the bytes it got and when.
_RECEIVER = """
import socket, time
with socket.create_server(("127.0.0.1", 0), backlog=1) as listener:
    print(listener.getsockname()[1], flush=True)
    listener.settimeout(60)
    conn, _ = listener.accept()
    with conn:
        view, total = memoryview(bytearray({buffer})), 0
        while n := conn.recv_into(view):
            total += n
print(total, time.perf_counter(), flush=True)
"""


def two_processes(lab: netlab.Lab, nbytes: int, buffer: int = MiB) -> float:
    """Sender here, receiver in a separate process (as iperf3 runs): no GIL shared between them. Returns Gbit/s."""
    block = memoryview(bytes(buffer))
    with lab.popen([sys.executable, "-c", _RECEIVER.format(buffer=buffer)], stdout=subprocess.PIPE, text=True) as proc:
        try:
            port = int(proc.stdout.readline())
            with lab.create_connection(("127.0.0.1", port), timeout=60) as sock:
                start = time.perf_counter()
                full, rest = divmod(nbytes, buffer)
                for _ in range(full):
                    sock.sendall(block)
                sock.sendall(block[:rest])
                sock.shutdown(socket.SHUT_WR)
                total, end = proc.stdout.readline().split()
        finally:
            proc.kill()
    assert int(total) == nbytes, total
    # perf_counter is CLOCK_MONOTONIC on Linux: one clock for every process on the machine.
    return nbytes * 8 / (float(end) - start) / 1e9


def best(runs: int, measure) -> float:
    return max(measure() for _ in range(runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--bytes", type=int, default=1_000_000_000, help="bytes per transfer (default 10⁹)")
    parser.add_argument("--runs", type=int, default=5, help="runs per figure; the best counts (default 5)")
    args = parser.parse_args()
    bulk = netlab.bulk
    n, runs = args.bytes, args.runs

    print(f"bulk bench: {n / 1e6:.0f} MB per transfer, best of {runs}; {os.cpu_count()} cores, "
          f"load average {os.getloadavg()[0]:.1f} before the run (other work lowers every figure)")
    began = time.perf_counter()
    same = bulk.compare(n, runs=runs, same_writes=True)
    print(same.transfer)
    if same.iperf is None:
        print("iperf3 is not installed (apt-get install iperf3): nothing to compare with")
        return
    default = bulk.compare(n, runs=runs, same_writes=False)
    print(f"{same.iperf} with 1024 KiB writes (-l 1M)")
    print(f"{default.iperf} with its default 128 KiB writes")
    ratio = same.ratio
    print(f"ratio netlab / iperf3, same 1 MiB writes: {ratio:.2f}   goal ≥ {GOAL}: {'PASS' if ratio >= GOAL else 'FAIL'}")
    print(f"ratio netlab / iperf3 with its defaults:  {default.ratio:.2f}")

    print("\nnetlab's buffer size (bytes per sendall / recv_into), best of", runs)
    with netlab.Lab() as lab:
        for size in (64 * 1024, 256 * 1024, MiB, 4 * MiB):
            rate = best(runs, lambda size=size: bulk.transfer(n, buffer=size, lab=lab).gbit_per_second)
            print(f"  {size // 1024:>5} KiB  {rate:5.1f} Gbit/s")
        rate = best(runs, lambda: two_processes(lab, n))
        print(f"   1024 KiB, receiver in a second process (like iperf3)  {rate:5.1f} Gbit/s")
        rate = best(runs, lambda: naive(lab, n))
        print(f"  naive 64 KiB (bytes slices, recv() of new objects)  {rate:5.1f} Gbit/s")
    print(f"\nwall time {time.perf_counter() - began:.0f} s")


if __name__ == "__main__":
    main()
