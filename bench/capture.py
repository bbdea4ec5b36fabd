"""How reliable and how quick is a live capture? Capture N handshakes and count.

Goal: every capture complete (N/N), and the sniffer ready within 50 ms (median), so that a
notebook cell that captures never misses the first SYN nor the last ACK, and never waits long.

Each run does what `netlab.handshake()` does, step by step so each step can be timed: open a lab
(a fresh one per run by default, as a notebook cell does; `--reuse-lab` keeps one), start an
echo server there, start the capture, connect, send a message, read the echo, close, wait until
the kernel has the client's socket in TIME-WAIT, stop the capture. A run is *complete* when the
capture holds SYN, SYN-ACK, ACK, the message both ways, a FIN from each side and, last, the
client's ACK of the server's FIN, with no reset. *Ready* is `Capture.ready_seconds`: from the
sniffer's start to its started_callback. One warm-up run first is not counted.

Run from the repository's root:

    .venv/bin/python bench/capture.py              # 200 runs, a fresh lab each
    .venv/bin/python bench/capture.py --runs 50 --reuse-lab
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import time

import netlab
from netlab.core.conversation import CLIENT_TO_SERVER, SERVER_TO_CLIENT
from netlab.core.stats import percentile

MESSAGE = b"Hello, World!"
GOAL_READY_MS = 50.0


def missing(conv: netlab.Conversation) -> str:
    """Say what a handshake capture lacks ('' when it is complete)."""
    flags = conv.flags()
    if flags[:3] != ["SYN", "SYN-ACK", "ACK"]:
        return f"no full handshake: {flags}"
    if conv.data(CLIENT_TO_SERVER) != MESSAGE or conv.data(SERVER_TO_CLIENT) != MESSAGE:
        return "the message is not there both ways"
    if any(s.has("RST") for s in conv.segments):
        return "a reset"
    fins = {s.direction: s for s in conv.segments if s.has("FIN")}
    if len(fins) != 2:
        return f"FINs from {sorted(fins) or 'nobody'} only"
    last = conv.segments[-1]
    if (last.direction, last.flags) != (CLIENT_TO_SERVER, "ACK") or last.ack != fins[SERVER_TO_CLIENT].seq + 1:
        return f"the last segment is {last.direction} {last.label}, not the client's ACK of the server's FIN"
    return ""


def wait_for_time_wait(lab: netlab.Lab, local: tuple[str, int], timeout: float = 5.0) -> None:
    """Wait until the client's socket is in TIME-WAIT: the final ACK has then been sent."""
    # This client's own socket: with --reuse-lab, earlier runs' TIME-WAIT sockets are still there.
    def there(states):
        return any(s.state == "TIME-WAIT" and s.local == local for s in states)

    if not there(lab.wait_until(there, timeout)):
        raise TimeoutError(f"{local} did not reach TIME-WAIT within {timeout:g} s")


def one_run(shared_lab: netlab.Lab | None) -> dict:
    """Capture one handshake; return its timings in seconds and what it lacks."""
    start = time.perf_counter()
    lab_context = contextlib.nullcontext(shared_lab) if shared_lab else netlab.Lab()
    with lab_context as lab:
        lab_up = time.perf_counter()
        with netlab.echo_server(lab) as server, lab.capture() as cap:
            with lab.create_connection(server.address) as sock:
                local = sock.getsockname()
                sock.sendall(MESSAGE)
                netlab.recv_exactly(sock, len(MESSAGE))
            wait_for_time_wait(lab, local)
    total = time.perf_counter() - start
    conv = netlab.conversations(cap.packets)
    return {
        "lab": lab_up - start,
        "ready": cap.ready_seconds,
        "total": total,
        "missing": missing(conv[0]) if len(conv) == 1 else f"{len(conv)} TCP streams with a SYN captured",
        "table": conv[0].table() if conv else "(no TCP segment)",
    }


def ms(values: list[float]) -> str:
    """Median and 99th percentile of durations in seconds, shown in milliseconds."""
    return f"median {percentile(values, 50) * 1000:7.1f} ms   p99 {percentile(values, 99) * 1000:7.1f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=200, help="handshakes to capture (default 200)")
    parser.add_argument("--reuse-lab", action="store_true",
                        help="one lab for all runs (default: a fresh lab per run, as a notebook does)")
    args = parser.parse_args()

    how = "one lab for all runs" if args.reuse_lab else "a fresh lab per run (what a notebook does)"
    print(f"netlab capture bench: {args.runs} handshakes, {how}")
    began = time.perf_counter()
    with contextlib.ExitStack() as stack:
        shared = stack.enter_context(netlab.Lab()) if args.reuse_lab else None
        one_run(shared)  # warm-up, not counted: it imports scapy's layers in this process (~0.4 s)
        runs = [one_run(shared) for _ in range(args.runs)]
    wall = time.perf_counter() - began

    incomplete = [r for r in runs if r["missing"]]
    complete = len(runs) - len(incomplete)
    ready = [r["ready"] for r in runs]
    ready_ok = statistics.median(ready) * 1000 <= GOAL_READY_MS
    verdict = {True: "PASS", False: "FAIL"}
    print(f"complete          {f'{complete}/{len(runs)}':<41}goal {len(runs)}/{len(runs)}: {verdict[not incomplete]}")
    print(f"capture ready     {ms(ready)}   goal median ≤ {GOAL_READY_MS:g} ms: {verdict[ready_ok]}")
    if not args.reuse_lab:
        print(f"lab start-up      {ms([r['lab'] for r in runs])}")
    print(f"per run, total    {ms([r['total'] for r in runs])}")
    print(f"wall time         {wall:.1f} s (warm-up included)")
    for r in incomplete[:3]:
        print(f"\nincomplete: {r['missing']}\n{r['table']}")
    print(f"\ngoal: {len(runs)}/{len(runs)} complete, median ready ≤ {GOAL_READY_MS:g} ms: "
          f"{verdict[not incomplete and ready_ok]}")

if __name__ == "__main__":
    main()
