"""The scripted peer's program: 10.0.0.2's TCP, played on peer0 as a script says (see netlab.core.peer).

`python -m netlab.core.inlab.peer` reads its order (the script, as JSON) on stdin, says "ready",
answers the lab kernel's frames on peer0 with frames built by scapy, and ends when the
conversation is over, its time bound passes or its stdin closes. It captures peer0 with the
kernel's time stamps, both directions on one packet socket, and writes the frames as a pcap and
its log as JSON into the folder its order names. It imports scapy's layers to build and read
frames, and nothing of netlab's analysis.
"""

from __future__ import annotations

import heapq
import json
import os
import random
import select
import socket
import sys
import time
from pathlib import Path
from typing import Any

from netlab.core.inlab.frames import SO_TIMESTAMPNS, recv_stamped, write_pcap

LAB_ADDRESS = "10.0.0.1"  # the kernel's side of the link (lab0)
PEER_ADDRESS = "10.0.0.2"  # the remote host the peer plays (behind peer0)
MTU = 1500  # bytes: Ethernet's, so segments look as they do on a real network
MSS = MTU - 20 - 20  # bytes of payload in a full segment: MTU minus the IP and TCP headers
LAB_MAC = "02:00:00:00:00:01"  # fixed, locally administered: the frames are the same every run
PEER_MAC = "02:00:00:00:00:02"
MAX_DURATION = 60.0  # seconds: no script runs longer
# Frames the peer handles before it looks at its clock and its stdin again. It needs about 1 ms
# a frame, and a kernel sending at full speed answers every ACK with new segments, so the
# socket's queue may never run empty: without this bound a busy peer would miss its time
# bound and its order to stop.
_FRAMES_PER_PASS = 64

# ---------------------------------------------------------------------------
# The peer itself: runs in the lab, its script on stdin.

_ETH_P_ALL = 0x0003
_PACKET_OUTGOING = 4


class _Tcp:
    """10.0.0.2's TCP for one connection, as the script says; the peer process's whole logic."""

    def __init__(self, order: dict[str, Any], sock: socket.socket, started: float) -> None:
        self.o = order
        self.sock = sock
        self.started = started
        self.log: list[tuple[float, str]] = []
        self.state = "LISTEN"
        self.done = False
        self.finished = False  # done by the conversation or the script, not by a time bound
        self.client: tuple[str, int] | None = None
        self.iss = random.getrandbits(32)
        self.snd_nxt = self.iss
        self.irs = 0
        self.rcv_nxt = 0
        self.segments = 0  # data segments arrived so far
        self.unread = 0  # bytes received that the peer's program has not read yet
        self.delivered = 0
        self.ooo: dict[int, bytes] = {}  # out-of-order data by sequence number
        self.fin_in = False
        self.paused_until: float | None = None
        self.pause_done = False
        self.timers: list[tuple[float, int, str]] = []  # (when, tie-break, what)
        self.syns_ignored = 0
        self.duplicates = {int(k): v for k, v in order["duplicates"].items()}

    # -- helpers ------------------------------------------------------------

    def note(self, what: str) -> None:
        self.log.append((round(time.monotonic() - self.started, 6), what))

    def rel(self, seq: int) -> int:
        return (seq - self.irs) % 2**32

    def window(self) -> int:
        return max(0, self.o["window"] - self.unread)

    def send(self, flags: str, *, seq: int | None = None, ack: int | None = None, window: int | None = None,
             options: list | None = None, corrupt: bool = False) -> None:
        from scapy.layers.inet import IP, TCP
        from scapy.layers.l2 import Ether

        tcp = TCP(sport=self.o["port"], dport=self.client[1], flags=flags,
                  seq=self.snd_nxt if seq is None else seq, ack=self.rcv_nxt if ack is None else ack,
                  window=self.window() if window is None else window, options=options or [])
        frame = Ether(src=PEER_MAC, dst=LAB_MAC) / IP(src=PEER_ADDRESS, dst=self.client[0]) / tcp
        if corrupt:
            frame = Ether(bytes(frame))
            frame[TCP].chksum ^= 0x5A5A  # any other value is wrong; the receiver's sum will not match
        self.sock.send(bytes(frame))

    def ack_now(self, what: str | None = None, corrupt: bool = False) -> None:
        self.send("A", corrupt=corrupt)
        if what:
            self.note(what)

    def later(self, seconds: float, what: str) -> None:
        heapq.heappush(self.timers, (time.monotonic() + seconds, len(self.log) + len(self.timers), what))

    def respond(self, corrupt: bool = False) -> None:
        """Acknowledge what has arrived, now or `ack_delay` seconds late (with the numbers of now)."""
        if not self.o["acks"]:
            return
        if self.o["ack_delay"]:
            self.later(self.o["ack_delay"], json.dumps(["ack", self.rcv_nxt, self.window(), corrupt]))
        else:
            self.ack_now(corrupt=corrupt)

    # -- timers ---------------------------------------------------------------

    def fire(self, now: float) -> None:
        while self.timers and self.timers[0][0] <= now:
            _, _, what = heapq.heappop(self.timers)
            kind, *args = json.loads(what)
            if kind == "ack":  # a late ACK carries the numbers of when it was due
                fin = args[3:] == ["fin"]
                self.send("FA" if fin else "A", ack=args[0], window=args[1], corrupt=args[2])
                if fin:
                    self.snd_nxt = (self.snd_nxt + 1) % 2**32
            elif kind == "read":
                read, self.unread = self.unread, 0
                self.paused_until = None
                self.note(f"the program reads {read} bytes: window reopens to {self.window()}")
                if self.state == "ESTABLISHED" or self.fin_in:
                    self.ack_now()
                self.maybe_close()

    def next_timer(self) -> float | None:
        return self.timers[0][0] if self.timers else None

    # -- segments -----------------------------------------------------------------

    def on_frame(self, data: bytes) -> None:
        from scapy.layers.inet import IP, TCP
        from scapy.layers.l2 import Ether

        frame = Ether(data)
        if IP not in frame or TCP not in frame or frame[IP].dst != PEER_ADDRESS:
            return
        ip, tcp = frame[IP], frame[TCP]
        if tcp.dport != self.o["port"]:
            return
        flags = str(tcp.flags)
        length = max(0, ip.len - ip.ihl * 4 - tcp.dataofs * 4)
        payload = bytes(tcp.payload)[:length]
        if "S" in flags and "A" not in flags:
            self.on_syn(ip, tcp)
            return
        if self.client is None or (ip.src, tcp.sport) != self.client or self.state in ("LISTEN", "CLOSED"):
            return
        if "R" in flags:
            self.note("reset from the kernel: connection closed")
            self.state, self.done, self.finished = "CLOSED", True, True
            return
        if self.state == "SYN-RECEIVED" and "A" in flags and tcp.ack == (self.iss + 1) % 2**32:
            self.state = "ESTABLISHED"
            self.note("handshake complete")
            self.check_pause()
        if self.state == "LAST-ACK" and "A" in flags and tcp.ack == self.snd_nxt:
            self.state, self.done, self.finished = "CLOSED", True, True
            self.note("the kernel acknowledged our FIN: connection closed")
            return
        if length:
            self.on_data(tcp.seq, payload)
        elif "F" not in flags and tcp.seq == (self.rcv_nxt - 1) % 2**32 and self.state == "ESTABLISHED":
            self.note(f"window probe (seq {self.rel(tcp.seq)}): answered with window {self.window()}")
            self.ack_now()
        if "F" in flags and self.o["acks"] and not self.fin_in and (tcp.seq + length) % 2**32 == self.rcv_nxt:
            self.fin_in = True
            self.rcv_nxt = (self.rcv_nxt + 1) % 2**32
            self.note("FIN from the kernel")
            self.maybe_close()

    def on_syn(self, ip: Any, tcp: Any) -> None:
        how = self.o["syn"]
        if self.state not in ("LISTEN", "SYN-RECEIVED"):
            return
        if how == "ignore":
            self.syns_ignored += 1
            self.note(f"SYN number {self.syns_ignored} ignored")
            return
        self.client = (ip.src, tcp.sport)
        self.irs = tcp.seq
        self.rcv_nxt = (tcp.seq + 1) % 2**32
        if how == "refuse":
            self.send("RA", seq=0)
            self.note("SYN refused with RST")
            self.state, self.done, self.finished = "CLOSED", True, True
            return
        again = self.state == "SYN-RECEIVED"
        self.snd_nxt = self.iss
        self.send("SA", options=[("MSS", MSS)])
        self.snd_nxt = (self.iss + 1) % 2**32
        self.state = "SYN-RECEIVED"
        self.note(("SYN again: SYN-ACK again" if again else "SYN: SYN-ACK") + f", MSS {MSS}, window {self.window()}")

    def on_data(self, seq: int, payload: bytes) -> None:
        self.segments += 1
        n, o = self.segments, self.o
        where = f"data segment {n} (seq {self.rel(seq)}, {len(payload)} bytes)"
        if n in o["drops"]:
            self.note(f"{where}: dropped")
        elif o["reset_at"] == n:
            self.send("RA")
            self.note(f"{where}: answered with RST")
            self.state, self.done, self.finished = "CLOSED", True, True
        elif n in self.duplicates:
            for _ in range(self.duplicates[n]):
                self.ack_now()
            self.note(f"{where}: thrown away, {self.duplicates[n]} duplicate ACKs of {self.rel(self.rcv_nxt)}")
        else:
            kept = self.take(seq, payload)
            if n in o["corrupt"] and o["acks"]:
                self.ack_now(corrupt=True)
                self.note(f"{where}: {kept}, ACK {self.rel(self.rcv_nxt)} sent with a wrong checksum")
            else:
                self.respond()
                self.note(f"{where}: {kept}" + (", not acknowledged" if not o["acks"] else ""))
            self.check_pause()
        if o["stop_at"] == n:
            self.note(f"stopping after {n} data segments, as the script says")
            self.done = self.finished = True

    def take(self, seq: int, payload: bytes) -> str:
        """Keep the new bytes that fit in the window; say what became of the segment."""
        offset = (seq - self.rcv_nxt) % 2**32
        if offset >= 2**31:  # (partly) old data: keep only what is new
            skip = 2**32 - offset
            if skip >= len(payload):
                return "had it already"
            payload, offset = payload[skip:], 0
        room = self.window() - offset
        if room <= 0:
            return "no room in the window, not kept"
        payload = payload[:room]
        if offset:
            # A receiver keeps what arrives after a gap, but can acknowledge only up to the gap.
            self.ooo[(self.rcv_nxt + offset) % 2**32] = payload
            return "after a gap: kept aside"
        while payload:
            self.rcv_nxt = (self.rcv_nxt + len(payload)) % 2**32
            self.delivered += len(payload)
            if self.paused_until is not None:
                self.unread += len(payload)
            payload = self.ooo.pop(self.rcv_nxt, b"")
        return "kept"

    def check_pause(self) -> None:
        pause = self.o["pause"]
        if pause and not self.pause_done and self.delivered >= pause[0]:
            self.pause_done = True
            self.paused_until = time.monotonic() + pause[1]
            self.later(pause[1], json.dumps(["read"]))
            self.note(f"the program stops reading for {pause[1]:g} s")

    def maybe_close(self) -> None:
        """Once the kernel's FIN is in and everything is read, the peer's program closes too."""
        if self.fin_in and self.unread == 0 and self.state == "ESTABLISHED":
            self.state = "LAST-ACK"
            if self.o["ack_delay"]:
                self.later(self.o["ack_delay"], json.dumps(["ack", self.rcv_nxt, self.window(), False, "fin"]))
            else:
                self.send("FA")
                self.snd_nxt = (self.snd_nxt + 1) % 2**32
            self.note("the program closes: FIN")
        elif self.fin_in and self.state == "ESTABLISHED":
            self.ack_now()


def _serve() -> None:
    """The peer process: read the script, listen on peer0, play TCP until done, write log and pcap."""
    order = json.loads(sys.stdin.buffer.readline())
    out = Path(order["out"])
    import scapy.layers.inet  # noqa: F401  (the layers the peer builds and reads)
    import scapy.layers.l2  # noqa: F401

    # Two sockets: the kernel never hands a frame back to the packet socket that sent it, so
    # one socket sends (protocol 0: it receives nothing) and the other sees every frame on
    # peer0, the kernel's as they arrive and the sender's as they leave.
    sender = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0)
    sender.bind(("peer0", 0))
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
    sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    sock.bind(("peer0", 0))
    sock.setblocking(False)
    started = time.monotonic()
    tcp = _Tcp(order, sender, started)
    frames: list[tuple[bytes, float]] = []
    print("ready", flush=True)
    why_end = _play(tcp, sock, frames, started + min(float(order["duration"]), MAX_DURATION), order["duration"])
    _collect_last_frames(sock, frames)
    sock.close()
    sender.close()
    tcp.note(f"peer ends: {why_end}")
    write_pcap(out / "link.pcap.part", frames)
    os.replace(out / "link.pcap.part", out / "link.pcap")
    # The log last, whole or not at all: its presence says the capture is complete too.
    (out / "log.json.part").write_text(json.dumps({"log": tcp.log, "finished": tcp.finished}))
    os.replace(out / "log.json.part", out / "log.json")


def _play(tcp: _Tcp, sock: socket.socket, frames: list[tuple[bytes, float]], deadline: float, duration: float) -> str:
    """Answer frames and fire timers until the conversation is over, the deadline passes or stdin closes; say which."""
    stdin = sys.stdin.buffer.fileno()
    while not tcp.done:
        now = time.monotonic()
        tcp.fire(now)
        if now >= deadline:
            return f"time bound of {duration:g} s reached"
        wake = min(t for t in (deadline, tcp.next_timer()) if t is not None)
        ready = select.select([sock, stdin], [], [], max(0.0, wake - now))[0]
        if stdin in ready and not os.read(stdin, 4096):
            return "told to stop"
        for _ in range(_FRAMES_PER_PASS):
            if tcp.done or time.monotonic() >= deadline:
                break
            try:
                data, stamp, addr = recv_stamped(sock)
            except BlockingIOError:
                break
            frames.append((data, stamp))
            if addr[2] != _PACKET_OUTGOING:
                tcp.on_frame(data)
            tcp.fire(time.monotonic())
    return "the connection is over"


def _collect_last_frames(sock: socket.socket, frames: list[tuple[bytes, float]], wait: float = 0.05) -> None:
    """Frames the peer sent last are still on their way back to this socket: collect them (`wait` seconds at most)."""
    end = time.monotonic() + wait
    while time.monotonic() < end and select.select([sock], [], [], end - time.monotonic())[0]:
        try:
            data, stamp, _addr = recv_stamped(sock)
        except BlockingIOError:
            break
        frames.append((data, stamp))


if __name__ == "__main__":
    _serve()
    # Leave without the interpreter's teardown, as the lab's helper does: unloading scapy's
    # classes takes about 0.2 s, and every transfer waits for this process to end.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)
