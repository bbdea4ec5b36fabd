"""The bottleneck's receiver: a real Linux host in its own network namespace, a child of the lab's.

`python -m netlab.core.inlab.receiver` unshares a network namespace (from inside the lab's user
namespace), brings up `lo`, says `pid N` (so that its end of the link can be moved in), reads
one order (a JSON line: its address, the sender's address and MAC, a receive buffer), configures
its end of the link, then discards what arrives on the sink port (RFC 863) and echoes the echo
port (RFC 862) until its stdin closes. Where the system refuses the namespace it says
`refused ERRNO` and ends, so that the notebook side falls back to a recording at once.
"""

from __future__ import annotations

import ctypes
import json
import os
import select
import socket
import subprocess
import sys
import threading
from typing import Any

from netlab.core.inlab.frames import no_checksum_offload
from netlab.core.programs import command

CLONE_NEWNET = 0x40000000  # <linux/sched.h>
MAX_LIFE = 120.0  # seconds: it ends by then even if its stdin never closes


def main() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(CLONE_NEWNET) != 0:  # a namespace inside the lab's, which a container's profile may refuse
        print(f"refused {ctypes.get_errno()}", flush=True)
        return
    subprocess.run(command(["ip", "link", "set", "lo", "up"]), check=True, capture_output=True, timeout=5)
    print(f"pid {os.getpid()}", flush=True)
    order = json.loads(sys.stdin.buffer.readline())
    device, address = order["device"], order["address"]
    for argv in (
        ["ip", "link", "set", device, "addrgenmode", "none"],
        ["ip", "addr", "add", f"{address}/24", "dev", device],
        ["ip", "link", "set", device, "up"],
        ["ip", "neigh", "replace", order["sender"], "lladdr", order["mac"], "dev", device, "nud", "permanent"],
    ):
        subprocess.run(command(argv), check=True, capture_output=True, timeout=5)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as any_socket:
        no_checksum_offload(any_socket, device)  # its ACKs cross the delay line too
    servers = [_listen(address, order["sink"], order.get("rcvbuf")), _listen(address, order["echo"], None)]
    for server, echo in zip(servers, (False, True), strict=True):
        threading.Thread(target=_accept, args=(server, echo), daemon=True).start()
    print("ready", flush=True)
    select.select([sys.stdin], [], [], MAX_LIFE)  # until told to stop (stdin closes)
    for server in servers:
        server.close()


def _listen(address: str, port: int, rcvbuf: int | None) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if rcvbuf:
        # Before listen(): the window scale is chosen from the buffer at the handshake.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.bind((address, port))
    sock.listen(16)
    return sock


def _serve(conn: socket.socket, echo: bool) -> None:
    with conn:
        conn.settimeout(MAX_LIFE)
        try:
            while data := conn.recv(1 << 20):
                if echo:
                    conn.sendall(data)
        except OSError:
            pass


def _accept(server: socket.socket, echo: bool) -> Any:
    while True:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        if echo:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_serve, args=(conn, echo), daemon=True).start()


if __name__ == "__main__":
    main()
