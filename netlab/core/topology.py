"""A routed path in the lab: client — router — server, three network namespaces and two links.

Theory of operation
-------------------
Everything below TCP (addresses and routes, ARP, TTL, ICMP, path MTU) needs a path with a
router on it, where the lab has one loopback. `Topology(lab)` builds one in a few ms:

    client (the lab's own namespace)     router (a namespace)              server (a namespace)
    c0 10.1.0.2/24  fd00:1::2/64  ⇄  r0 10.1.0.1  r1 10.2.0.1  ⇄  s0 10.2.0.2/24  fd00:2::2/64
       default via 10.1.0.1              forwarding on (IPv4, IPv6)          default via 10.2.0.1

 - the **client** is the lab's namespace, so `lab.socket()` and `topology.client.socket()` are
   the same kind of socket; the router and the server are namespaces made by one small program
   (the *agent*, `python -m netlab.core.topology`) that runs in the lab and keeps them open. It
   enters each namespace in turn (`setns`) to configure it, to run a command there (`ip neigh`,
   `nft`, `tracepath`), to create a socket there and hand it back (SCM_RIGHTS), and to capture.
 - every MAC address spells its IP address (c0 is 02:00:0a:01:00:02 for 10.1.0.2), so a capture
   reads the same on every run and a student can tell who sent a frame without a table.
 - **captures** are raw packet sockets, one per interface asked for (any of c0, r0, r1, s0), in
   that interface's namespace: each frame once, stamped by the kernel, merged in time order, and
   labelled with the interface it was seen on (`packet.sniffed_on`). A packet socket is ready as
   soon as it is bound, so nothing sent after `capture()` returns is missed.
 - the veths compute their own checksums (offload off, as in bottleneck.py): a capture shows the
   TCP checksum the wire carries, not one left for hardware that does not exist.
 - what would make captures differ between runs is off or over before the topology is ready: no
   duplicate address detection, no router solicitations, the MLD reports of interfaces joining
   multicast groups sent 1 ms apart (not up to 1 s) and waited out; ICMP errors are not
   rate-limited in the router and server, so a traceroute gets an answer to every probe.

Rules for this file:
1. Every wait has a bound: each request to the agent `REQUEST_TIMEOUT` s, its start `START_TIMEOUT` s;
   `Topology.close()` ends the agent (its namespaces go with it) and removes the client's link.
2. Nothing leaves the lab: the namespaces are children of the lab's, their only links are c0–r0 and r1–s0.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from netlab.core.arguments import check_int, check_seconds
from netlab.core.errors import HelperError, LabError, LabUnavailable
from netlab.core.lab import Lab, inner_refusal_sentence, last_line
from netlab.core.programs import command, program
from netlab.core.topology_agent import FRAME

__all__ = ["Topology", "TopologyError", "Host", "LinkCapture", "HOSTS", "INTERFACES", "MIN_MTU", "MAX_MTU"]

START_TIMEOUT = 15.0  # seconds for the agent to build the topology
REQUEST_TIMEOUT = 15.0  # seconds for one request (a command's own timeout comes on top)
MIN_MTU, MAX_MTU = 1280, 9000  # bytes: IPv6 needs 1280 on every link


@dataclass(frozen=True)
class Interface:
    """One end of a link: its name, host, addresses and MAC (which spells the IPv4 address)."""

    name: str
    host: str
    ipv4: str
    ipv6: str
    mac: str
    peer: str  # the interface at the link's other end


def _mac(ipv4: str) -> str:
    return "02:00:" + ":".join(f"{int(b):02x}" for b in ipv4.split("."))


INTERFACES = {
    i.name: i for i in (
        Interface("c0", "client", "10.1.0.2", "fd00:1::2", _mac("10.1.0.2"), "r0"),
        Interface("r0", "router", "10.1.0.1", "fd00:1::1", _mac("10.1.0.1"), "c0"),
        Interface("r1", "router", "10.2.0.1", "fd00:2::1", _mac("10.2.0.1"), "s0"),
        Interface("s0", "server", "10.2.0.2", "fd00:2::2", _mac("10.2.0.2"), "r1"),
    )
}
HOSTS = ("client", "router", "server")
_AGENT = str(Path(__file__).with_name("topology_agent.py"))


class TopologyError(HelperError):
    """The topology's agent could not build the path, or stopped answering."""


class Host:
    """One of the topology's three machines: run a command there, or get a socket that lives there."""

    def __init__(self, topology: Topology, name: str) -> None:
        self.topology, self.name = topology, name

    @property
    def interfaces(self) -> list[Interface]:
        return [i for i in INTERFACES.values() if i.host == self.name]

    @property
    def address(self) -> str:
        """Its first IPv4 address."""
        return self.interfaces[0].ipv4

    @property
    def address6(self) -> str:
        """Its first IPv6 address."""
        return self.interfaces[0].ipv6

    def run(self, *argv: str, timeout: float = 5.0, check: bool = True) -> str:
        """Run a command on this host (in its network namespace) and return its output (stdout then stderr)."""
        return self.topology.run(self.name, *argv, timeout=timeout, check=check)

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0) -> socket.socket:
        """A socket that lives on this host's network (use it like any socket)."""
        return self.topology.socket(self.name, family, type, proto)

    def __repr__(self) -> str:
        return f"<{self.name} {', '.join(f'{i.name} {i.ipv4}' for i in self.interfaces)}>"


class Topology:
    """client — router — server in the lab, from one call; `mtu` maps an interface name to its MTU in bytes.

        with netlab.Lab() as lab, Topology(lab, mtu={"r1": 1280}) as net:
            with net.capture("c0", "r1") as cap:
                sock = net.client.socket(); sock.connect((net.server.address, 9))

    Forwarding is on in the router; the client and the server have a default route through it.
    """

    def __init__(self, lab: Lab, *, mtu: dict[str, int] | None = None, ipv6: bool = True) -> None:
        mtu = dict(mtu or {})
        for name, value in mtu.items():
            if name not in INTERFACES:
                raise ValueError(f"mtu names an interface this topology does not have: {name!r} "
                                 f"(it has {', '.join(INTERFACES)})")
            check_int(f"the MTU of {name}", value, MIN_MTU, MAX_MTU)
        self.lab, self.mtu, self.ipv6 = lab, {n: mtu.get(n, 1500) for n in INTERFACES}, bool(ipv6)
        self.client, self.router, self.server = (Host(self, n) for n in HOSTS)
        self._agent: subprocess.Popen | None = None
        self._chan: socket.socket | None = None
        self._dir: str | None = None
        self._capturing = False

    def host(self, name: str) -> Host:
        if name not in HOSTS:
            raise ValueError(f"host must be one of {', '.join(HOSTS)}, not {name!r}")
        return getattr(self, name)

    # -- life cycle ---------------------------------------------------------

    def __enter__(self) -> Topology:
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _open(self) -> None:
        if "c0" in self.lab.run("ip", "-o", "link", "show"):
            raise TopologyError("this lab has a topology already; close it first")
        self._dir = tempfile.mkdtemp(prefix="netlab-topology-")
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._chan = ours
        try:
            # Started by path, not `-m`: without netlab's imports it starts in tens of ms.
            self._agent = self.lab.popen([sys.executable, "-I", _AGENT, str(theirs.fileno())],
                                         pass_fds=[theirs.fileno()], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        finally:
            theirs.close()
        reply, _ = self._request({"op": "build", **self._plan()}, timeout=START_TIMEOUT, what="start")
        self.agent_pid = reply["pid"]

    def _plan(self) -> dict[str, Any]:
        """The agent's orders: which namespaces to make, then per host its sysctls and one `ip -batch`."""
        v6 = self.ipv6
        steps: list[dict[str, Any]] = []
        for host in HOSTS:
            # Set before the links exist, so that new interfaces take them as their defaults: no
            # duplicate address detection (an address is usable at once), no router solicitations.
            # MLD reports (joining multicast groups) repeated 1 ms apart instead of up to 1 s: all sent
            # before the topology is ready (see the agent's settle), none in a capture.
            sysctl = {"ipv6.conf.default.accept_dad": "0", "ipv6.conf.all.accept_dad": "0",
                      "ipv6.conf.default.router_solicitations": "0", "ipv6.conf.default.disable_ipv6": "0" if v6 else "1",
                      "ipv6.conf.default.mldv1_unsolicited_report_interval": "1",
                      "ipv6.conf.default.mldv2_unsolicited_report_interval": "1"}
            if host != "client":
                # An ICMP error for every probe (Linux sends at most one a second per destination by default).
                sysctl.update({"ipv4.icmp_ratelimit": "0", "ipv6.icmp.ratelimit": "0"})
            steps.append({"host": host, "sysctl": sysctl, "sysctl_must": False})
        steps.append({"host": "router", "sysctl": {"ipv4.ip_forward": "1", **({"ipv6.conf.all.forwarding": "1"} if v6 else {})}})
        batches: dict[str, list[str]] = {h: ([] if h == "client" else ["link set lo up"]) for h in HOSTS}
        for a in ("c0", "r1"):
            ia, ib = INTERFACES[a], INTERFACES[INTERFACES[a].peer]
            batches[ia.host].append(f"link add {a} address {ia.mac} mtu {self.mtu[a]} type veth peer name {ib.name} "
                                    f"address {ib.mac} mtu {self.mtu[ib.name]} netns ns:{ib.host}")
        for i in INTERFACES.values():
            batches[i.host].append(f"addr add {i.ipv4}/24 dev {i.name}")
            if v6:
                batches[i.host].append(f"addr add {i.ipv6}/64 dev {i.name} nodad")
            batches[i.host].append(f"link set {i.name} up")
        for host, via, via6 in (("client", "10.1.0.1", "fd00:1::1"), ("server", "10.2.0.1", "fd00:2::1")):
            batches[host].append(f"route add default via {via}")
            if v6:
                batches[host].append(f"route add default via {via6}")
        for host in HOSTS:  # in this order: each link is made by the host at its first end
            steps.append({"host": host, "ip": "\n".join(batches[host]) + "\n",
                          "no_offload": [i.name for i in INTERFACES.values() if i.host == host]})
        # The agent imports nothing of netlab, so it gets `ip`'s path, found where the system keeps it.
        return {"first": "client", "hosts": ["router", "server"], "steps": steps, "ip": program("ip"),
                "interfaces": {i.name: i.host for i in INTERFACES.values()}, "settle": 2.0 if v6 else 0.0}

    def close(self) -> None:
        """End the agent (the router's and server's namespaces go with it) and remove the client's link."""
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
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        try:
            self.lab.run("ip", "link", "del", "c0")
        except LabError:
            pass  # gone with the router's namespace already, or the lab closed

    # -- requests -------------------------------------------------------------

    def _request(self, order: dict[str, Any], *, timeout: float = REQUEST_TIMEOUT, what: str | None = None
                 ) -> tuple[dict[str, Any], list[int]]:
        if self._chan is None:
            raise TopologyError("this topology is closed; build a new one with Topology(lab)")
        self._chan.settimeout(timeout)
        try:
            self._chan.sendall(json.dumps(order).encode())
            data, fds, _, _ = socket.recv_fds(self._chan, 1 << 16, 1)
        except TimeoutError:
            self._fail()
            raise TopologyError(f"the topology's agent did not answer {what or order['op']!r} within {timeout:g} s; "
                                "it was stopped") from None
        except OSError as err:
            detail = self._fail()
            raise TopologyError(f"the topology's agent ended during {what or order['op']!r}: {detail or err}") from None
        except BaseException:
            # Interrupted half-way (Jupyter's stop button): the reply may still come and would be
            # read as the answer to the next request. An agent out of step is no use: stop it.
            self._fail()
            raise
        if not data:
            detail = self._fail()
            raise TopologyError(f"the topology's agent ended during {what or order['op']!r}"
                                + (f": {detail}" if detail else ""))
        reply = json.loads(data)
        if not reply.get("ok"):
            for fd in fds:
                os.close(fd)
            if reply.get("refused"):  # the system would not make the router's and server's namespaces
                call, code = reply["refused"]
                raise LabUnavailable(inner_refusal_sentence(call, code, "network namespaces for the router and the server"))
            raise TopologyError(reply.get("error", "the agent failed"))
        return reply, fds

    def _fail(self) -> str:
        """Stop the agent after a failure; return the last line it wrote to stderr."""
        agent = self._agent
        detail = ""
        if agent is not None and agent.stderr is not None:
            if agent.poll() is None:
                agent.kill()
            agent.wait(3.0)
            detail = last_line(agent.stderr.read().decode(errors="replace"))
        self.close()
        return detail

    def run(self, host: str, *argv: str, timeout: float = 5.0, check: bool = True) -> str:
        """Run a command in `host`'s namespace; `timeout` in seconds. With check, a failure raises TopologyError."""
        self.host(host)
        check_seconds("timeout", timeout, 60.0)
        reply, _ = self._request({"op": "run", "host": host, "argv": command(argv), "timeout": timeout},
                                 timeout=timeout + REQUEST_TIMEOUT)
        if check and reply["code"] != 0:
            raise TopologyError(f"{' '.join(argv)} failed on the {host}: {last_line(reply['err']) or reply['code']}")
        return reply["out"] + reply["err"]

    def socket(self, host: str, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0
               ) -> socket.socket:
        """A socket created in `host`'s namespace."""
        self.host(host)
        _, fds = self._request({"op": "socket", "host": host, "family": int(family), "type": int(type), "proto": proto})
        return socket.socket(fileno=fds[0])

    def capture(self, *interfaces: str, timeout: float = 5.0) -> LinkCapture:
        """Record every frame on the named interfaces (c0, r0, r1, s0) from the `with` block's start to its end."""
        for name in interfaces:
            if name not in INTERFACES:
                raise ValueError(f"no interface {name!r} in this topology (it has {', '.join(INTERFACES)})")
        if not interfaces:
            raise ValueError("name at least one interface to capture on: c0, r0, r1 or s0")
        return LinkCapture(self, list(interfaces), timeout)

    def neighbours(self, host: str) -> list[str]:
        """`host`'s neighbour table (ARP and NDP), one line per entry as `ip neigh` prints it, sorted."""
        return sorted(line.strip() for line in self.run(host, "ip", "neigh", "show").splitlines() if line.strip())


class LinkCapture:
    """Frames seen on some of a topology's interfaces during a `with` block: `packets`, each with `sniffed_on`."""

    def __init__(self, topology: Topology, interfaces: list[str], timeout: float) -> None:
        self.topology, self.interfaces, self.timeout = topology, interfaces, timeout
        self.packets: list = []
        self.missed = 0  # frames the kernel dropped before the capture read them

    def __enter__(self) -> LinkCapture:
        self.topology._request({"op": "capture_start", "interfaces": self.interfaces}, timeout=self.timeout)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.topology._chan is None:
            return
        path = Path(self.topology._dir or tempfile.gettempdir()) / "capture.frames"
        reply, _ = self.topology._request({"op": "capture_stop", "path": str(path)}, timeout=self.timeout)
        self.missed = reply["missed"]
        self.packets = read_frames(path)
        path.unlink(missing_ok=True)


def read_frames(path: Path) -> list:
    """Read the agent's capture file: Ethernet frames as scapy packets with `time` and `sniffed_on`."""
    import scapy.layers.all  # noqa: F401  (dissects what the frames carry: ARP, IP, ICMP, DNS, IPv6)
    from scapy.layers.l2 import Ether

    packets, data = [], Path(path).read_bytes()
    at = 0
    while at < len(data):
        name, stamp, size = FRAME.unpack_from(data, at)
        at += FRAME.size
        pkt = Ether(data[at:at + size])
        at += size
        pkt.time, pkt.sniffed_on = stamp, name.rstrip(b"\0").decode()
        packets.append(pkt)
    return packets


