"""Addresses, masks and routing tables as data, with the standard library's `ipaddress`.

What the notebook's first sections compute (an address's network, broadcast and hosts), the
routing tables the lab's kernels hold (read with `ip -j route`), and the questions the
exercises draw per run. No lab here: this module is plain data and arithmetic, so the checks'
verdicts can use it in any process.
"""

from __future__ import annotations

import ipaddress
import json
import random
from dataclasses import dataclass
from typing import Any

__all__ = ["describe", "Route", "table_of", "as_table", "kernel_answers", "AddressQuestion", "SplitQuestion",
           "address_question", "split_question", "interface_address"]


def interface_address(text: Any) -> ipaddress.IPv4Interface:
    """`text` ("172.16.5.9/20") as an IPv4 address with its prefix, or one ValueError that says what is wrong."""
    if not isinstance(text, str) or "/" not in text:
        raise ValueError(f"give an IPv4 address with its prefix length, such as '10.1.0.2/24', not {text!r}")
    address, _, prefix = text.partition("/")
    if not prefix.isdigit() or not 0 <= int(prefix) <= 32:
        raise ValueError(f"an IPv4 prefix length is a number from 0 to 32, not {prefix!r} (in {text!r})")
    try:
        return ipaddress.IPv4Interface(text)
    except ValueError:
        raise ValueError(f"{address!r} is not an IPv4 address (four numbers 0 to 255, such as 10.1.0.2)") from None


def describe(text: str) -> dict[str, Any]:
    """What an address with its prefix says: its network, mask, broadcast, first and last host, how many hosts."""
    iface = interface_address(text)
    net = iface.network
    hosts = net.num_addresses - 2 if net.prefixlen < 31 else net.num_addresses  # RFC 3021: a /31 has two hosts
    first = net.network_address + (1 if net.prefixlen < 31 else 0)
    last = net.broadcast_address - (1 if net.prefixlen < 31 else 0)
    return {"address": str(iface.ip), "network": str(net), "netmask": str(net.netmask),
            "broadcast": str(net.broadcast_address), "first_host": str(first), "last_host": str(last),
            "hosts": hosts, "private": iface.ip.is_private}


@dataclass(frozen=True)
class Route:
    """One route of a table: where to (`prefix`, such as 10.2.0.0/16 or 0.0.0.0/0) and `via` whom.

    `via` is the next router's address, or the interface's name for a network on one of the host's
    own links (no router needed: the destination is a neighbour).
    """

    prefix: str
    via: str

    def __iter__(self):  # a route unpacks as (prefix, via)
        return iter((self.prefix, self.via))

    def __repr__(self) -> str:
        return f"({self.prefix!r}, {self.via!r})"


def table_of(ip_json: str) -> list[Route]:
    """A routing table from `ip -j route show` (IPv4, the main table): one Route per destination, as the kernel lists them."""
    routes = []
    for entry in json.loads(ip_json or "[]"):
        dst = entry.get("dst", "")
        if entry.get("type") not in (None, "unicast") or not dst:
            continue
        prefix = "0.0.0.0/0" if dst == "default" else str(ipaddress.IPv4Network(dst if "/" in dst else f"{dst}/32"))
        via = entry.get("gateway") or entry.get("dev")
        if via is None:  # several next hops (equal cost): the first one
            hops = entry.get("nexthops") or [{}]
            via = hops[0].get("gateway") or hops[0].get("dev", "?")
        routes.append(Route(prefix, via))
    return routes


def as_table(table: Any) -> list[Route]:
    """`table` (a list of (prefix, via) pairs) as Routes, or one ValueError naming what is not a route."""
    if not isinstance(table, (list, tuple)):
        raise ValueError(f"a routing table is a list of (prefix, next hop) pairs, not {type(table).__name__}")
    routes = []
    for item in table:
        if not isinstance(item, (list, tuple, Route)) or len(tuple(item)) != 2:
            raise ValueError(f"a routing table is a list of (prefix, next hop) pairs; {item!r} is not one")
        prefix, via = tuple(item)
        try:
            network = ipaddress.IPv4Network(prefix)
        except (ValueError, TypeError):
            raise ValueError(f"{prefix!r} in the table is not an IPv4 prefix such as '10.2.0.0/16' "
                             "(no host bits set after the prefix)") from None
        routes.append(Route(str(network), str(via)))
    return routes


def kernel_answers(addresses: list[str], batch_json: str) -> dict[str, str | None]:
    """The kernel's choice per address from `ip -j -force -batch` of `route get` lines: via, or None (no route).

    A lookup that fails ("Network is unreachable") prints no line, so each line is matched by its `dst`.
    """
    found: dict[str, str | None] = {a: None for a in addresses}
    for line in batch_json.splitlines():
        line = line.strip()
        if not line.startswith("["):
            continue
        for entry in json.loads(line):
            if entry.get("type") in (None, "unicast") and entry.get("dst") in found:
                found[entry["dst"]] = entry.get("gateway") or entry.get("dev")
    return found


# ---------------------------------------------------------------------------
# The exercises' questions, drawn per run (so answers differ between students and runs).

_PRIVATE = (ipaddress.IPv4Network("10.0.0.0/8"), ipaddress.IPv4Network("172.16.0.0/12"),
            ipaddress.IPv4Network("192.168.0.0/16"))


@dataclass(frozen=True)
class AddressQuestion:
    """An address with its prefix length, drawn per run: what are its network, broadcast and hosts?"""

    address: str

    def __str__(self) -> str:
        return f"your address: {self.address}"


@dataclass(frozen=True)
class SplitQuestion:
    """A block of addresses to split into equal subnets, each big enough for `hosts` hosts."""

    block: str
    hosts: int

    def __str__(self) -> str:
        return f"your block: {self.block}, at least {self.hosts} hosts per subnet"


def _random_address(rng: random.Random, prefix: int) -> ipaddress.IPv4Interface:
    space = rng.choice(_PRIVATE)
    while True:
        ip = ipaddress.IPv4Address(int(space.network_address) + rng.randrange(space.num_addresses))
        iface = ipaddress.IPv4Interface(f"{ip}/{prefix}")
        if ip not in (iface.network.network_address, iface.network.broadcast_address):
            return iface


def address_question(rng: random.Random | None = None) -> AddressQuestion:
    """Draw an address in a private range with a prefix length from 17 to 29 (not the network's or broadcast address)."""
    rng = rng or random.SystemRandom()
    return AddressQuestion(str(_random_address(rng, rng.randint(17, 29))))


def split_question(rng: random.Random | None = None) -> SplitQuestion:
    """Draw a block (/20 to /24) in a private range and a number of hosts (5 to 120) each subnet must hold."""
    rng = rng or random.SystemRandom()
    prefix = rng.randint(20, 24)
    block = _random_address(rng, prefix).network
    while True:
        hosts = rng.randint(5, 120)
        need = next(p for p in range(30, 0, -1) if 2 ** (32 - p) - 2 >= hosts)
        if need > prefix + 1:  # at least four subnets
            return SplitQuestion(str(block), hosts)
