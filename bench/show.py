"""How long does `python -m netlab show` take on a large capture, next to scapy and tshark?

Goal (issue 16): time grows linearly with the packets, whatever the number of streams; netlab
takes at most 2 × the time scapy itself needs to read the same file (the floor for a tool built
on scapy), and at most 10 × tshark's time on captures of 5,000 packets or more where scapy's
floor allows it (where scapy's own reading already takes more than 10 × tshark, no scapy-based
tool can meet that, and the table says so).

Captures are made here, in a temporary folder: N packets of complete TCP connections (handshake,
data segments of 100 bytes each acknowledged, close) over Ethernet, either a few long streams
("few": 2) or many short ones ("many": one per 33 packets, 300 in 10,000). Each of the three
programs runs as a separate process, as a user runs it, and the best of `--repeat` runs counts:
- netlab: `python -m netlab show FILE` (every stream's table, output thrown away);
- scapy: `python -c "import scapy.all; scapy.all.rdpcap(FILE)"`, scapy reading the file and
  nothing else;
- tshark: `tshark -r FILE -T fields -e tcp.stream -e tcp.seq -e tcp.ack -e tcp.len` (its TCP
  analysis with relative numbers, the same columns). Without tshark its column says so.
Times are CPU seconds (user + system) of each process, start-up included (about 1 s of Python
imports for netlab and scapy): on a shared machine wall-clock time says more about the other
users than about the program (load averages of 15 on 2 cores were seen while this was written).

Run from the repository's root:

    .venv/bin/python bench/show.py                      # 1,000 to 100,000 packets
    .venv/bin/python bench/show.py --sizes 1000 10000 --repeat 1
"""

from __future__ import annotations

import argparse
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SIZES = [1_000, 5_000, 10_000, 30_000, 100_000]
PACKETS_PER_SHORT_STREAM = 33  # 300 streams in 10,000 packets, as in the issue


def _templates() -> dict[str, bytes]:
    """One Ethernet/IPv4/TCP frame per kind of segment, built once by scapy; the generator then
    patches ports and numbers into copies (checksums are left as they are: no reader checks them)."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    def frame(flags: str, data: bytes = b"") -> bytes:
        pkt = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / IP(src="10.0.0.1", dst="10.0.0.2") / TCP(
            sport=1, dport=2, flags=flags, window=512, options=[("MSS", 1460), ("WScale", 7)] if "S" in flags else [])
        return bytes(pkt / Raw(data) if data else pkt)

    return {"S": frame("S"), "SA": frame("SA"), "A": frame("A"), "PA": frame("PA", b"x" * 100), "FA": frame("FA")}


def _segment(templates: dict[str, bytes], kind: str, forward: bool, port: int, seq: int, ack: int) -> bytes:
    raw = bytearray(templates[kind])
    if not forward:  # swap the addresses (IP bytes 26..33) and the ports
        raw[26:30], raw[30:34] = raw[30:34], raw[26:30]
    sport, dport = (port, 80) if forward else (80, port)
    struct.pack_into("!HHII", raw, 34, sport, dport, seq % 2**32, ack % 2**32)
    return bytes(raw)


def _connection(templates: dict[str, bytes], port: int, packets: int):
    """The frames of one connection of about `packets` segments: handshake, data and ACKs, close."""
    c, s = 1000 * port, 7000 * port
    yield _segment(templates, "S", True, port, c, 0)
    yield _segment(templates, "SA", False, port, s, c + 1)
    yield _segment(templates, "A", True, port, c + 1, s + 1)
    sent = 0
    for _ in range(max(0, (packets - 6) // 2)):
        yield _segment(templates, "PA", True, port, c + 1 + sent, s + 1)
        sent += 100
        yield _segment(templates, "A", False, port, s + 1, c + 1 + sent)
    yield _segment(templates, "FA", True, port, c + 1 + sent, s + 1)
    yield _segment(templates, "FA", False, port, s + 1, c + 2 + sent)
    yield _segment(templates, "A", True, port, c + 2 + sent, s + 2)


def write_capture(path: Path, packets: int, streams: int) -> int:
    """Write a pcap of `streams` connections of about packets/streams segments each, interleaved
    two at a time as on a busy link; return the number of packets written."""
    templates = _templates()
    per_stream = packets // streams
    written = 0
    with path.open("wb") as out:
        out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        conns = [_connection(templates, 20000 + n, per_stream) for n in range(streams)]
        t = 1_700_000_000.0
        for first in range(0, streams, 2):  # two connections at a time, their segments alternating
            pair = conns[first:first + 2]
            while pair:
                for conn in list(pair):
                    frame = next(conn, None)
                    if frame is None:
                        pair.remove(conn)
                        continue
                    t += 0.0001
                    out.write(struct.pack("<IIII", int(t), int(t % 1 * 1e6), len(frame), len(frame)) + frame)
                    written += 1
    return written


def best_time(argv: list[str], repeat: int) -> float:
    """Least CPU time (user + system, seconds) of `repeat` runs of a program, which must succeed."""
    times = []
    for _ in range(repeat):
        process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
        deadline = time.monotonic() + 1800
        while True:  # wait4 gives the child's own CPU time, not that of earlier children
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                process.kill()
                raise TimeoutError(f"{argv[0]} took more than 30 minutes")
            time.sleep(0.02)
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode:
            raise RuntimeError(f"{' '.join(argv)} failed with exit status {process.returncode}")
        times.append(usage.ru_utime + usage.ru_stime)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=SIZES, help="packets per capture")
    parser.add_argument("--repeat", type=int, default=2, help="runs of each program; the best counts (default 2)")
    args = parser.parse_args()
    tshark = shutil.which("tshark")
    python = sys.executable
    print("CPU seconds of each program; µs/packet is netlab's")
    print(f"{'packets':>8} {'streams':>7}  {'netlab s':>8} {'scapy s':>8} {'tshark s':>8}  "
          f"{'µs/packet':>9}  {'÷ scapy':>7} {'÷ tshark':>8}  goal")
    with tempfile.TemporaryDirectory() as folder:
        for size in args.sizes:
            for streams in (2, max(2, size // PACKETS_PER_SHORT_STREAM)):
                path = Path(folder) / f"{size}-{streams}.pcap"
                packets = write_capture(path, size, streams)
                netlab_s = best_time([python, "-m", "netlab", "show", str(path)], args.repeat)
                scapy_s = best_time([python, "-c", f"import scapy.all; scapy.all.rdpcap({str(path)!r})"], args.repeat)
                tshark_s = best_time([tshark, "-r", str(path), "-T", "fields", "-e", "tcp.stream", "-e", "tcp.seq",
                                      "-e", "tcp.ack", "-e", "tcp.len"], args.repeat) if tshark else None
                verdict = "met" if netlab_s <= 2 * scapy_s else "NOT met (÷ scapy)"
                if tshark_s is not None and packets >= 5_000 and netlab_s > 10 * tshark_s:
                    floor_allows = scapy_s <= 10 * tshark_s
                    verdict += "; ÷ tshark > 10: " + ("NOT met" if floor_allows else "scapy's floor alone is over 10 ×")
                print(f"{packets:>8} {streams:>7}  {netlab_s:>8.2f} {scapy_s:>8.2f} "
                      f"{'—' if tshark_s is None else f'{tshark_s:.2f}':>8}  {netlab_s / packets * 1e6:>9.0f}  "
                      f"{netlab_s / scapy_s:>7.2f} {'—' if tshark_s is None else f'{netlab_s / tshark_s:.1f}':>8}  {verdict}",
                      flush=True)
    if tshark is None:
        print("(tshark is not installed: its column is empty; ./run test installs it, or apt-get install tshark)")


if __name__ == "__main__":
    main()
