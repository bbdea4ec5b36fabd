"""The lesson's lossy path: a sender in the lab, a receiver in a namespace of its own, the delay line between.

    sender (the lab, its link at most SENDER_RATE)   the delay line (a program in the lab)          receiver (its own namespace)
    tx0 10.13.0.1  ⇄  dl0  ──▶ forward: delay, loss, duplication, reordering, corruption ──▶ dl1  ⇄  rx0 10.13.0.2
                       ◀── backward: the same for the receiver's ACKs ◀──────────────

The receiver needs a namespace of its own: two addresses of one namespace talk over its
loopback, never through the delay line. The topology's agent (`netlab.core.inlab.topology_agent`, a
standard-library program that knows no topology) makes that namespace, moves rx0 into it and
hands back sockets created there; the delay line (`netlab.core.delayline`) joins dl0 and dl1 and
captures both directions at dl0 with the kernel's times, so the capture shows each segment as
the sender sent it, the lost ones too, and each ACK as the sender got it.

Rules for this file:
1. Every wait has a bound: the agent's requests `REQUEST_TIMEOUT` s, the delay line its `duration`;
   `LossyPath.close()` ends both and removes the links.
2. Nothing leaves the lab: the receiver's namespace is a child of the lab's, its only link is dl1–rx0.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from typing import Any

from netlab.core.delayline import DelayLine, Direction
from netlab.core.errors import HelperError, LabUnavailable
from netlab.core.inlab.protocol import recv_msg, send_msg
from netlab.core.inlab.topology_agent import Refused
from netlab.core.lab import Lab, inner_refusal_sentence, last_line
from netlab.core.programs import program
from netlab.lessons.transport.protocol import PORT

__all__ = ["LossyPath", "PathError", "SENDER", "RECEIVER", "MTU", "SENDER_RATE"]

SENDER = ("10.13.0.1", PORT)
RECEIVER = ("10.13.0.2", PORT)
MTU = 1500
SENDER_RATE = 10e6  # bits/s: the most the sender's link carries (a flood's frames beyond it never reach the line)
_TX_MAC, _RX_MAC = "02:0d:00:00:00:01", "02:0d:00:00:00:02"
REQUEST_TIMEOUT = 15.0  # seconds for one request to the agent (its start included)


class PathError(HelperError):
    """The lossy path could not be built, or its agent stopped answering."""


class LossyPath:
    """The path between a sender and a receiver; each run on it has a delay line of its own (`line`).

        with netlab.Lab() as lab, LossyPath(lab) as path:
            with path.line(forward=Direction(loss=0.2, seed=1)) as line:
                tx, rx = path.udp()        # UDP sockets bound to SENDER and RECEIVER
                ...
            line.report.packets            # the capture at the sender's end, both directions

    A run's delay line is started (Python and its imports, a few tenths of a second) when `line`
    is called and joins the links when its `with` begins: the next run's can start while one runs.
    """

    def __init__(self, lab: Lab) -> None:
        self.lab = lab
        self._agent: subprocess.Popen | None = None
        self._chan: socket.socket | None = None

    def line(self, forward: Direction | None = None, backward: Direction | None = None, *,
             duration: float = 10.0) -> DelayLine:
        """A delay line for one run (forward: towards the receiver), already started; `duration` bounds it (s)."""
        line = DelayLine(self.lab.popen, "dl0", "dl1", forward=forward, backward=backward, capture="a",
                         duration=duration, finish_checksums=["tx0"])
        line.start()
        return line

    def __enter__(self) -> LossyPath:
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> None:
        lab = self.lab
        if "tx0" in lab.run("ip", "-o", "link", "show"):
            raise PathError("this lab has a lossy path already; close it first")
        lab.add_veth("tx0", "dl0", address=f"{SENDER[0]}/24", neighbour=RECEIVER[0], neighbour_mac=_RX_MAC, mtu=MTU,
                     near_mac=_TX_MAC)
        # A sender that floods (a loop without a wait) is held to SENDER_RATE by the kernel's tbf on
        # its own link, which drops the rest before the delay line: the capture stays small enough
        # to read in a second or two, and the verdict "floods" comes in seconds, not minutes.
        lab.run("tc", "qdisc", "replace", "dev", "tx0", "root", "tbf", "rate", f"{int(SENDER_RATE)}bit",
                "burst", str(4 * (MTU + 14)), "limit", str(20 * (MTU + 14)))
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._chan = ours
        try:
            self._agent = lab.popen([sys.executable, "-S", "-m", "netlab.core.inlab.topology_agent", str(theirs.fileno())],
                                    pass_fds=[theirs.fileno()], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        finally:
            theirs.close()
        no_v6 = {"ipv6.conf.default.disable_ipv6": "1", "ipv6.conf.all.disable_ipv6": "1"}
        steps = [
            {"host": "receiver", "sysctl": no_v6, "sysctl_must": False, "ip": "link set lo up\n"},
            {"host": "sender", "ip": f"link add dl1 mtu {MTU} type veth peer name rx0 address {_RX_MAC} mtu {MTU} "
                                     "netns ns:receiver\nlink set dl1 addrgenmode none\nlink set dl1 up\n"},
            {"host": "receiver", "no_offload": ["rx0"],
             "ip": f"link set rx0 addrgenmode none\naddr add {RECEIVER[0]}/24 dev rx0\nlink set rx0 up\n"
                   f"neigh replace {SENDER[0]} lladdr {_TX_MAC} dev rx0 nud permanent\n"},
        ]
        self._request("build", "sender", ["receiver"], steps, {}, program("ip"))

    def _request(self, op: str, *args: Any) -> list[int]:
        if self._chan is None:
            raise PathError("this lossy path is closed")
        self._chan.settimeout(REQUEST_TIMEOUT)
        try:
            send_msg(self._chan, (op, args))
            (status, reply), fds = recv_msg(self._chan)
        except (EOFError, OSError) as err:
            raise PathError(f"the lossy path's agent did not answer {op!r}: {self._said() or err}") from None
        if status != "ok":
            for fd in fds:
                os.close(fd)
            if isinstance(reply, Refused):
                raise LabUnavailable(inner_refusal_sentence(reply.call, reply.errno, "a network namespace for the receiver"))
            raise PathError(f"the lossy path could not be built: {reply}")
        return fds

    def _said(self) -> str:
        agent = self._agent
        if agent is None or agent.stderr is None:
            return ""
        if agent.poll() is None:
            agent.kill()
        agent.wait(3.0)
        return last_line(agent.stderr.read().decode(errors="replace"))

    def receiver_socket(self, type: int = socket.SOCK_DGRAM) -> socket.socket:
        """A socket created in the receiver's namespace (not yet bound)."""
        (fd,) = self._request("socket", "receiver", int(socket.AF_INET), int(type), 0)
        return socket.socket(fileno=fd)

    def udp(self) -> tuple[socket.socket, socket.socket]:
        """Two UDP sockets: the sender's bound to SENDER (in the lab), the receiver's bound to RECEIVER."""
        tx = self.lab.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            tx.bind(SENDER)
            rx = self.receiver_socket()
            rx.bind(RECEIVER)
        except BaseException:
            tx.close()
            raise
        return tx, rx

    def close(self) -> None:
        """End the agent (the receiver's namespace goes with it) and remove the links."""
        agent, self._agent = self._agent, None
        if self._chan is not None:
            self._chan.close()  # the agent's signal to end
            self._chan = None
        if agent is not None:
            try:
                agent.wait(3.0)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait(3.0)
            if agent.stderr:
                agent.stderr.close()
        for link in ("tx0", "dl1"):
            try:
                self.lab.run("ip", "link", "del", link)
            except Exception:  # noqa: BLE001  (gone already, or the lab closed: nothing left behind)
                pass
