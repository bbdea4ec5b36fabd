"""The lab's DNS as data: which server serves which zone, the records of each, and the files written from them.

Four zones, each on its own authoritative server (NSD) on the lab's "internet" host, and one
recursive resolver (Unbound) on the home router, which knows nothing but the root's address
(its root hints):

    .              a.root.test      192.0.2.1   delegates test.        to ns.nic.test
    test.          ns.nic.test      192.0.2.2   delegates example.test to ns1.example.test,
                                                          cdn.test     to ns.cdn.test
    example.test.  ns1.example.test 192.0.2.3   www (A, AAAA), mail, MX, shop (a CNAME into cdn.test),
                                                many (90 A records: too big for one UDP reply)
    cdn.test.      ns.cdn.test      192.0.2.4   shop → edge (another CNAME), edge (A)

`.test` is reserved for testing (RFC 6761), 192.0.2.0/24 and 198.51.100.0/24 for documentation
(RFC 5737), 2001:db8::/32 too (RFC 3849): no name or address here is anyone's on the Internet.
A delegation is the parent's NS record plus the child server's address (glue), both made here
from `SERVERS`, so a zone and its parent's referral always agree.

Rules for this file: the zones are data (`records`), the files are written from them; nothing here
runs a program.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path

__all__ = ["SERVERS", "TTL", "NEGATIVE_TTL", "MANY", "records", "zone_file", "nsd_config", "unbound_config",
           "root_hints", "zone_of", "check_name"]

# zone → (its server's name, its server's address): one NSD each.
SERVERS: dict[str, tuple[str, str]] = {
    ".": ("a.root.test.", "192.0.2.1"),
    "test.": ("ns.nic.test.", "192.0.2.2"),
    "example.test.": ("ns1.example.test.", "192.0.2.3"),
    "cdn.test.": ("ns.cdn.test.", "192.0.2.4"),
}
TTL = 300  # seconds: every record's time to live
DELEGATION_TTL = 3600  # seconds: NS and glue in a parent zone (a referral is cached longer than an answer)
NEGATIVE_TTL = 60  # seconds: how long a "no such name" is cached (the SOA's last field, RFC 2308)
MANY = 90  # A records of many.example.test: 90 × 16 bytes does not fit in 1232 (the EDNS size resolvers use)

_RECORDS: dict[str, list[tuple[str, str, str]]] = {
    "example.test.": [
        ("www", "A", "198.51.100.80"),
        ("www", "AAAA", "2001:db8::80"),
        ("@", "MX", "10 mail.example.test."),
        ("mail", "A", "198.51.100.25"),
        ("shop", "CNAME", "shop.cdn.test."),
        *(("many", "A", f"198.51.100.{100 + i}") for i in range(MANY)),
    ],
    "cdn.test.": [
        ("shop", "CNAME", "edge.cdn.test."),
        ("edge", "A", "198.51.100.81"),
    ],
}

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")


def check_name(name: object) -> str:
    """`name` as a fully qualified lower-case name ("www.example.test."); a ValueError naming what is wrong."""
    if not isinstance(name, str) or not name.strip("."):
        raise ValueError(f"a DNS name is text such as 'www.example.test', not {name!r}")
    text = name.lower().rstrip(".")
    if len(text) > 253:
        raise ValueError(f"a DNS name has at most 253 characters: {name[:40]!r}... has {len(text)}")
    for label in text.split("."):
        if not _LABEL.match(label):
            raise ValueError(f"{name!r} is not a DNS name: its label {label!r} is not 1 to 63 letters, digits or "
                             "hyphens (not starting or ending with one)")
    return text + "."


def zone_of(name: str) -> str:
    """The zone (of `SERVERS`) a fully qualified name belongs to: the longest that ends it."""
    best = "."
    for zone in SERVERS:
        if zone != "." and (name == zone or name.endswith("." + zone)) and len(zone) > len(best):
            best = zone
    return best


def records(extra: dict[str, str] | None = None) -> dict[str, list[tuple[str, str, int, str]]]:
    """Every zone's records as (owner, type, TTL, value), owners fully qualified; `extra` adds A records (name → IPv4).

    A zone's own NS and its server's address come first; then each child zone's NS and glue
    (the delegation); then the zone's data.
    """
    zones: dict[str, list[tuple[str, str, int, str]]] = {}
    for zone, (server, address) in SERVERS.items():
        rows = [(zone, "NS", DELEGATION_TTL, server), (server, "A", DELEGATION_TTL, address)]
        for child, (child_server, child_address) in SERVERS.items():
            if child != zone and _parent(child) == zone:
                rows.append((child, "NS", DELEGATION_TTL, child_server))
                rows.append((child_server, "A", DELEGATION_TTL, child_address))  # glue
        # A server's address where its name lives (a.root.test is a name in test.): asked for, it is answered.
        rows += [(name, "A", DELEGATION_TTL, addr) for name, addr in SERVERS.values()
                 if zone != "." and zone_of(name) == zone and (name, "A", DELEGATION_TTL, addr) not in rows]
        for owner, kind, value in _RECORDS.get(zone, []):
            rows.append((zone if owner == "@" else f"{owner}.{zone}", kind, TTL, value))
        zones[zone] = rows
    for name, address in (extra or {}).items():
        fqdn = check_name(name)
        zone = zone_of(fqdn)
        if zone not in _RECORDS:
            raise ValueError(f"{name!r} is in no zone with data of its own (example.test or cdn.test)")
        zones[zone].append((fqdn, "A", TTL, str(ipaddress.IPv4Address(address))))
    return zones


def _parent(zone: str) -> str:
    """The zone of `SERVERS` just above `zone`."""
    rest = zone.split(".", 1)[1] or "."
    return zone_of(rest) if rest != "." else "."


def zone_file(zone: str, rows: list[tuple[str, str, int, str]]) -> str:
    """A zone file (RFC 1035's master file format) as NSD reads it: the SOA, then one record per line."""
    server = SERVERS[zone][0]
    lines = [f"$ORIGIN {zone}", f"$TTL {TTL}",
             # serial, refresh, retry, expire, and the negative-caching TTL (RFC 2308)
             f"{zone} {TTL} IN SOA {server} hostmaster.{zone.lstrip('.') or ''} 1 3600 600 86400 {NEGATIVE_TTL}"]
    lines += [f"{owner} {ttl} IN {kind} {value}" for owner, kind, ttl, value in rows]
    return "\n".join(lines) + "\n"


def nsd_config(folder: Path, zone: str) -> str:
    """NSD's configuration for one zone's server: its address, its files in `folder`, no privileges to drop."""
    tag = _tag(zone)
    return f"""server:
  ip-address: {SERVERS[zone][1]}
  port: 53
  username: ""
  chroot: ""
  zonesdir: "{folder}"
  database: ""
  zonelistfile: "{folder}/nsd-{tag}.zonelist"
  xfrdfile: "{folder}/nsd-{tag}.xfrd"
  xfrdir: "{folder}"
  pidfile: "{folder}/nsd-{tag}.pid"
  server-count: 1
  verbosity: 1
  hide-version: yes
  reuseport: no
  round-robin: no
remote-control:
  control-enable: no
zone:
  name: "{zone}"
  zonefile: "{tag}.zone"
"""


def _tag(zone: str) -> str:
    return zone.rstrip(".").replace(".", "-") or "root"


def root_hints() -> str:
    """What a resolver knows before its first question: the root's name server and its address."""
    server, address = SERVERS["."]
    return f".  3600000 IN NS {server}\n{server} 3600000 IN A {address}\n"


def unbound_config(folder: Path, listen: str, allow: str) -> str:
    """Unbound as a plain recursive resolver on `listen`, answering clients in `allow`, files in `folder`.

    Its options say what a lesson needs to see: no DNSSEC (module iterator only), the whole name
    asked at each level (qname-minimisation off: with it a root server would be asked only for
    `test.`), no addresses fetched ahead for name servers (target-fetch-policy), and `.test`
    looked up like any name (Unbound answers it locally by default, RFC 6761).
    """
    return f"""server:
  interface: {listen}
  port: 53
  access-control: {allow} allow
  username: ""
  chroot: ""
  directory: "{folder}"
  pidfile: "{folder}/unbound.pid"
  use-syslog: no
  logfile: ""
  verbosity: 1
  do-daemonize: no
  do-ip6: no
  num-threads: 1
  so-reuseport: no
  root-hints: "{folder}/root.hints"
  module-config: "iterator"
  qname-minimisation: no
  target-fetch-policy: "0 0 0 0 0"
  prefetch: no
  minimal-responses: yes
  local-zone: "test." nodefault
  do-not-query-localhost: yes
remote-control:
  control-enable: no
"""


def write_all(folder: Path, extra: dict[str, str] | None = None) -> dict[str, Path]:
    """Write each zone's file and NSD configuration into `folder`; return zone → its configuration's path."""
    folder = Path(folder)
    configs = {}
    for zone, rows in records(extra).items():
        (folder / f"{_tag(zone)}.zone").write_text(zone_file(zone, rows))
        conf = folder / f"nsd-{_tag(zone)}.conf"
        conf.write_text(nsd_config(folder, zone))
        configs[zone] = conf
    (folder / "root.hints").write_text(root_hints())
    return configs
