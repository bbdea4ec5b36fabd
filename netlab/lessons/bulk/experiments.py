"""Bulk transfer: one TCP connection moving as many bytes as it can, beside iperf3 on the same link.

Theory of operation
-------------------
`transfer()` sends N bytes over one connection on loopback the way an expert writes it: the
sender `sendall`s a memoryview of one preallocated block, the receiver `recv_into`s one
preallocated bytearray. Both calls release the GIL while the kernel copies, so Python runs once
per block and the time is the kernel's. `iperf3()` runs the C tool network engineers use (server
and client, two processes, `-J` for its JSON report) on the same loopback, and `compare()` puts
the two side by side, each the best of a few runs. Everything runs in a fresh lab, or on the
host's 127.0.0.1 where the lab is refused (`netlab.core.experiment.lab_or_none`).

Rules for this file:
1. Nothing is copied in Python on the transfer's path; a check (CRC-32) is optional because it
   costs CPU time that would be counted as transfer time.
2. Every transfer, process and wait has a timeout; iperf3's server is killed when its test ends
   or fails.
"""

from __future__ import annotations

import json
import socket
import subprocess
import threading
import time
import zlib
from dataclasses import dataclass, field
from typing import Any

from netlab.core import programs
from netlab.core.arguments import check_int, check_seconds
from netlab.core.errors import HelperError
from netlab.core.experiment import lab_or_host
from netlab.core.lab import Lab, read_line
from netlab.core.sockets import listener

__all__ = ["BulkError", "BulkComparison", "Iperf3Result", "Transfer", "compare", "iperf3", "transfer"]

# Seconds a helper thread or process may take to end once its work is over or has failed.
STOP_TIMEOUT = 5.0


class BulkError(HelperError):
    """A bulk transfer or an iperf3 run did not complete (the message says why)."""


@dataclass(frozen=True)
class Transfer:
    """One bulk transfer: bytes moved, how long it took, whether the receiver checked every byte."""

    nbytes: int  # bytes the receiver got
    seconds: float
    buffer: int  # bytes per sendall / recv_into
    checksum_ok: bool | None  # None when not checked (checking costs CPU time)
    where: str

    @property
    def gbit_per_second(self) -> float:
        return self.nbytes * 8 / self.seconds / 1e9

    def __str__(self) -> str:
        return (f"netlab bulk: {self.nbytes / 1e6:.0f} MB in {self.seconds:.3f} s = "
                f"{self.gbit_per_second:.1f} Gbit/s ({self.buffer // 1024} KiB buffers, {self.where})")


def _pattern(buffer: int) -> bytes:
    # Not all zeros: a bug that dropped or repeated a chunk would change the checksum.
    return bytes(range(256)) * (buffer // 256) + bytes(buffer % 256)


def transfer(nbytes: int = 200_000_000, *, buffer: int = 1 << 20, lab: Lab | None = None,
             verify: bool = False, timeout: float = 60.0) -> Transfer:
    """Send `nbytes` over one TCP connection on loopback and time it (in `lab`, or a fresh lab or the host).

    The sender `sendall`s a memoryview of a `buffer`-byte block; the receiver `recv_into`s one
    preallocated bytearray, so no byte is copied in Python. `verify` makes the receiver checksum
    everything (CRC-32) and compare with the sender's. `timeout` (seconds) bounds the whole
    transfer, from connecting to the last byte received.
    """
    check_int("nbytes", nbytes, 1)
    check_int("buffer", buffer, 1)
    check_seconds("timeout", timeout)
    if lab is None:
        with lab_or_host() as (fresh, where, _why):
            return _transfer(nbytes, buffer, fresh, verify, timeout, where)
    return _transfer(nbytes, buffer, lab, verify, timeout, "lab")


def _transfer(nbytes: int, buffer: int, lab: Lab | None, verify: bool, timeout: float, where: str) -> Transfer:
    deadline = time.monotonic() + timeout

    def left() -> float:  # what remains of `timeout`, for the next blocking call
        return max(0.001, deadline - time.monotonic())

    block = _pattern(buffer)
    got: dict[str, Any] = {"bytes": 0}
    sent, failure = 0, None
    with listener(lab, "127.0.0.1", 0, 1) as server:
        server.settimeout(left())
        receiver = threading.Thread(target=_receive, args=(server, buffer, verify, left, got), name="bulk-receiver",
                                    daemon=True)
        receiver.start()
        start = time.perf_counter()
        try:
            sock = lab.create_connection(server.getsockname(), left()) if lab else \
                socket.create_connection(server.getsockname(), left())
            with sock:
                start = time.perf_counter()
                sent = _send(sock, block, nbytes, left)
        except OSError as err:
            failure = err
        finally:
            if failure is not None or sent < nbytes:
                try:  # wake a receiver still waiting in accept(): the sender has given up
                    server.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            # The receiver's own waits end by the deadline; the margin is for a thread that is stuck.
            receiver.join(max(0.0, deadline - time.monotonic()) + STOP_TIMEOUT)
    _raise_any_failure(receiver, got, failure, f"{sent} of {nbytes} bytes sent, {got['bytes']} received", timeout)
    ok = (got["crc"] == _crc_of(block, nbytes) and got["bytes"] == nbytes) if verify else None
    return Transfer(got["bytes"], got["end"] - start, buffer, ok, where)


def _send(sock: socket.socket, block: bytes, nbytes: int, left: Any) -> int:
    """Send `nbytes` as whole blocks from one memoryview (no copy in Python), then the FIN; return the bytes sent."""
    view, sent = memoryview(block), 0
    full, rest = divmod(nbytes, len(block))
    for _ in range(full):
        sock.settimeout(left())
        sock.sendall(view)
        sent += len(block)
    if rest:
        sock.settimeout(left())
        sock.sendall(view[:rest])
        sent += rest
    sock.shutdown(socket.SHUT_WR)  # the receiver's recv_into returns 0: all sent
    return sent


def _receive(server: socket.socket, buffer: int, verify: bool, left: Any, got: dict[str, Any]) -> None:
    """The receiving thread: accept one connection and recv_into one preallocated buffer until the FIN.

    Reports in `got`: bytes so far, the time the last byte came (perf_counter), the CRC-32 if
    `verify`, or the error that stopped it.
    """
    try:
        conn, _ = server.accept()
        with conn:
            view = memoryview(bytearray(buffer))
            total, crc = 0, 0
            conn.settimeout(left())
            while n := conn.recv_into(view):
                total += n
                got["bytes"] = total
                if verify:
                    crc = zlib.crc32(view[:n], crc)
                conn.settimeout(left())
            got["end"] = time.perf_counter()
            got["crc"] = crc
    except OSError as err:
        got["error"] = err


def _crc_of(block: bytes, nbytes: int) -> int:
    """CRC-32 of what the sender sends: `block` over and over, `nbytes` in all."""
    crc = 0
    full, rest = divmod(nbytes, len(block))
    for _ in range(full):
        crc = zlib.crc32(block, crc)
    return zlib.crc32(block[:rest], crc)


def _raise_any_failure(receiver: threading.Thread, got: dict[str, Any], failure: OSError | None, progress: str,
                       timeout: float) -> None:
    if receiver.is_alive():
        raise BulkError(f"the bulk receiver did not finish within {timeout:g} s ({progress})")
    for who, err in (("receiver", got.get("error")), ("sender", failure)):
        if isinstance(err, TimeoutError):
            raise BulkError(f"the bulk transfer did not finish within {timeout:g} s ({progress})")
        if err is not None:
            raise BulkError(f"the bulk {who} failed ({progress}): {type(err).__name__}: {err}")


@dataclass(frozen=True)
class Iperf3Result:
    """What iperf3's client reported (its -J JSON) for one test on loopback."""

    nbytes: int  # bytes the receiving side got
    seconds: float
    where: str
    report: dict = field(repr=False)

    @property
    def gbit_per_second(self) -> float:
        return self.nbytes * 8 / self.seconds / 1e9

    def __str__(self) -> str:
        return (f"iperf3:      {self.nbytes / 1e6:.0f} MB in {self.seconds:.3f} s = "
                f"{self.gbit_per_second:.1f} Gbit/s ({self.where})")


def iperf3(nbytes: int = 200_000_000, *, length: int | None = None, lab: Lab | None = None,
           timeout: float = 60.0) -> Iperf3Result | None:
    """Run iperf3 (server and client, two processes) moving `nbytes` on loopback; None if iperf3 is not installed.

    `length` is iperf3's `-l`, the bytes per write (its default for TCP is 128 KiB). Both run in
    `lab` when given, else in a fresh lab, else on the host's 127.0.0.1. `timeout` (seconds)
    bounds the whole run, the server's start included.
    """
    check_int("nbytes", nbytes, 1)
    if length is not None:
        check_int("length", length, 1)
    check_seconds("timeout", timeout)
    tool = programs.find("iperf3")
    if tool is None:
        return None
    if lab is None:
        with lab_or_host() as (fresh, where, _why):
            return _iperf3(tool, nbytes, length, fresh, timeout, where)
    return _iperf3(tool, nbytes, length, lab, timeout, "lab")


@dataclass(frozen=True)
class BulkComparison:
    """netlab's bulk transfer and iperf3, each the best of a few runs on the same loopback."""

    transfer: Transfer
    iperf: Iperf3Result | None  # None when iperf3 is not installed
    runs: int
    iperf_length: int | None  # bytes per write iperf3 was told to use (None: its default)

    @property
    def ratio(self) -> float | None:
        """netlab's throughput / iperf3's (None without iperf3)."""
        return self.transfer.gbit_per_second / self.iperf.gbit_per_second if self.iperf else None

    def __str__(self) -> str:
        lines = [str(self.transfer)]
        if self.iperf is None:
            lines.append("iperf3:      not installed (Debian/Ubuntu: apt-get install iperf3), so no comparison")
        else:
            writes = f"{self.iperf_length // 1024} KiB writes" if self.iperf_length else "its default 128 KiB writes"
            lines += [f"{self.iperf} with {writes}",
                      f"ratio netlab / iperf3: {self.ratio:.2f} (best of {self.runs} runs each)"]
        return "\n".join(lines)


def compare(nbytes: int = 1_000_000_000, *, buffer: int = 1 << 20, same_writes: bool = True,
            runs: int = 3, timeout: float = 60.0) -> BulkComparison:
    """Time netlab's bulk transfer and iperf3 moving `nbytes` on the same lab's loopback; keep each one's best of `runs`.

    With `same_writes` iperf3 writes `buffer` bytes at a time as netlab does (`-l`); without,
    it keeps its default (128 KiB). The best run is the one least disturbed by other work on the
    machine. Where the lab is refused both run on the host's 127.0.0.1. `timeout` (seconds)
    bounds each run, netlab's and iperf3's.
    """
    check_int("nbytes", nbytes, 1)
    check_int("buffer", buffer, 1)
    check_int("runs", runs, 1)
    check_seconds("timeout", timeout)
    length = buffer if same_writes else None
    with lab_or_host() as (lab, where, _why):
        transfers, perfs = [], []
        for _ in range(runs):
            transfers.append(_transfer(nbytes, buffer, lab, False, timeout, where))
            if (tool := programs.find("iperf3")) is not None:
                perfs.append(_iperf3(tool, nbytes, length, lab, timeout, where))
    return BulkComparison(max(transfers, key=lambda t: t.gbit_per_second),
                      max(perfs, key=lambda p: p.gbit_per_second) if perfs else None, runs, length)


# iperf3 has no port 0: it must be told a port, and a port probed free then released could be
# taken before iperf3 binds it. In a lab the port is free by construction: the lab's kernel is
# told never to hand it out as an ephemeral port (ip_local_reserved_ports), and nothing else in
# a fresh lab binds ports by number. On the host (no lab) a probed port is the best there is.
IPERF3_PORT = 5201


def _iperf3_port(lab: Lab | None) -> int:
    if lab is not None:
        lab.sysctl("net.ipv4.ip_local_reserved_ports", str(IPERF3_PORT))
        return IPERF3_PORT
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _iperf3(tool: str, nbytes: int, length: int | None, lab: Lab | None, timeout: float, where: str) -> Iperf3Result:
    deadline = time.monotonic() + timeout
    port = _iperf3_port(lab)
    start = (lambda argv, **kw: lab.popen(argv, **kw)) if lab else subprocess.Popen
    server = start([tool, "-s", "-1", "-B", "127.0.0.1", "-p", str(port), "--forceflush"],
                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _wait_for_line(server, "listening", timeout=min(10.0, timeout))
        extra = ["-l", str(length)] if length else []
        client = start([tool, "-c", "127.0.0.1", "-p", str(port), "-n", str(nbytes), "-J", *extra],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            out, err = client.communicate(timeout=max(0.001, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            client.kill()
            client.communicate()
            raise BulkError(f"iperf3 did not finish moving {nbytes} bytes within {timeout:g} s") from None
    finally:
        if server.poll() is None:
            server.kill()
        server.communicate(timeout=STOP_TIMEOUT)
    try:
        report = json.loads(out)
    except ValueError:
        raise BulkError(f"iperf3 printed no JSON report: {(err or out).strip()[:200]}") from None
    if "error" in report:
        raise BulkError(f"iperf3 failed: {report['error']}")
    received = report["end"]["sum_received"]
    return Iperf3Result(int(received["bytes"]), float(received["seconds"]), where, report)


def _wait_for_line(proc: subprocess.Popen, word: str, timeout: float) -> None:
    """Read `proc`'s output until a line containing `word`, for at most `timeout` seconds; fail at once if it exits."""
    deadline = time.monotonic() + timeout
    seen: list[str] = []
    while True:
        line = read_line(proc.stdout, max(0.0, deadline - time.monotonic())).decode(errors="replace")
        seen.append(line)
        if word in line:
            return
        if not line and proc.poll() is not None:
            said = "\n".join(seen).strip()[:200] or "no output"
            raise BulkError(f"iperf3's server exited before it was listening (exit status {proc.returncode}): {said}")
        if time.monotonic() >= deadline:
            proc.kill()
            raise BulkError(f"iperf3's server did not start within {timeout:g} s: {' '.join(seen).strip()[:200]}")
