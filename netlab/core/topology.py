"""Routed topologies in the lab: hosts, links, addresses and routes described as data, then built.

Theory of operation
-------------------
Everything below TCP (addresses and routes, ARP, TTL, ICMP, path MTU) needs a path with
routers on it, where the lab has one loopback. A topology is declared once, as data (a `Plan`:
its hosts, its interfaces with their addresses, the links between them, each host's routes),
and `Topology(lab, plan)` builds it in a few ms; the lesson's text, its table of addresses and
the lab agree because they read the same plan. `PATH`, notebook 10's, is one instance:

    client (the lab's own namespace)     router (a namespace)              server (a namespace)
    c0 10.1.0.2/24  fd00:1::2/64  ⇄  r0 10.1.0.1  r1 10.2.0.1  ⇄  s0 10.2.0.2/24  fd00:2::2/64
       default via 10.1.0.1              forwarding on (IPv4, IPv6)          default via 10.2.0.1

 - the **client** is the lab's namespace, so `lab.socket()` and `topology.client.socket()` are
   the same kind of socket; the router and the server are namespaces made by one small program
   (the *agent*, `netlab.core.inlab.topology_agent`) that runs in the lab and keeps them open. It
   enters each namespace in turn (`setns`) to configure it, to run a command there (`ip neigh`,
   `nft`, `tracepath`), to create a socket there and hand it back (SCM_RIGHTS), and to capture;
   it speaks the lab's one protocol (`netlab.core.inlab.protocol`).
 - every MAC address spells its IP address (c0 is 02:00:0a:01:00:02 for 10.1.0.2), so a capture
   reads the same on every run and a student can tell who sent a frame without a table.
 - **captures** are raw packet sockets, one per interface asked for (any of c0, r0, r1, s0), in
   that interface's namespace: each frame once, stamped by the kernel, merged in time order, and
   labelled with the interface it was seen on (`packet.sniffed_on`). A packet socket is ready as
   soon as it is bound, so nothing sent after `capture()` returns is missed. The frames come back
   as bytes and are dissected here with the lab's capture (`netlab.core.capture.packets_from`).
 - **a delayed link** (`Plan.delays`, `Link.delay`: seconds one way, or a `Direction` with the
   delay line's impairments, or one per direction) is cut in two: each end's veth leads into a
   namespace of the link's own (the *wire*, no address, no IPv6), where a delay line
   (`netlab.core.delayline`) joins the halves. The hosts see one link as before; a capture on
   either end still reads both directions at one point with the kernel's times, so it stays causal.
   One difference from a plain veth: an end set down does not take the carrier of the other end
   with it (the wire's veth loses it, not the far host's), so a link failure sets both ends down.
 - the veths compute their own checksums (offload off, as in bottleneck.py): a capture shows the
   TCP checksum the wire carries, not one left for hardware that does not exist.
 - what would make captures differ between runs is off or over before the topology is ready: no
   duplicate address detection, no router solicitations, the MLD reports of interfaces joining
   multicast groups sent 1 ms apart (not up to 1 s) and waited out; ICMP errors are not
   rate-limited in the router and server, so a traceroute gets an answer to every probe.

A plan of more routers (notebook 11's) is the same kind of data: any number of hosts, each link a
veth pair, an interface with no peer for a network that ends in a host (a bridge with no port:
this kernel has no `dummy` module, and a lab cannot load one), routes as `ip route` says them.
A long-running program (a routing daemon) is started on a host with `Topology.start` and ends
with the topology (the agent's `spawn`/`stop`, and a parent-death signal should the agent die).

Rules for this file:
1. Every wait has a bound: each request to the agent `REQUEST_TIMEOUT` s, its start `START_TIMEOUT` s;
   `Topology.close()` ends the agent (its namespaces and daemons go with it) and removes the first host's links.
2. Nothing leaves the lab: the namespaces are children of the lab's, their only links are the plan's.
3. The plan is data and the agent's orders are made from it here; the agent knows no plan.
"""

from __future__ import annotations

import ipaddress
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from netlab.core.arguments import check_int, check_seconds
from netlab.core.capture import packets_from
from netlab.core.delayline import DelayLine, DelayLineError, Direction
from netlab.core.errors import HelperError, LabError, LabUnavailable
from netlab.core.inlab.protocol import recv_msg, send_msg
from netlab.core.inlab.topology_agent import Refused
from netlab.core.lab import Lab, inner_refusal_sentence, last_line
from netlab.core.programs import command, program

__all__ = ["Topology", "TopologyError", "Host", "Interface", "Link", "Plan", "LinkCapture", "Daemon", "PATH", "HOSTS",
           "INTERFACES", "MIN_MTU", "MAX_MTU", "MIN_MTU4"]

START_TIMEOUT = 15.0  # seconds for the agent to build the topology
REQUEST_TIMEOUT = 15.0  # seconds for one request (a command's own timeout comes on top)
MIN_MTU, MAX_MTU = 1280, 9000  # bytes: IPv6 needs 1280 on every link
_ETHERNET = 1  # the pcap link type of a veth's frames
MIN_MTU4 = 576  # bytes: every IPv4 host must take a datagram this long (RFC 791); the least for a plan without IPv6


@dataclass(frozen=True)
class Interface:
    """One interface: its name, host, addresses and MAC (which spells the IPv4 address).

    `peer` is the interface at the link's other end, or None for a `dummy` interface: a network
    that ends in its host (what is routed there is swallowed, what is addressed to it answered).
    """

    name: str
    host: str
    ipv4: str
    ipv6: str
    mac: str
    peer: str | None
    prefix: int = 24  # the IPv4 prefix length (bits)
    prefix6: int = 64

    @property
    def network(self) -> str:
        """The IPv4 network this interface is on, such as 10.1.0.0/24."""
        return str(ipaddress.ip_interface(f"{self.ipv4}/{self.prefix}").network)


Delay = float | Direction | tuple[Direction, Direction]
MAX_LINK_DELAY = 1.0  # seconds one way: a plan's delay given as a number


@dataclass(frozen=True)
class Link:
    """A link between two interfaces (a veth pair): `a` and `b` name them.

    `delay` is what the link's delay line does: seconds one way (both directions alike), a
    `Direction` (a delay and the impairments, both directions alike), or a pair of them (a → b,
    b → a). 0 is a plain veth, with no delay line.
    """

    a: str
    b: str
    delay: Delay = 0.0

    def directions(self) -> tuple[Direction, Direction] | None:
        """What the delay line does a → b and b → a (checked), or None for a plain link."""
        name = f"the link {self.a}–{self.b}"
        delay = self.delay
        if isinstance(delay, tuple) and len(delay) == 2 and all(isinstance(d, Direction) for d in delay):
            return delay[0].check(f"{name}, {self.a} → {self.b},"), delay[1].check(f"{name}, {self.b} → {self.a},")
        if isinstance(delay, Direction):
            return delay.check(name), delay.check(name)
        if isinstance(delay, bool) or not isinstance(delay, (int, float)):
            raise TypeError(f"{name}'s delay must be seconds, a Direction or a pair of them, not {delay!r}")
        if not 0 <= delay <= MAX_LINK_DELAY:
            raise ValueError(f"{name}'s delay must be in seconds, from 0 to {MAX_LINK_DELAY:g}, not {delay!r}")
        return (Direction(delay=float(delay)), Direction(delay=float(delay))) if delay else None


def interface(name: str, host: str, ipv4: str, peer: str | None, *, ipv6: str = "") -> Interface:
    """An Interface from its name, host, IPv4 address with prefix ("10.1.0.2/24") and peer; the MAC spells the address."""
    address = ipaddress.ip_interface(ipv4)
    plain = str(address.ip)
    return Interface(name, host, plain, ipv6, _mac(plain), peer, address.network.prefixlen)


@dataclass(frozen=True)
class Plan:
    """A topology as data: hosts (the first is the lab's own namespace), interfaces, routes per host.

    `routes[host]` are `ip route add` arguments ("default via 10.1.0.1", "10.2.0.0/16 via 10.0.13.3");
    `routers` forward packets (ip_forward on). Links come from the interfaces' peers.
    """

    hosts: tuple[str, ...]
    interfaces: tuple[Interface, ...]
    routes: dict[str, tuple[str, ...]] = field(default_factory=dict)
    routers: tuple[str, ...] = ()
    delays: dict[frozenset, Delay] = field(default_factory=dict)  # per-link delays (see Link), by the link's two ends

    def __post_init__(self) -> None:
        names = [i.name for i in self.interfaces]
        if len(set(names)) != len(names):
            raise ValueError(f"a plan's interface names must differ: {names}")
        for i in self.interfaces:
            if i.host not in self.hosts:
                raise ValueError(f"interface {i.name} is on {i.host!r}, which is not one of the plan's hosts")
            if not 1 <= len(i.name) <= 15:
                raise ValueError(f"an interface name has 1 to 15 characters (Linux's limit): {i.name!r}")
            if i.peer is not None and self.interface(i.peer).peer != i.name:
                raise ValueError(f"interface {i.name}'s peer {i.peer} does not name it back")
        for ends in self.delays:
            if not (isinstance(ends, frozenset) and len(ends) == 2
                    and all(e in names and self.interface(e).peer in ends for e in ends)):
                raise ValueError(f"a plan's delays are keyed by a link's two ends, frozenset((A, B)), not {ends!r}")

    def interface(self, name: str) -> Interface:
        for i in self.interfaces:
            if i.name == name:
                return i
        raise ValueError(f"no interface {name!r} in this topology (it has {', '.join(i.name for i in self.interfaces)})")

    @property
    def by_name(self) -> dict[str, Interface]:
        return {i.name: i for i in self.interfaces}

    @property
    def links(self) -> list[Link]:
        """Each veth link once, named from the end listed first."""
        seen, links = set(), []
        for i in self.interfaces:
            if i.peer is not None and i.peer not in seen:
                seen.add(i.name)
                links.append(Link(i.name, i.peer, self.delays.get(frozenset((i.name, i.peer)), 0.0)))
        return links

    def on(self, host: str) -> list[Interface]:
        """The interfaces of `host`, in the plan's order."""
        return [i for i in self.interfaces if i.host == host]

    def owner(self, address: str) -> str | None:
        """The host that has IPv4 `address` on one of its interfaces, or None."""
        for i in self.interfaces:
            if i.ipv4 == address:
                return i.host
        return None


def _mac(ipv4: str) -> str:
    return "02:00:" + ":".join(f"{int(b):02x}" for b in ipv4.split("."))


# Notebook 10's path: client — router — server, two /24s (and two IPv6 /64s).
PATH = Plan(
    hosts=("client", "router", "server"),
    interfaces=(
        Interface("c0", "client", "10.1.0.2", "fd00:1::2", _mac("10.1.0.2"), "r0"),
        Interface("r0", "router", "10.1.0.1", "fd00:1::1", _mac("10.1.0.1"), "c0"),
        Interface("r1", "router", "10.2.0.1", "fd00:2::1", _mac("10.2.0.1"), "s0"),
        Interface("s0", "server", "10.2.0.2", "fd00:2::2", _mac("10.2.0.2"), "r1"),
    ),
    routes={"client": ("default via 10.1.0.1", "-6 default via fd00:1::1"),
            "server": ("default via 10.2.0.1", "-6 default via fd00:2::1")},
    routers=("router",),
)
INTERFACES = PATH.by_name
HOSTS = PATH.hosts
_AGENT = "netlab.core.inlab.topology_agent"


class TopologyError(HelperError):
    """The topology's agent could not build the path, or stopped answering."""


class Host:
    """One of the topology's machines: run a command there, or get a socket that lives there."""

    def __init__(self, topology: Topology, name: str) -> None:
        self.topology, self.name = topology, name

    @property
    def interfaces(self) -> list[Interface]:
        return self.topology.plan.on(self.name)

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


class Daemon:
    """A program running on one host of a topology until stopped (or until the topology closes)."""

    def __init__(self, topology: Topology, host: str, pid: int, argv: list[str]) -> None:
        self.topology, self.host, self.pid, self.argv = topology, host, pid, argv

    def stop(self) -> None:
        """Stop the program (SIGTERM, then SIGKILL after 2 s)."""
        if self.topology._chan is not None and self.pid in self.topology._daemons:
            self.topology._daemons.pop(self.pid, None)
            self.topology._request("stop", self.pid)

    def __enter__(self) -> Daemon:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<{os.path.basename(self.argv[0])} on the {self.host}, pid {self.pid}>"


class Topology:
    """A plan (by default `PATH`, client — router — server) built in the lab, from one call.

        with netlab.Lab() as lab, Topology(lab, mtu={"r1": 1280}) as net:
            with net.capture("c0", "r1") as cap:
                sock = net.client.socket(); sock.connect((net.server.address, 9))

    `mtu` maps an interface name to its MTU in bytes (1500 by default). Forwarding is on in the
    plan's routers; each host gets the plan's routes. Hosts are `net.host(NAME)` (or `net.NAME`).
    A link with a delay (`Plan.delays`) gets a delay line; `net.lines` maps the link's first end's
    name to it while the topology is open.
    """

    def __init__(self, lab: Lab, plan: Plan = PATH, *, mtu: dict[str, int] | None = None, ipv6: bool = True) -> None:
        if not isinstance(plan, Plan):
            raise TypeError(f"plan must be a netlab.core.topology.Plan, not {type(plan).__name__}")
        ipv6 = bool(ipv6) and all(i.ipv6 for i in plan.interfaces)
        mtu = dict(mtu or {})
        for name, value in mtu.items():
            if name not in plan.by_name:
                raise ValueError(f"mtu names an interface this topology does not have: {name!r} "
                                 f"(it has {', '.join(plan.by_name)})")
            check_int(f"the MTU of {name}", value, MIN_MTU if ipv6 else MIN_MTU4, MAX_MTU)
        self._delayed = {link.a: (link, ways) for link in plan.links if (ways := link.directions()) is not None}
        self.lab, self.plan, self.ipv6 = lab, plan, ipv6
        self.mtu = {n: mtu.get(n, 1500) for n in plan.by_name}
        self.hosts = {n: Host(self, n) for n in plan.hosts}
        self._agent: subprocess.Popen | None = None
        self._chan: socket.socket | None = None
        self._dir: str | None = None
        self._capturing = False
        self._daemons: dict[int, Daemon] = {}
        self.lines: dict[str, DelayLine] = {}

    def host(self, name: str) -> Host:
        if name not in self.hosts:
            raise ValueError(f"host must be one of {', '.join(self.hosts)}, not {name!r}")
        return self.hosts[name]

    def __getattr__(self, name: str) -> Host:
        hosts = self.__dict__.get("hosts", {})
        if name in hosts:
            return hosts[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

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
        first = self.plan.on(self.plan.hosts[0])
        if first and first[0].name in self.lab.run("ip", "-o", "link", "show").replace("@", " ").split():
            raise TopologyError("this lab has a topology already; close it first")
        self._dir = tempfile.mkdtemp(prefix="netlab-topology-")
        os.chmod(self._dir, 0o755)  # a daemon may read its configuration from here
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._chan = ours
        try:
            # The agent imports only the in-lab side (the protocol and the frames), and no site (-S:
            # netlab is found on the PYTHONPATH Lab.popen gives): it starts in 40 ms, not 90.
            self._agent = self.lab.popen([sys.executable, "-S", "-m", _AGENT, str(theirs.fileno())],
                                         pass_fds=[theirs.fileno()], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        finally:
            theirs.close()
        orders = self._orders()
        reply, _ = self._request("build", *orders, timeout=START_TIMEOUT, what="start")
        self.agent_pid = reply["pid"]
        self._open_lines()

    def _open_lines(self) -> None:
        """Start a delay line in each delayed link's wire namespace (all at once: each is a Python program)."""
        if not self._delayed:
            return
        nsenter = program("nsenter", "to start the delay lines of the topology's links")
        for first, (link, (forward, backward)) in self._delayed.items():
            path, _ = self._request("namespace", _wire(first))

            def launch(argv: list[str], *, _path: str = path, **kwargs: Any) -> subprocess.Popen:
                return self.lab.popen([nsenter, f"--net={_path}", *argv], **kwargs)

            line = DelayLine(launch, "a", "b", forward=forward, backward=backward, capture=None, duration=None,
                             name=f"the delay line of the link {link.a}–{link.b}")
            self.lines[first] = line
            line.start()
        for line in self.lines.values():
            try:
                line.open()
            except DelayLineError as err:
                raise TopologyError(str(err)) from None

    def _orders(self) -> tuple[Any, ...]:
        """The agent's orders from the plan: which namespaces to make, then per host its sysctls and one `ip -batch`."""
        v6, plan = self.ipv6, self.plan
        first = plan.hosts[0]
        steps: list[dict[str, Any]] = []
        for host in plan.hosts:
            # Set before the links exist, so that new interfaces take them as their defaults: no
            # duplicate address detection (an address is usable at once), no router solicitations.
            # MLD reports (joining multicast groups) repeated 1 ms apart instead of up to 1 s: all sent
            # before the topology is ready (see the agent's settle), none in a capture.
            sysctl = {"ipv6.conf.default.accept_dad": "0", "ipv6.conf.all.accept_dad": "0",
                      "ipv6.conf.default.router_solicitations": "0", "ipv6.conf.default.disable_ipv6": "0" if v6 else "1",
                      "ipv6.conf.default.mldv1_unsolicited_report_interval": "1",
                      "ipv6.conf.default.mldv2_unsolicited_report_interval": "1"}
            if host != first:
                # An ICMP error for every probe (Linux sends at most one a second per destination by default).
                sysctl.update({"ipv4.icmp_ratelimit": "0", "ipv6.icmp.ratelimit": "0"})
            steps.append({"host": host, "sysctl": sysctl, "sysctl_must": False})
        for host in plan.routers:
            steps.append({"host": host, "sysctl": {"ipv4.ip_forward": "1", **({"ipv6.conf.all.forwarding": "1"} if v6 else {})}})
        batches: dict[str, list[str]] = {h: ([] if h == first else ["link set lo up"]) for h in plan.hosts}
        wires = [_wire(a) for a in self._delayed]
        for wire in wires:
            # A delayed link's own namespace: no IPv6 (so nothing of its own on the link), no address.
            steps.append({"host": wire, "sysctl": {"ipv6.conf.default.disable_ipv6": "1", "ipv6.conf.all.disable_ipv6": "1"},
                          "sysctl_must": False})
            batches[wire] = []
        for link in plan.links:
            ia, ib = plan.interface(link.a), plan.interface(link.b)
            if link.a in self._delayed:
                # Each end's veth leads into the wire, where the delay line joins "a" and "b"; both
                # wire ends take the larger MTU, so what one host sends reaches the other's veth,
                # which accepts it or not as it would on a plain link.
                wire, mtu = _wire(link.a), max(self.mtu[ia.name], self.mtu[ib.name])
                for end, side in ((ia, "a"), (ib, "b")):
                    batches[end.host].append(f"link add {end.name} address {end.mac} mtu {self.mtu[end.name]} type veth "
                                             f"peer name {side} mtu {mtu} netns ns:{wire}")
                    batches[wire].append(f"link set dev {side} up")
                continue
            batches[ia.host].append(f"link add {ia.name} address {ia.mac} mtu {self.mtu[ia.name]} type veth peer name "
                                    f"{ib.name} address {ib.mac} mtu {self.mtu[ib.name]} netns ns:{ib.host}")
        for i in plan.interfaces:
            if i.peer is None:
                batches[i.host].append(f"link add {i.name} address {i.mac} mtu {self.mtu[i.name]} type bridge")
            batches[i.host].append(f"addr add {i.ipv4}/{i.prefix} dev {i.name}")
            if v6:
                batches[i.host].append(f"addr add {i.ipv6}/{i.prefix6} dev {i.name} nodad")
            batches[i.host].append(f"link set {i.name} up")
        for host, routes in plan.routes.items():
            for route in routes:
                if route.startswith("-6 "):
                    if v6:
                        batches[host].append(f"route add {route[3:]}")  # `ip` tells the family from the address
                else:
                    batches[host].append(f"route add {route}")
        for host in plan.hosts:  # in this order: each link is made by the host at its first end
            steps.append({"host": host, "ip": "\n".join(batches[host]) + "\n",
                          "no_offload": [i.name for i in plan.on(host) if i.peer is not None]})
        for wire in wires:  # then the wires' ends, which exist once both hosts made theirs
            steps.append({"host": wire, "ip": "\n".join(batches[wire]) + "\n"})
        # The agent knows no program's place: it gets `ip`'s path, found where the system keeps it.
        return (first, [*plan.hosts[1:], *wires], steps, {i.name: i.host for i in plan.interfaces}, program("ip"),
                2.0 if v6 else 0.0)

    def close(self) -> None:
        """End the agent (the other hosts' namespaces and any daemons go with it) and remove the first host's links."""
        agent, self._agent = self._agent, None
        self._daemons = {}
        lines, self.lines = self.lines, {}
        for line in lines.values():
            try:
                line.close()
            except DelayLineError:
                pass  # it ended on its own; the topology goes anyway
        if self._chan is not None:
            self._chan.close()  # the agent's signal to end (it stops its daemons first)
            self._chan = None
        if agent is not None:
            try:
                agent.wait(5.0)
            except subprocess.TimeoutExpired:
                agent.kill()
                agent.wait(3.0)
            if agent.stderr:
                agent.stderr.close()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None
        for i in self.plan.on(self.plan.hosts[0]):
            try:
                self.lab.run("ip", "link", "del", i.name)
            except LabError:
                pass  # gone with the peer's namespace already, or the lab closed

    # -- requests -------------------------------------------------------------

    def _request(self, op: str, *args: Any, timeout: float = REQUEST_TIMEOUT, what: str | None = None
                 ) -> tuple[Any, list[int]]:
        """Ask the agent to do `op` (see `Agent.REQUESTS`); return its answer and any descriptors."""
        if self._chan is None:
            raise TopologyError("this topology is closed; build a new one with Topology(lab)")
        self._chan.settimeout(timeout)
        try:
            send_msg(self._chan, (op, args))
            (status, reply), fds = recv_msg(self._chan)
        except TimeoutError:
            self._fail()
            raise TopologyError(f"the topology's agent did not answer {what or op!r} within {timeout:g} s; "
                                "it was stopped") from None
        except (EOFError, OSError) as err:
            detail = self._fail()
            raise TopologyError(f"the topology's agent ended during {what or op!r}: {detail or err}") from None
        except BaseException:
            # Interrupted half-way (Jupyter's stop button): the reply may still come and would be
            # read as the answer to the next request. An agent out of step is no use: stop it.
            self._fail()
            raise
        if status == "ok":
            return reply, fds
        for fd in fds:
            os.close(fd)
        if isinstance(reply, Refused):  # the system would not make the router's and server's namespaces
            *some, last = self.plan.hosts[1:]  # "the router and the server", "the r1, r2, r3 and the server"
            others = f"{', '.join(some)} and the {last}" if some else last
            raise LabUnavailable(inner_refusal_sentence(reply.call, reply.errno, f"network namespaces for the {others}"))
        raise TopologyError(reply.strerror if isinstance(reply, OSError) and reply.strerror else str(reply))

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
        reply, _ = self._request("run", host, command(argv), timeout, timeout=timeout + REQUEST_TIMEOUT)
        if check and reply["code"] != 0:
            raise TopologyError(f"{' '.join(argv)} failed on the {host}: {last_line(reply['err']) or reply['code']}")
        return reply["out"] + reply["err"]

    def socket(self, host: str, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0
               ) -> socket.socket:
        """A socket created in `host`'s namespace."""
        self.host(host)
        _, fds = self._request("socket", host, int(family), int(type), int(proto))
        return socket.socket(fileno=fds[0])

    def capture(self, *interfaces: str, timeout: float = 5.0) -> LinkCapture:
        """Record every frame on the named interfaces (of the plan's) from the `with` block's start to its end."""
        for name in interfaces:
            self.plan.interface(name)  # a ValueError naming the interfaces there are
        if not interfaces:
            raise ValueError(f"name at least one interface to capture on: {', '.join(self.plan.by_name)}")
        return LinkCapture(self, list(interfaces), timeout)

    def start(self, host: str, *argv: str) -> Daemon:
        """Start a long-running program on `host` (a routing daemon, in the foreground); it ends with the topology.

        Its stdout and stderr go to a file in the topology's folder (`Topology.folder`).
        """
        self.host(host)
        if not argv:
            raise ValueError("name the program to start")
        log = str(Path(self.folder) / f"{host}-{os.path.basename(argv[0])}.log")
        reply, _ = self._request("spawn", host, command(argv), log)
        daemon = Daemon(self, host, reply["pid"], list(argv))
        self._daemons[daemon.pid] = daemon
        return daemon

    @property
    def folder(self) -> str:
        """A folder the topology owns until it closes (daemons' configurations, sockets and logs)."""
        if self._dir is None:
            raise TopologyError("this topology is closed; build a new one with Topology(lab)")
        return self._dir

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
        self.topology._request("capture_start", self.interfaces, timeout=self.timeout)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.topology._chan is None:
            return
        reply, _ = self.topology._request("capture_stop", timeout=self.timeout)
        self.missed = reply["missed"]
        self.packets = read_frames(reply["frames"])


def read_frames(frames: list[tuple[str, bytes, float]]) -> list:
    """The agent's frames (interface, bytes, kernel time) as scapy packets with `time` and `sniffed_on`.

    Dissected as the lab's captures are (`packets_from`: Ethernet, ARP, IP, ICMP, TCP, UDP), plus
    what a routed network carries above UDP: DNS, DHCP and RIP (not all of scapy's layers: 1.2 s).
    """
    import scapy.layers.dhcp  # noqa: F401
    import scapy.layers.dns  # noqa: F401
    import scapy.layers.rip  # noqa: F401

    packets = packets_from((_ETHERNET, data, stamp) for _name, data, stamp in frames)
    for pkt, (name, _data, _stamp) in zip(packets, frames):
        pkt.sniffed_on = name
    return packets


def _wire(first_end: str) -> str:
    """The name the agent gives the namespace of a delayed link (no host of a plan has a `~`)."""
    return f"~{first_end}"
