"""Notebook 11 · Addresses and routes: three routers, static routes and their mistakes, ping, fragments, RIP.

The lesson's topology is `PLAN`, declared once as data (netlab.core.topology.Plan) and read by
the notebook's text, its address table and the lab alike:

                       10.0.12.0/24
            r1-r2 .1 ───────────────── .2 r2-r1
     client ─ r1                          r2 ─ server        10.1.0.0/24: client .2, r1 .1
      10.1.0.2  r1-r3 .1           .2 r2-r3   10.2.1.2       10.2.1.0/24: r2 .1, server .2
                  10.0.13.0/24   10.0.23.0/24
                     .3 r3-r1   r3-r2 .3
                              r3 ─ r3-site 10.2.0.1/16  (the rest of the 10.2 site, behind r3)

r1's table has overlapping routes: 10.2.1.0/24 via r2, the wider 10.2.0.0/16 via r3, and a
default via r3. Every experiment runs on a `Network` kept for the notebook's cells (or on a fresh
one), puts back what it changed, and returns a RoutedExperiment (frames labelled with the
interface they were seen on, `result` a dict); where the lab is refused, its recording.

Programs from Debian: `ping` (iputils-ping) sends the echo requests, `nft` (nftables) drops one
fragment, `bird` (bird2) speaks RIP. Each is found with `netlab.core.programs`; a missing one
gives the recording, labelled and saying which program is missing.
"""

from __future__ import annotations

import random
import re
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from netlab.core.arguments import check_int
from netlab.core.experiment import load_recorded
from netlab.core.programs import ProgramMissing, program
from netlab.core.routed import RoutedExperiment, RoutedLab, frame_line, routed_experiment, run_routed
from netlab.core.topology import Plan, Topology, interface
from netlab.lessons.routes.addressing import Route, address_question, describe, kernel_answers, split_question, table_of

__all__ = [
    "PLAN", "ROUTERS", "NAMES", "CLIENT", "SERVER", "SITE", "OUTSIDE", "LOOP_NET", "Network", "addresses", "table",
    "follow", "missing_return", "asymmetric", "loop", "ping", "hops", "fragments", "rip", "lookups",
    "frame_line", "RECORDINGS", "loop_ttl", "fragment_size", "BIRD_CONFIG", "Route",
    "describe", "address_question", "split_question", "draw_network",
]

_I = interface
PLAN = Plan(
    hosts=("client", "r1", "r2", "r3", "server"),
    interfaces=(
        _I("c-r1", "client", "10.1.0.2/24", "r1-c"), _I("r1-c", "r1", "10.1.0.1/24", "c-r1"),
        _I("r1-r2", "r1", "10.0.12.1/24", "r2-r1"), _I("r2-r1", "r2", "10.0.12.2/24", "r1-r2"),
        _I("r1-r3", "r1", "10.0.13.1/24", "r3-r1"), _I("r3-r1", "r3", "10.0.13.3/24", "r1-r3"),
        _I("r2-r3", "r2", "10.0.23.2/24", "r3-r2"), _I("r3-r2", "r3", "10.0.23.3/24", "r2-r3"),
        _I("r2-s", "r2", "10.2.1.1/24", "s-r2"), _I("s-r2", "server", "10.2.1.2/24", "r2-s"),
        _I("r3-site", "r3", "10.2.0.1/16", None),
    ),
    routes={
        "client": ("default via 10.1.0.1",),
        "server": ("default via 10.2.1.1",),
        "r1": ("10.2.1.0/24 via 10.0.12.2", "10.2.0.0/16 via 10.0.13.3", "default via 10.0.13.3"),
        "r2": ("10.1.0.0/24 via 10.0.12.1", "10.0.13.0/24 via 10.0.12.1", "10.2.0.0/16 via 10.0.23.3"),
        "r3": ("10.1.0.0/24 via 10.0.13.1", "10.2.1.0/24 via 10.0.23.2", "10.0.12.0/24 via 10.0.13.1"),
    },
    routers=("r1", "r2", "r3"),
    # One-way delays (s) on the way to the server, each from a delay line: the hops' round trips tell apart.
    delays={frozenset(("c-r1", "r1-c")): 0.002, frozenset(("r1-r2", "r2-r1")): 0.005,
            frozenset(("r2-s", "s-r2")): 0.010},
)
ROUTERS = PLAN.routers
CLIENT, SERVER, SITE = "10.1.0.2", "10.2.1.2", "10.2.0.1"
OUTSIDE = "192.0.2.7"  # TEST-NET-1 (RFC 5737): never a real host; r1's default route leads there, r3 has none
LOOP_NET = "10.9.0.0/16"  # where the routing loop goes
NAMES = {i.ipv4: i.host for i in PLAN.interfaces}
# One end of each link: a capture on these sees every frame on every link once.
LINKS = tuple(link.a for link in PLAN.links)
_TIMEOUT = 3.0  # seconds: no experiment waits longer for one answer
# Linux's IP_MTU_DISCOVER and its values (include/uapi/linux/in.h): never set DF, or always.
_IP_MTU_DISCOVER, _IP_PMTUDISC_DONT, _IP_PMTUDISC_DO = 10, 0, 2
_LIVE = "live: captured just now on the lab's three routers"


class RouteExperiment(RoutedExperiment):
    """An experiment on the lesson's network; its lines leave out the IP checksum (it changes with ping's IP IDs)."""

    checksums = False


class Network(RoutedLab):
    """The lesson's network, kept for many cells: a live topology (about 1 s to build), or the recordings.

        net = netlab.routes.Network()    # net.why says which
        netlab.routes.follow(net, "10.2.1.2")
        net.close()
    """

    def __init__(self) -> None:
        super().__init__(PLAN, ipv6=False,
                         why="live: a client, three routers and a server in private network namespaces that netlab created")

    def table(self, host: str = "r1") -> list[Route]:
        """`host`'s routing table as the kernel has it now (live), or as recorded."""
        return table(self, host).result["routes"]


def _run(network: Network | None, live: Callable[[Topology], RouteExperiment], recorded: str) -> RouteExperiment:
    try:
        exp = run_routed(network, live, recorded, plan=PLAN, ipv6=False, kind=RouteExperiment)
    except ValueError:
        if recorded in RECORDINGS:
            raise
        # The lab is refused here and this variant (another TTL, size or MTU) was never recorded.
        family = recorded.split("-")[1]
        shipped = sorted(n for n in RECORDINGS if n.split("-")[1] == family)
        raise ValueError(f"this machine shows recordings instead of running the lab, and {recorded!r} was not "
                         f"recorded: netlab ships {', '.join(shipped)} (call the experiment with its defaults)") from None
    if not exp.live:
        _rebuild_routes(exp.result)
    return exp


def _rebuild_routes(result: Any) -> None:
    """A recording keeps routes as lists: make them Routes again, as a live run returns them."""
    if isinstance(result, dict) and isinstance(result.get("routes"), list):
        result["routes"] = [Route(*r) for r in result["routes"]]


def _experiment(cap: Any, result: dict[str, Any]) -> RouteExperiment:
    return routed_experiment(cap, result, why=_LIVE, kind=RouteExperiment)  # type: ignore[return-value]


def _needs(name: str, why: str, recorded: str) -> RouteExperiment | None:
    """The recording (saying which program is missing) where Debian's `name` is not installed, else None."""
    try:
        program(name, why)
    except ProgramMissing as err:
        exp = load_recorded(recorded, kind=RouteExperiment, why=f"recorded: {err}")
        _rebuild_routes(exp.result)
        return exp
    return None


def _forget(net: Topology) -> None:
    """Put the network back as built: empty neighbour caches, no learned path MTU."""
    for host in PLAN.hosts:
        net.run(host, "ip", "neigh", "flush", "all", check=False)
        net.run(host, "ip", "route", "flush", "cache", check=False)


def _ping(net: Topology, destination: str, *, count: int = 1, ttl: int = 64, interval: float = 0.2,
          size: int = 56, wait: float = 1.0) -> dict[str, Any]:
    """Run iputils' `ping` on the client, waiting up to `wait` s for the last reply; return what it printed,
    in numbers (round trips in ms)."""
    out = net.client.run("ping", "-n", "-c", str(count), "-i", f"{interval:g}", "-W", f"{wait:g}", "-t", str(ttl),
                         "-s", str(size), destination, timeout=count * interval + 3, check=False)
    rtts = [float(m) for m in re.findall(r"time=([\d.]+) ms", out)]
    sent = re.search(r"(\d+) packets transmitted, (\d+) received", out)
    errors = sorted(set(re.findall(r"From ([\d.]+) icmp_seq=\d+ (.+)", out)))
    return {"rtts_ms": rtts, "sent": int(sent.group(1)) if sent else 0, "received": int(sent.group(2)) if sent else 0,
            "errors": [list(e) for e in errors], "output": out}


def _crossed(packets: list, keep: Callable[[Any], bool]) -> list[str]:
    """The links (named by their first end) on which frames that `keep` accepts were seen, in order, once each."""
    seen: list[str] = []
    for pkt in packets:
        if keep(pkt) and pkt.sniffed_on not in seen:
            seen.append(pkt.sniffed_on)
    return seen


def _echo(kind: int) -> Callable[[Any], bool]:
    return lambda p: p.haslayer("ICMP") and p["ICMP"].type == kind and not p.haslayer("IPerror")


def draw_network(exp: RouteExperiment | None = None, *, title: str | None = None) -> Any:
    """The lesson's network drawn from `PLAN`; given an experiment that followed packets, the links its requests
    (thick) and replies (dashed) crossed. Returns a matplotlib figure (Jupyter shows it)."""
    from netlab.lessons.routes.drawing import network_figure

    return network_figure(PLAN, exp, title=title)


# ---------------------------------------------------------------------------
# Addresses and tables.


def addresses() -> list[dict[str, str]]:
    """Every interface of the plan: host, interface, address with prefix, and the network it is on."""
    return [{"host": i.host, "interface": i.name, "address": f"{i.ipv4}/{i.prefix}", "network": i.network}
            for i in PLAN.interfaces]


def table(network: Network | None = None, host: str = "r1") -> RouteExperiment:
    """`host`'s routing table (`ip -j route show`), as Routes in `result["routes"]`; nothing is captured."""
    if host not in PLAN.hosts:
        raise ValueError(f"host must be one of {', '.join(PLAN.hosts)}, not {host!r}")

    def live(net: Topology) -> RouteExperiment:
        routes = table_of(net.run(host, "ip", "-j", "route", "show"))
        return RouteExperiment([], "live", _LIVE, result={"host": host, "routes": routes})

    return _run(network, live, f"routes-table-{host}")


def lookups(network: Network | None = None, *, seed: int | None = None, count: int = 200) -> RouteExperiment:
    """The kernels' own longest-prefix match: r1 (with three more routes drawn from `seed`) and r3 (no default
    route), each asked `ip route get` for `count` addresses drawn near and inside their prefixes.

    `result`: `tables` (host → its routes) and `answers` (host → {address: via, or None where no route}).
    The extra routes on r1 are removed afterwards.
    """
    check_int("count", count, 1, 2000)
    rng = random.Random(seed)

    def live(net: Topology) -> RouteExperiment:
        extra = _extra_routes(rng)
        for route in extra:
            net.r1.run("ip", "route", "add", *route.split())
        try:
            tables, answers = {}, {}
            for host in ("r1", "r3"):
                routes = table_of(net.run(host, "ip", "-j", "route", "show"))
                drawn = _addresses_near(rng, routes, count)
                batch = Path(net.folder) / f"lookups-{host}"
                batch.write_text("".join(f"route get {a}\n" for a in drawn))
                out = net.run(host, "ip", "-j", "-force", "-batch", str(batch), check=False)
                tables[host] = [list(r) for r in routes]
                answers[host] = kernel_answers(drawn, out)
        finally:
            for route in extra:
                net.r1.run("ip", "route", "del", route.split()[0], check=False)
        return RouteExperiment([], "live", _LIVE, result={"tables": tables, "answers": answers})

    return _run(network, live, "routes-lookups")


def _extra_routes(rng: random.Random) -> list[str]:
    """Three routes for r1 that overlap its own: a /24 and a /28 inside the /16 via r3, a /20 elsewhere in 10/8."""
    third = rng.choice([n for n in range(2, 250) if n != 1])
    fourth = rng.randrange(0, 256, 16)
    vias = ["10.0.12.2", "10.0.13.3"]
    rng.shuffle(vias)
    return [f"10.2.{third}.0/24 via {vias[0]}", f"10.2.{third}.{fourth}/28 via {vias[1]}",
            f"10.{rng.randint(3, 8)}.{rng.randrange(0, 256, 16)}.0/20 via {rng.choice(vias)}"]


def _addresses_near(rng: random.Random, routes: list[Route], count: int) -> list[str]:
    """Addresses that test a lookup: inside each prefix, at its edges and just outside them, and anywhere."""
    import ipaddress

    found: set[str] = set()
    nets = [ipaddress.IPv4Network(r.prefix) for r in routes if r.prefix != "0.0.0.0/0"]
    while len(found) < count:
        pick = rng.random()
        if nets and pick < 0.6:
            net = rng.choice(nets)
            edge = rng.choice(["in", "in", "first", "last", "before", "after"])
            base, size = int(net.network_address), net.num_addresses
            value = {"in": base + rng.randrange(size), "first": base + 1, "last": base + size - 2,
                     "before": base - 1 - rng.randrange(4), "after": base + size + rng.randrange(4)}[edge]
        elif pick < 0.85:
            value = int(ipaddress.IPv4Address("10.0.0.0")) + rng.randrange(1 << 24)
        else:
            value = rng.randrange(1 << 24, 224 << 24)
        address = ipaddress.IPv4Address(value % (1 << 32))
        if address.is_multicast or address.is_loopback or address.is_unspecified or str(address) in NAMES:
            continue
        if any(address in n and address in (n.network_address, n.broadcast_address) for n in nets if n.prefixlen < 31):
            continue  # a subnet's own network and broadcast address are the local table's
        found.add(str(address))
    return sorted(found, key=lambda a: tuple(map(int, a.split("."))))


# ---------------------------------------------------------------------------
# Following a packet, and static routes gone wrong.


def follow(network: Network | None = None, destination: str = SERVER) -> RouteExperiment:
    """One ping from the client to `destination`, captured on every link: which links did the request cross?

    `result`: `request_links` and `reply_links` (each link named by its first end, in the order
    crossed), what ping saw (`received`, `errors`).
    """
    recorded_as = {SERVER: "server", SITE: "site", OUTSIDE: "outside"}
    if destination not in recorded_as:
        raise ValueError(f"destination must be one of {', '.join(recorded_as)} (the recorded ones), not {destination!r}")
    if (missing := _needs("ping", "to send ICMP echo requests", f"routes-follow-{recorded_as[destination]}")):
        return missing

    def live(net: Topology) -> RouteExperiment:
        _forget(net)
        with net.capture(*LINKS) as cap:
            seen = _ping(net, destination)
        return _experiment(cap, {"destination": destination, "request_links": _crossed(cap.packets, _echo(8)),
                                       "reply_links": _crossed(cap.packets, _echo(0)), **_brief(seen)})

    return _run(network, live, f"routes-follow-{recorded_as[destination]}")


def _brief(seen: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in seen.items() if k != "output"}


def _changed(network: Network | None, recorded: str, changes: dict[str, list[str]], undo: dict[str, list[str]],
             destination: str, *, ttl: int = 64) -> RouteExperiment:
    """Ping `destination` once while `changes` (host → `ip route` commands) are in force; `undo` puts them back."""
    if (missing := _needs("ping", "to send ICMP echo requests", recorded)):
        return missing

    def live(net: Topology) -> RouteExperiment:
        _forget(net)
        try:
            for host, commands in changes.items():
                for command in commands:
                    net.run(host, "ip", "route", *command.split())
            with net.capture(*LINKS) as cap:
                # Half a second for the reply: in the lab one comes within a millisecond, or never.
                seen = _ping(net, destination, ttl=ttl, wait=0.5)
                time.sleep(0.05)  # an ICMP error still on its way back
        finally:
            for host, commands in undo.items():
                for command in commands:
                    net.run(host, "ip", "route", *command.split(), check=False)
        return _experiment(cap, {"destination": destination, "ttl": ttl,
                                       "request_links": _crossed(cap.packets, _echo(8)),
                                       "reply_links": _crossed(cap.packets, _echo(0)), **_brief(seen)})

    return _run(network, live, recorded)


def missing_return(network: Network | None = None) -> RouteExperiment:
    """r2 forgets its route back to the client's network: the request arrives, the reply is lost at r2."""
    return _changed(network, "routes-missing-return", {"r2": ["del 10.1.0.0/24"]}, {"r2": ["add 10.1.0.0/24 via 10.0.12.1"]},
                    SERVER)


def asymmetric(network: Network | None = None) -> RouteExperiment:
    """r2 sends the way back through r3: requests go r1 → r2, replies r2 → r3 → r1."""
    return _changed(network, "routes-asymmetric", {"r2": ["replace 10.1.0.0/24 via 10.0.23.3"]},
                    {"r2": ["replace 10.1.0.0/24 via 10.0.12.1"]}, SERVER)


def loop(network: Network | None = None, *, ttl: int = 8) -> RouteExperiment:
    """A routing loop: r1 sends 10.9.0.0/16 to r2 and r2 sends it back to r1; one ping with TTL `ttl` into it.

    `result["crossings"]`: how many times the echo request crossed r1–r2; `time_exceeded_from`: who said so.
    """
    check_int("ttl", ttl, 2, 64)
    into = {"r1": [f"add {LOOP_NET} via 10.0.12.2"], "r2": [f"add {LOOP_NET} via 10.0.12.1"]}
    exp = _changed(network, f"routes-loop-ttl{ttl}", into, {"r1": [f"del {LOOP_NET}"], "r2": [f"del {LOOP_NET}"]},
                   "10.9.0.1", ttl=ttl)
    if exp.live:
        exp.result["crossings"] = sum(1 for p in exp.on("r1-r2") if _echo(8)(p))
        senders = [p["IP"].src for p in exp.on("c-r1") if p.haslayer("ICMP") and p["ICMP"].type == 11]
        exp.result["time_exceeded_from"] = senders[0] if senders else None
    return exp


def loop_ttl(network: Network | None = None) -> int:
    """A TTL for the loop exercise, drawn per run (3 to 12); where the lab is refused, the recording's (8)."""
    if network is not None and not network.live:
        return 8
    return random.SystemRandom().randint(3, 12)


# ---------------------------------------------------------------------------
# Ping, hop by hop.


def ping(network: Network | None = None, destination: str = SERVER, *, count: int = 3) -> RouteExperiment:
    """`ping -c count` from the client, captured on every link; `result`: the round trips (ms), sent, received, TTL."""
    check_int("count", count, 1, 10)
    if (missing := _needs("ping", "to send ICMP echo requests", "routes-ping")):
        return missing

    def live(net: Topology) -> RouteExperiment:
        _forget(net)
        _ping(net, destination)  # ARP done first: the round trips below are the echoes' own
        with net.capture(*LINKS) as cap:
            seen = _ping(net, destination, count=count)
        replies = [p["IP"].ttl for p in cap.packets if _echo(0)(p) and p.sniffed_on == "c-r1"]
        return _experiment(cap, {"destination": destination, "reply_ttl": replies[0] if replies else None,
                                       **_brief(seen)})

    return _run(network, live, "routes-ping")


def hops(network: Network | None = None) -> RouteExperiment:
    """Ping each hop on the way to the server (r1, r2, the server), 5 echoes each: the round trip grows hop by hop.

    `result["hops"]`: one dict per hop: address, host, the links one way, the round trips (ms).
    The links on the way have delays of their own (`PLAN.delays`, each a delay line): 2, 5 and 10 ms one way.
    """
    if (missing := _needs("ping", "to send ICMP echo requests", "routes-hops")):
        return missing
    steps = (("10.1.0.1", 1), ("10.0.12.2", 2), (SERVER, 3))

    def live(net: Topology) -> RouteExperiment:
        _forget(net)
        found = []
        with net.capture("c-r1") as cap:
            for address, links in steps:
                _ping(net, address)  # ARP on each link first
                seen = _ping(net, address, count=5, interval=0.01)
                found.append({"address": address, "host": NAMES[address], "links": links, "rtts_ms": seen["rtts_ms"]})
        return _experiment(cap, {"hops": found, "delays_s": {f"{k.a}–{k.b}": k.delay for k in PLAN.links}})

    return _run(network, live, "routes-hops")


# ---------------------------------------------------------------------------
# Fragments.


def fragments(network: Network | None = None, *, size: int = 1400, mtu: int = 576, drop: int | None = None,
              df: bool = False) -> RouteExperiment:
    """A UDP datagram of `size` bytes from the client to the server while r1's link to r2 carries at most `mtu`.

    r1 fragments it (or, with `df`, answers "fragmentation needed"); with `drop` (a fragment's
    index, 0 first) r2 drops that fragment (an nftables rule plays a lossy link), and the server,
    which waits 1 s for the rest (net.ipv4.ipfrag_time), gives the datagram up.
    `result`: `received` (bytes the server's socket got, 0 if lost), `error` (what the client's
    socket said), the `size`, `mtu`, `drop` and `df` asked for.
    """
    check_int("size", size, 1, 1472)  # 1472 bytes of UDP data fill the client's 1500-byte link
    check_int("mtu", mtu, 576, 1500)
    if drop is not None:
        check_int("drop", drop, 0, 3)
    name = f"routes-fragments{'-df' if df else ''}{'' if drop is None else f'-drop{drop}'}"
    if size != 1400 or mtu != 576:
        name += f"-{size}-{mtu}"
    if drop is not None and (missing := _needs("nft", "to drop one fragment", name)):
        return missing

    def live(net: Topology) -> RouteExperiment:
        _forget(net)
        net.r1.run("ip", "link", "set", "r1-r2", "mtu", str(mtu))
        net.r2.run("ip", "link", "set", "r2-r1", "mtu", str(mtu))
        net.server.run("sh", "-c", "echo 1 > /proc/sys/net/ipv4/ipfrag_time")
        if drop is not None:
            offset = drop * ((mtu - 20) // 8)  # in 8-byte units, as the header says it
            rules = Path(net.folder) / "drop-fragment.nft"
            rules.write_text(_DROP_FRAGMENT.format(offset=offset) + "\n")
            net.r2.run("nft", "-f", str(rules))
        received = bytearray()
        error = None
        try:
            with net.server.socket(socket.AF_INET, socket.SOCK_DGRAM) as server, net.capture(*LINKS) as cap:
                server.bind((SERVER, 9))
                # A datagram that arrives does within ms; a lost fragment is waited for 1 s (ipfrag_time).
                server.settimeout(0.3 if df else 1.3 if drop is not None else _TIMEOUT)
                done = threading.Event()

                def receive() -> None:
                    try:
                        received.extend(server.recv(65535))
                    except OSError:
                        pass
                    done.set()

                thread = threading.Thread(target=receive, daemon=True)
                thread.start()
                with net.client.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.setsockopt(socket.IPPROTO_IP, _IP_MTU_DISCOVER, _IP_PMTUDISC_DO if df else _IP_PMTUDISC_DONT)
                    sock.sendto(bytes(i % 251 for i in range(size)), (SERVER, 9))
                    if df:
                        time.sleep(0.1)  # the router's ICMP comes back
                        try:
                            sock.sendto(bytes(size), (SERVER, 9))
                        except OSError as err:
                            error = f"{type(err).__name__}: [Errno {err.errno}] {err.strerror}"
                    thread.join(_TIMEOUT)
                    if drop is not None:
                        time.sleep(0.1)  # the server's "reassembly time exceeded"
        finally:
            if drop is not None:
                net.r2.run("nft", "delete", "table", "ip", "netlab_fragments", check=False)
            net.r1.run("ip", "link", "set", "r1-r2", "mtu", "1500")
            net.r2.run("ip", "link", "set", "r2-r1", "mtu", "1500")
            net.server.run("sh", "-c", "echo 30 > /proc/sys/net/ipv4/ipfrag_time")
            _forget(net)
        intact = bytes(received) == bytes(i % 251 for i in range(size))
        return _experiment(cap, {"size": size, "mtu": mtu, "drop": drop, "df": df, "received": len(received),
                                       "intact": intact, "error": error})

    return _run(network, live, name)


# r2 drops the fragment at `offset` (8-byte units) on its way forward. With no connection
# tracking in r2's namespace, the forward hook sees each fragment as it came, not reassembled.
_DROP_FRAGMENT = """table ip netlab_fragments {{
    chain forward {{
        type filter hook forward priority 0;
        ip frag-off & 0x1fff == {offset} drop
    }}
}}"""


def fragment_size(network: Network | None = None) -> int:
    """A datagram size for the fragments exercise, drawn per run (600 to 1472 bytes); where the lab is refused, 1400."""
    if network is not None and not network.live:
        return 1400
    return random.SystemRandom().randint(600, 1472)


# ---------------------------------------------------------------------------
# RIP, spoken by BIRD.

BIRD_CONFIG = """router id {router_id};
protocol device {{ scan time 10; }}
protocol direct {{ ipv4; interface "*"; }}
protocol kernel {{ ipv4 {{ export all; }}; }}
protocol rip {{
    ipv4 {{ import all; export all; }};
    interface "r?-r?" {{ update time 1; timeout time 4; garbage time 2; }};
}}"""


def rip(network: Network | None = None, *, down: str = "r1-r2") -> RouteExperiment:
    """BIRD runs RIP on r1, r2 and r3 (static routes removed first): updates captured on the routers' links,
    the time until r1 knows every network, then r1's link `down` (r1-r2 or r1-r3) fails and the time until
    r1 routes around it (to the server's /24, or to r3's /16, through the other router).

    `result`: `converged_s`, `reconverged_s` (seconds), `tables` and `tables_after` (router →
    [prefix, via, metric] from `birdc show route`). Afterwards BIRD stops and the static routes return.
    """
    if down not in ("r1-r2", "r1-r3"):
        raise ValueError(f"down must be one of r1's links to another router, r1-r2 or r1-r3, not {down!r}")
    name = "routes-rip" if down == "r1-r2" else f"routes-rip-{down}"
    if (missing := _needs("bird", "to run RIP in the routers (Debian's bird2)", name)):
        return missing
    bird, birdc = program("bird"), program("birdc")
    everything = sorted({i.network for i in PLAN.interfaces})
    peer = PLAN.interface(PLAN.interface(down).peer or "")

    def routes(net: Topology, host: str) -> list[list[Any]]:
        out = net.run(host, birdc, "-s", f"{net.folder}/{host}.ctl", "show", "route", check=False)
        return _bird_routes(out)

    def knows(net: Topology, host: str, want: Callable[[list[list[Any]]], bool], seconds: float) -> float | None:
        start = time.monotonic()
        while time.monotonic() - start < seconds:
            if want(routes(net, host)):
                return time.monotonic() - start
            time.sleep(0.05)
        return None

    def live(net: Topology) -> RouteExperiment:
        _forget(net)
        for host in ROUTERS:
            for route in PLAN.routes.get(host, ()):
                net.run(host, "ip", "route", "del", route.split()[0])
        daemons = []
        try:
            with net.capture(*(link for link in LINKS if link.count("r") == 2)) as cap:
                started = time.monotonic()
                for host in ROUTERS:
                    conf = Path(net.folder) / f"{host}.conf"
                    conf.write_text(BIRD_CONFIG.format(router_id=net.host(host).address))
                    daemons.append(net.start(host, bird, "-f", "-c", str(conf), "-s", f"{net.folder}/{host}.ctl",
                                             "-P", f"{net.folder}/{host}.pid"))
                late = knows(net, "r1", lambda r: {x[0] for x in r} >= set(everything), 15.0)
                converged = None if late is None else time.monotonic() - started
                time.sleep(1.2)  # one more round of periodic updates, for the capture
                tables = {h: routes(net, h) for h in ROUTERS}
                failed = time.monotonic()
                # The link fails at both ends, as a cut cable does: a delayed link's delay line
                # does not pass the loss of carrier on from one end to the other.
                net.r1.run("ip", "link", "set", down, "down")
                net.run(peer.host, "ip", "link", "set", peer.name, "down")
                far = "10.2.1.0/24" if down == "r1-r2" else "10.2.0.0/16"  # what r1 reached through that link
                lost = PLAN.interface(PLAN.interface(down).peer).ipv4  # the next hop gone with it
                reconverged = knows(net, "r1", lambda r: any(x[0] == far and x[1] not in (lost, down, None) for x in r),
                                    15.0)
                reconverged = None if reconverged is None else time.monotonic() - failed
                tables_after = {h: routes(net, h) for h in ROUTERS}
        finally:
            for daemon in daemons:
                daemon.stop()
            net.r1.run("ip", "link", "set", down, "up", check=False)
            net.run(peer.host, "ip", "link", "set", peer.name, "up", check=False)
            for host in ROUTERS:
                for route in PLAN.routes.get(host, ()):
                    net.run(host, "ip", "route", "replace", *route.split(), check=False)
        return _experiment(cap, {"converged_s": converged, "reconverged_s": reconverged, "down": down,
                                       "tables": tables, "tables_after": tables_after})

    return _run(network, live, name)


_BIRD_ROUTE = re.compile(r"^(\S+)?\s+unicast \[(\w+)[^\]]*\] (\*)?\s*\((\d+)(?:/(\d+))?\)")


def _bird_routes(text: str) -> list[list[Any]]:
    """`birdc show route` as [prefix, via, metric] for each best route (via: the next router, or the interface)."""
    best: list[list[Any]] = []
    prefix, current = None, None
    for line in text.splitlines():
        match = _BIRD_ROUTE.match(line)
        if match:
            prefix = match.group(1) or prefix
            current = None
            if match.group(3):  # the best route for the prefix
                current = [prefix, None, int(match.group(5) or 0) if match.group(2).startswith("rip") else 1]
                best.append(current)
            continue
        words = line.split()
        if current is not None and current[1] is None and words:
            if words[0] == "via":
                current[1] = words[1]
            elif words[0] == "dev":
                current[1] = words[1]
    return sorted(best)


# Every recording this lesson ships (`python -m netlab record` remakes them).
RECORDINGS = {
    "routes-table-r1": lambda: table(host="r1"),
    "routes-table-r2": lambda: table(host="r2"),
    "routes-table-r3": lambda: table(host="r3"),
    "routes-table-client": lambda: table(host="client"),
    "routes-table-server": lambda: table(host="server"),
    "routes-lookups": lambda: lookups(seed=11),
    "routes-follow-server": lambda: follow(destination=SERVER),
    "routes-follow-site": lambda: follow(destination=SITE),
    "routes-follow-outside": lambda: follow(destination=OUTSIDE),
    "routes-missing-return": missing_return,
    "routes-asymmetric": asymmetric,
    "routes-loop-ttl8": lambda: loop(ttl=8),
    "routes-ping": ping,
    "routes-hops": hops,
    "routes-fragments": fragments,
    "routes-fragments-drop1": lambda: fragments(drop=1),
    "routes-fragments-df": lambda: fragments(df=True),
    "routes-rip": rip,
    "routes-rip-r1-r3": lambda: rip(down="r1-r3"),
}
