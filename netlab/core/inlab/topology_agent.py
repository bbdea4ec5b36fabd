"""The topology's agent: one program in the lab that makes network namespaces and works in each of them.

Started by `netlab.core.topology.Topology` as `python -m netlab.core.inlab.topology_agent FD`, as
root of the lab's user namespace; it imports only the standard library and the in-lab side (the
protocol and the frames), so it is ready in tens of ms. It answers one request at a time over
the lab's protocol (`netlab.core.inlab.protocol`: a length and a pickle, sockets riding along),
from the table `Agent.REQUESTS`, until its channel closes. A namespace the system refuses comes
back as the exception `Refused` (the call and its errno), so the notebook side can fall back to
a recording:

    build      make the named namespaces (unshare), then in each: sysctls, an `ip -batch`, offload off;
               then wait until the links have settled (IPv6 link-local addresses made)
    run        run a command in a host's namespace, with a time bound
    socket     create a socket in a host's namespace and hand it back (SCM_RIGHTS)
    capture_start / capture_stop
               packet sockets on named interfaces (`netlab.core.inlab.frames`: the kernel's time
               stamp on each frame); stopping hands the frames back, in time order, with the name
               of the interface each was seen on
    spawn / stop
               start a long-running program (a routing daemon, a delay line) in a host's namespace,
               output to a file; stop it. Every program started is stopped when the agent ends,
               and dies with the agent should it be killed (PR_SET_PDEATHSIG)
    namespace  the path of a namespace (`/proc/PID/fd/N`) for a program that joins it with nsenter

The namespaces live as long as the agent holds them (or a socket in them is open): it ends when
its channel to the notebook closes, so a notebook that dies leaves nothing behind. This file
knows nothing of the topology it builds (rule 3 of topology.py).
"""

from __future__ import annotations

import ctypes
import errno
import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netlab.core.inlab.frames import captured_missed, no_checksum_offload, packet_socket, recv_stamped
from netlab.core.inlab.protocol import answer, recv_msg

__all__ = ["Agent", "Refused", "main"]

_CLONE_NEWNET = 0x40000000
_LARGEST = 256 * 1024  # bytes: one frame (GSO may hand a packet socket more than the MTU)


class Refused(OSError):
    """The system would not make a namespace: `call` failed with errno (sent back as such, not as words)."""

    def __init__(self, code: int, call: str, message: str = "") -> None:
        super().__init__(code, message or call)
        self.call = call

    def __reduce__(self) -> tuple:
        return (type(self), (self.errno, self.call, self.strerror))


class Agent:
    """The agent's state (the namespaces it holds, its captures, its programs), one method per request.

    A method returns `(result, sockets)`: the result goes back pickled, the sockets with it.
    """

    def __init__(self) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.first = "client"
        self.spaces = {self.first: os.open("/proc/self/ns/net", os.O_RDONLY)}
        self.here = self.first
        self.hosts_of: dict[str, str] = {}  # interface name -> host
        self.captures: dict[socket.socket, str] = {}
        self.frames: list[tuple[str, bytes, float]] = []
        self.missed = 0
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
              ip: str, settle: float = 0.0) -> tuple[dict[str, Any], list]:
        self.ip = ip  # the absolute path of `ip`: the notebook side looked it up
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
            self.step(**step)
        self.settle(interfaces, float(settle))
        return {"pid": os.getpid()}, []

    def step(self, host: str, sysctl: dict[str, str] | None = None, sysctl_must: bool = True, ip: str = "",
             no_offload: list[str] | None = None) -> None:
        """On `host`: set the sysctls, run one `ip -batch`, turn checksum offload off on `no_offload`."""
        self.enter(host)
        for name, value in (sysctl or {}).items():
            try:
                Path("/proc/sys/net", *name.split(".")).write_text(value)
            except OSError as err:
                if sysctl_must and err.errno == errno.EROFS:  # a container's read-only /proc/sys
                    raise Refused(err.errno, f"setting net.{name}", f"could not set net.{name} on the {host}") from None
                if sysctl_must:
                    raise OSError(f"could not set net.{name} on the {host}") from None
        if ip:
            # "ns:HOST" in a command names another namespace, by the file the agent holds open.
            for other, fd in self.spaces.items():
                ip = ip.replace(f"ns:{other} ", f"/proc/self/fd/{fd} ").replace(f"ns:{other}\n", f"/proc/self/fd/{fd}\n")
            done = subprocess.run([self.ip, "-batch", "-"], input=ip, capture_output=True, text=True, timeout=10,
                                  pass_fds=list(self.spaces.values()))
            if done.returncode != 0:
                raise OSError(f"ip on the {host}: {done.stderr.strip()}")
        for device in no_offload or []:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as any_socket:
                no_checksum_offload(any_socket, device)

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

    def run(self, host: str, argv: list[str], timeout: float) -> tuple[dict[str, Any], list]:
        self.enter(host)
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise OSError(f"{' '.join(argv)} did not finish within {timeout:g} s on the {host}; it was stopped") from None
        except FileNotFoundError:
            raise OSError(f"{argv[0]}: no such program on this machine") from None
        return {"code": done.returncode, "out": done.stdout, "err": done.stderr}, []

    def socket(self, host: str, family: int, type: int, proto: int) -> tuple[None, list[socket.socket]]:
        self.enter(host)
        return None, [socket.socket(family, type, proto)]

    def namespace(self, host: str) -> tuple[str, list]:
        if host not in self.spaces:
            raise OSError(f"no host {host!r} here")
        return f"/proc/{os.getpid()}/fd/{self.spaces[host]}", []

    def spawn(self, host: str, argv: list[str], log: str) -> tuple[dict[str, Any], list]:
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
        return {"pid": proc.pid}, []

    def stop(self, pid: int) -> tuple[dict[str, Any], list]:
        proc = self.spawned.pop(pid, None)
        if proc is None:
            raise OSError(f"no program {pid} was started here")
        proc.terminate()
        try:
            code = proc.wait(2.0)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait(2.0)
        return {"code": code}, []

    def stop_all(self) -> None:
        for pid in list(self.spawned):
            self.stop(pid)

    def capture_start(self, interfaces: list[str]) -> tuple[dict[str, Any], list]:
        self.capture_close()
        self.frames, self.missed = [], 0
        for name in interfaces:
            self.enter(self.hosts_of[name])
            # Bound at once, so the kernel queues every frame from here on: the capture is ready.
            self.captures[packet_socket(name, stamped=True)] = name
        return {}, []

    def drain(self, sock: socket.socket) -> None:
        name = self.captures[sock]
        while True:
            try:
                data, stamp, _address = recv_stamped(sock, _LARGEST)
            except BlockingIOError:
                return
            except OSError as err:
                if err.errno != errno.ENETDOWN:
                    raise
                # The interface went down during the capture (a link failure is the lesson): the
                # packet socket reports it once, and its frames so far stay readable.
                continue
            self.frames.append((name, data, stamp))

    def capture_stop(self) -> tuple[dict[str, Any], list]:
        """Read what is left, close the sockets; the frames (interface, bytes, kernel time), in time order."""
        for sock in list(self.captures):
            self.drain(sock)
            self.missed += captured_missed(sock)
        self.capture_close()
        frames, self.frames = sorted(self.frames, key=lambda f: f[2]), []
        return {"frames": frames, "missed": self.missed}, []

    def capture_close(self) -> None:
        for sock in self.captures:
            sock.close()
        self.captures = {}

    REQUESTS: dict[str, Callable[..., tuple[Any, list]]] = {
        "build": build, "run": run, "socket": socket, "namespace": namespace, "spawn": spawn, "stop": stop,
        "capture_start": capture_start, "capture_stop": capture_stop,
    }

    def serve(self, chan: socket.socket) -> None:
        """Answer requests until the channel closes; meanwhile keep the captures' queues read."""
        try:
            while True:
                ready = select.select([chan, *self.captures], [], [])[0]
                for sock in ready:
                    if sock is not chan:
                        self.drain(sock)
                if chan not in ready:
                    continue
                try:
                    (op, args), _ = recv_msg(chan)
                except (EOFError, OSError):
                    return  # the notebook side closed its end (or died): the namespaces go with us
                answer(chan, self.REQUESTS, self, op, args)
                try:
                    self.enter(self.first)
                except OSError:
                    pass
        finally:
            self.capture_close()
            self.stop_all()


def main() -> None:
    Agent().serve(socket.socket(fileno=int(sys.argv[1])))


if __name__ == "__main__":
    # Run as this module, not as __main__: a `Refused` sent back must unpickle as this module's class.
    from netlab.core.inlab.topology_agent import main as agent_main

    agent_main()
