"""The topology's agent: one program in the lab that makes network namespaces and works in each of them.

Started by `netlab.core.topology.Topology` as `python topology_agent.py FD` (by path, so that it
starts in tens of ms without importing netlab or scapy), as root of the lab's user namespace. It
reads one JSON request per message on the Unix socket FD (SOCK_SEQPACKET) and answers each
with one JSON message, plus a file descriptor for a socket it made (a namespace the system refuses
comes back as `refused`: the call and its errno, so the notebook side can fall back to a recording):

    build      make the named namespaces (unshare), then in each: sysctls, an `ip -batch`, offload off;
               then wait until the links have settled (IPv6 link-local addresses made)
    run        run a command in a host's namespace, with a time bound
    socket     create a socket in a host's namespace and hand it back (SCM_RIGHTS)
    capture_start / capture_stop
               raw packet sockets on named interfaces; the frames go to a file when stopped
    spawn / stop
               start a long-running program (a routing daemon) in a host's namespace, output to a
               file; stop it. Every program started is stopped when the agent ends, and dies with
               the agent should it be killed (PR_SET_PDEATHSIG)

The namespaces live as long as the agent holds them (or a socket in them is open): it ends when
its socket to the notebook closes, so a notebook that dies leaves nothing behind. Only the
standard library here: this file knows nothing of the topology it builds.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import select
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

FRAME = struct.Struct("<8sdI")  # interface name, kernel receive time (Unix seconds), length (bytes)
_CLONE_NEWNET = 0x40000000
_ETH_P_ALL = 0x0003
_SO_TIMESTAMPNS = 35
_SOL_PACKET, _PACKET_STATISTICS = 263, 6


class Refused(OSError):
    """The system would not make a namespace: `call` failed with errno (sent back as such, not as words)."""

    def __init__(self, code: int, call: str, message: str) -> None:
        super().__init__(code, message)
        self.call = call


class Agent:
    def __init__(self, chan: socket.socket) -> None:
        self.chan = chan
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.first = "client"
        self.spaces = {self.first: os.open("/proc/self/ns/net", os.O_RDONLY)}
        self.here = self.first
        self.hosts_of: dict[str, str] = {}  # interface name -> host
        self.captures: dict[socket.socket, str] = {}
        self.frames: list[tuple[str, float, bytes]] = []
        self.ip = "ip"  # until `build` names its path
        self.spawned: dict[int, subprocess.Popen] = {}

    def enter(self, host: str) -> None:
        if self.here != host:
            if host not in self.spaces:
                raise OSError(f"no host {host!r} here")
            if self.libc.setns(self.spaces[host], _CLONE_NEWNET) != 0:
                raise OSError(ctypes.get_errno(), f"setns into the {host}'s namespace failed")
            self.here = host

    def build(self, first: str, hosts: list[str], steps: list[dict[str, Any]], interfaces: dict[str, str],
              ip: str, settle: float = 0.0) -> dict[str, Any]:
        self.ip = ip  # the absolute path of `ip`: this program imports no netlab to look it up
        os.close(self.spaces.pop(self.first))
        self.first = self.here = first
        self.spaces = {first: os.open("/proc/self/ns/net", os.O_RDONLY)}
        self.hosts_of = dict(interfaces)
        for host in hosts:
            self.enter(first)
            if self.libc.unshare(_CLONE_NEWNET) != 0:
                raise Refused(ctypes.get_errno(), "unshare(CLONE_NEWNET)", f"could not make the {host}'s network namespace")
            self.spaces[host] = os.open("/proc/self/ns/net", os.O_RDONLY)
            self.here = host
        for step in steps:
            host = step["host"]
            self.enter(host)
            for name, value in step.get("sysctl", {}).items():
                try:
                    Path("/proc/sys/net", *name.split(".")).write_text(value)
                except OSError as err:
                    if step.get("sysctl_must", True) and err.errno == errno.EROFS:  # a container's read-only /proc/sys
                        raise Refused(err.errno, f"setting net.{name}", f"could not set net.{name} on the {host}") from None
                    if step.get("sysctl_must", True):
                        raise OSError(f"could not set net.{name} on the {host}") from None
            if step.get("ip"):
                # "ns:HOST" in a command names another namespace, by the file the agent holds open.
                text = step["ip"]
                for other, fd in self.spaces.items():
                    text = text.replace(f"ns:{other}", f"/proc/self/fd/{fd}")
                done = subprocess.run([self.ip, "-batch", "-"], input=text, capture_output=True, text=True, timeout=10,
                                      pass_fds=list(self.spaces.values()))
                if done.returncode != 0:
                    raise OSError(f"ip on the {host}: {done.stderr.strip()}")
            for device in step.get("no_offload", []):
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as any_socket:
                    no_checksum_offload(any_socket, device)
        self.settle(interfaces, float(settle))
        return {"pid": os.getpid()}

    def settle(self, interfaces: dict[str, str], seconds: float) -> None:
        """Wait (up to `seconds`) until every interface has its IPv6 link-local address, and a little more.

        An interface that comes up makes that address and joins multicast groups, and says so
        with MLD reports (RFC 3810); were they still under way, they would show in the first capture.
        """
        if seconds <= 0:
            return
        deadline = time.monotonic() + seconds
        waiting = dict(interfaces)
        while waiting and time.monotonic() < deadline:
            for name, host in list(waiting.items()):
                self.enter(host)
                done = subprocess.run([self.ip, "-6", "-o", "addr", "show", "dev", name, "scope", "link"],
                                      capture_output=True, text=True, timeout=5)
                if "fe80" in done.stdout and "tentative" not in done.stdout:
                    del waiting[name]
            if waiting:
                time.sleep(0.01)
        time.sleep(0.02)  # the reports' retransmissions, 1 ms apart (see the sysctls in the plan)

    def run(self, host: str, argv: list[str], timeout: float) -> dict[str, Any]:
        self.enter(host)
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise OSError(f"{' '.join(argv)} did not finish within {timeout:g} s on the {host}; it was stopped") from None
        except FileNotFoundError:
            raise OSError(f"{argv[0]}: no such program on this machine") from None
        return {"code": done.returncode, "out": done.stdout, "err": done.stderr}

    def spawn(self, host: str, argv: list[str], log: str) -> dict[str, Any]:
        self.enter(host)  # the child is forked here, so it lives in the host's namespace
        libc = self.libc

        def die_with_agent() -> None:
            libc.prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL: the agent killed leaves no daemon behind

        with open(log, "ab") as out:
            try:
                proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                        preexec_fn=die_with_agent, start_new_session=True)
            except FileNotFoundError:
                raise OSError(f"{argv[0]}: no such program on this machine") from None
        self.spawned[proc.pid] = proc
        return {"pid": proc.pid}

    def stop(self, pid: int) -> dict[str, Any]:
        proc = self.spawned.pop(pid, None)
        if proc is None:
            raise OSError(f"no program {pid} was started here")
        proc.terminate()
        try:
            code = proc.wait(2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(2.0)
        return {"code": code}

    def stop_all(self) -> None:
        for pid in list(self.spawned):
            self.stop(pid)

    def capture_start(self, interfaces: list[str]) -> dict[str, Any]:
        self.capture_close()
        self.frames = []
        for name in interfaces:
            self.enter(self.hosts_of[name])
            sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(_ETH_P_ALL))
            sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * 2**20)  # the kernel caps it at rmem_max
            sock.bind((name, 0))
            sock.setblocking(False)
            self.captures[sock] = name
        return {}

    def drain(self, sock: socket.socket) -> None:
        name = self.captures[sock]
        while True:
            try:
                data, anc, _flags, _addr = sock.recvmsg(65535, socket.CMSG_SPACE(16))
            except BlockingIOError:
                return
            except OSError as err:
                if err.errno != errno.ENETDOWN:
                    raise
                # The interface went down during the capture (a link failure is the lesson): the
                # packet socket reports it once, and its frames so far stay readable.
                continue
            stamp = time.time()
            for level, kind, value in anc:
                if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS and len(value) >= 16:
                    sec, nsec = struct.unpack("qq", value[:16])
                    stamp = sec + nsec / 1e9
            self.frames.append((name, stamp, data))

    def capture_stop(self, path: str) -> dict[str, Any]:
        missed = 0
        for sock in list(self.captures):
            self.drain(sock)
            missed += struct.unpack("II", sock.getsockopt(_SOL_PACKET, _PACKET_STATISTICS, 8))[1]
        self.capture_close()
        self.frames.sort(key=lambda f: f[1])
        with open(path + ".part", "wb") as f:
            for name, stamp, data in self.frames:
                f.write(FRAME.pack(name.encode(), stamp, len(data)) + data)
        os.replace(path + ".part", path)
        count, self.frames = len(self.frames), []
        return {"count": count, "missed": missed}

    def capture_close(self) -> None:
        for sock in self.captures:
            sock.close()
        self.captures = {}

    def serve(self) -> None:
        while True:
            ready = select.select([self.chan, *self.captures], [], [])[0]
            for sock in ready:
                if sock is not self.chan:
                    self.drain(sock)
            if self.chan not in ready:
                continue
            data = self.chan.recv(1 << 20)
            if not data:
                self.stop_all()
                return  # the notebook side closed its end (or died): the namespaces go with us
            order = json.loads(data)
            fds: list[int] = []
            try:
                op = order.pop("op")
                if op == "socket":
                    self.enter(order["host"])
                    fds = [socket.socket(order["family"], order["type"], order["proto"]).detach()]
                    reply: dict[str, Any] = {}
                elif op in ("build", "run", "capture_start", "capture_stop", "spawn", "stop"):
                    reply = getattr(self, op)(**order)
                else:
                    raise OSError(f"unknown request {op!r}")
                reply["ok"] = True
            except Exception as err:  # noqa: BLE001  (every failure goes back as one sentence)
                reply = {"ok": False, "error": str(err)}
                if isinstance(err, Refused):
                    reply["refused"] = [err.call, err.errno]
            try:
                self.enter(self.first)
            except OSError:
                pass
            socket.send_fds(self.chan, [json.dumps(reply).encode()], fds)
            for fd in fds:
                os.close(fd)


def no_checksum_offload(sock: socket.socket, device: str) -> None:
    """Make `device` compute checksums in software (ethtool -K DEV tx off, via SIOCETHTOOL).

    A veth otherwise leaves TCP and UDP checksums for "hardware" to fill in, and a capture
    would show them wrong.
    """
    value = ctypes.create_string_buffer(struct.pack("II", 0x17, 0))  # ETHTOOL_STXCSUM, off
    request = struct.pack("16sP", device.encode(), ctypes.addressof(value)).ljust(40, b"\0")
    fcntl.ioctl(sock.fileno(), 0x8946, request)  # SIOCETHTOOL


if __name__ == "__main__":
    Agent(socket.socket(fileno=int(sys.argv[1]))).serve()
