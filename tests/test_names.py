"""Notebook 12's home network: the zones as data, DNS from the root down through Unbound, the cache,
truncation, DHCP from dnsmasq, NAT with nftables, and the exercises' verdicts (with their bad inputs).

One live network serves the tests that only read it; the tests of the daemons' life and of the
checks that run in a fresh lab make their own.
"""

import os
import random
import re
import subprocess
import sys
import time

import pytest

from netlab.core.lab import Lab, lab_available
from netlab.core.programs import find
from netlab.core.topology import Topology
from netlab.lessons.names import checks, zones
from netlab.lessons.names import experiments as names

LIVE = lab_available()[0]
live = pytest.mark.skipif(not LIVE, reason="this machine refuses the lab")
with_dns = pytest.mark.skipif(find("nsd") is None or find("unbound") is None, reason="no nsd or unbound (apt: nsd unbound)")
with_dhcp = pytest.mark.skipif(find("dnsmasq") is None, reason="no dnsmasq (apt: dnsmasq-base)")
with_nft = pytest.mark.skipif(find("nft") is None, reason="no nft (apt: nftables)")


@pytest.fixture(scope="module")
def home():
    with names.HomeNetwork() as network:
        if not network.live:
            pytest.skip(network.why)
        yield network


# A resolver written as the exercise asks, and two that are not: as a student's source would be.
def _following(name, root, ask):
    from dnslib import QTYPE, DNSRecord

    server = root
    for _ in range(10):
        reply = DNSRecord.parse(ask(server, DNSRecord.question(name, "A").pack()))
        found = [str(r.rdata) for r in reply.rr if r.rtype == QTYPE.A]
        if found:
            return found
        glue = [str(r.rdata) for r in reply.ar if r.rtype == QTYPE.A]
        if not glue:
            return []
        server = glue[0]
    return []


def _recursive(name, root, ask):  # lets the home router's resolver do the walk
    from dnslib import DNSRecord

    return [str(r.rdata) for r in DNSRecord.parse(ask("192.168.1.1", DNSRecord.question(name).pack())).rr]


def _root_only(name, root, ask):  # stops at the first referral
    from dnslib import DNSRecord

    return [str(r.rdata) for r in DNSRecord.parse(ask(root, DNSRecord.question(name).pack())).rr]


# --- the zones and the plan, as data ------------------------------------------------------


def test_each_zone_delegates_to_the_next_with_glue_and_its_servers_addresses_are_answered():
    rows = zones.records()
    assert set(rows) == {".", "test.", "example.test.", "cdn.test."}
    assert ("test.", "NS", 3600, "ns.nic.test.") in rows["."] and ("ns.nic.test.", "A", 3600, "192.0.2.2") in rows["."]
    assert ("example.test.", "NS", 3600, "ns1.example.test.") in rows["test."]
    assert ("cdn.test.", "NS", 3600, "ns.cdn.test.") in rows["test."]
    assert ("a.root.test.", "A", 3600, "192.0.2.1") in rows["test."]  # the root server's name lives in test.
    assert sum(1 for r in rows["example.test."] if r[0] == "many.example.test.") == zones.MANY
    assert zones.MANY * 16 > 1232  # more than the EDNS size resolvers offer: truncated over UDP


def test_a_zone_file_starts_with_its_soa_whose_last_field_is_the_negative_ttl():
    text = zones.zone_file("example.test.", zones.records()["example.test."])
    soa = text.splitlines()[2].split()
    assert soa[3] == "SOA" and soa[-1] == str(zones.NEGATIVE_TTL)
    assert "shop.example.test. 300 IN CNAME shop.cdn.test." in text


def test_extra_names_land_in_their_zone():
    rows = zones.records({"abc.cdn.test": "198.51.100.7"})
    assert ("abc.cdn.test.", "A", zones.TTL, "198.51.100.7") in rows["cdn.test."]
    with pytest.raises(ValueError, match="no zone with data"):
        zones.records({"abc.test": "198.51.100.7"})


@pytest.mark.parametrize("bad, words", [
    ("", "is text such as"), (7, "is text such as"), ("www..example.test", "label ''"),
    ("-www.example.test", "not 1 to 63"), ("a" * 64 + ".test", "not 1 to 63"), ("www.exa mple.test", "label 'exa mple'"),
])
def test_a_name_that_is_not_one_gets_one_sentence(bad, words):
    with pytest.raises(ValueError, match=words):
        names.lookup(name=bad)


def test_a_discover_that_is_not_a_frame_gets_one_sentence():
    with pytest.raises(ValueError, match="scapy packet built from Ether"):
        names.dhcp_offer(None, b"\x01\x02")
    from scapy.layers.inet import IP, UDP

    with pytest.raises(ValueError, match="scapy packet built from Ether"):
        names.dhcp_offer(None, IP() / UDP())


@pytest.mark.parametrize("question, words", [
    (("example.test", "MXX"), "'MXX' is not a DNS record type"), (("example.test", 15), "15 is not a DNS record type"),
    (("exa mple.test", "A"), "is not a DNS name"), ("example.test", "a (name, record type) pair"),
])
def test_a_question_that_is_not_one_gets_one_sentence(question, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        names.records(questions=[question])


def test_a_variant_never_recorded_is_one_sentence_where_the_lab_is_refused(monkeypatch):
    monkeypatch.setenv("NETLAB_RECORDED", "1")
    with pytest.raises(ValueError, match="'names-nat-30000' was not recorded: netlab ships names-nat, names-nat-one"):
        names.nat(port=30000)
    with pytest.raises(ValueError, match="'names-lookup-abc.example.test' was not recorded"):
        names.lookup(name="abc.example.test")
    with pytest.raises(ValueError, match="'names-records-yours' was not recorded: netlab ships names-records"):
        names.records(questions=[("example.test", "mx")])
    assert names.records().source == "recorded"


@pytest.mark.parametrize("port", [0, 80, 70000, "20000", True])
def test_a_nat_port_out_of_range_gets_one_sentence(port):
    with pytest.raises((TypeError, ValueError), match="port"):
        names.nat(port=port)


def test_plan_holds_home_and_internet_and_no_route_to_the_private_network():
    assert names.PLAN.routers == ("home", "internet")
    assert names.PLAN.owner(names.ROOT) == "internet" and names.PLAN.owner(names.HOME_OUT) == "home"
    assert "internet" not in names.PLAN.routes  # only the home router's public address is reachable from there


# --- what a frame says ------------------------------------------------------------------


def test_a_referral_names_the_zone_its_servers_and_glue_and_leaves_the_askers_port_out():
    from dnslib import NS, QTYPE, RR, A, DNSRecord
    from scapy.layers.inet import IP, UDP
    from scapy.layers.l2 import Ether

    query = DNSRecord.question("www.example.test")
    reply = query.reply()
    reply.header.aa = 0
    reply.add_auth(RR("test.", QTYPE.NS, rdata=NS("ns.nic.test.")))
    reply.add_ar(RR("ns.nic.test.", QTYPE.A, rdata=A("192.0.2.2")))
    pkt = Ether() / IP(src="192.0.2.1", dst="203.0.113.2") / UDP(sport=53, dport=41234) / reply.pack()
    pkt = Ether(bytes(pkt))
    pkt.sniffed_on = "w0"
    line = names.describe(pkt)
    assert line == ("w0  192.0.2.1:53 → 203.0.113.2  UDP referral A www.example.test: test is served by ns.nic.test "
                    "(glue 192.0.2.2)")


def test_a_long_dns_message_over_tcp_is_followed_across_segments():
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    message = (1500).to_bytes(2, "big") + bytes([0, 1, 0x84, 0]) + bytes(1496)
    first = Ether(bytes(Ether() / IP(src="192.0.2.3", dst="203.0.113.2") / TCP(sport=53, dport=40001) / message[:1000]))
    rest = Ether(bytes(Ether() / IP(src="192.0.2.3", dst="203.0.113.2") / TCP(sport=53, dport=40001) / message[1000:]))
    first.sniffed_on = rest.sniffed_on = "w0"
    exp = names.NamesExperiment([first, rest], "live", "test")
    assert exp.lines() == ["w0  192.0.2.3:53 → 203.0.113.2  TCP DNS answer: a 1500-byte message, its first 998 bytes here",
                           "w0  192.0.2.3:53 → 203.0.113.2  TCP DNS: the next 502 bytes of that message"]


# --- verdicts on data alone -------------------------------------------------------------


def test_walk_verdict_accepts_the_order_and_points_at_the_first_wrong_server():
    asked = ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    assert checks.verdict_walk("www.example.test", asked, list(asked))
    wrong = checks.verdict_walk("www.example.test", asked, ["192.0.2.1", "192.0.2.3", "192.0.2.3"])
    assert not wrong and "first 1 servers are right" in wrong.message
    assert "192.0.2.2" not in wrong.message  # no answer given away
    assert "has 1 servers" in checks.verdict_walk("www.example.test", asked, ["192.0.2.1"]).message
    assert "list of the servers" in checks.verdict_walk("www.example.test", asked, "192.0.2.1").message


def test_resolver_verdict_refuses_recursion_a_wrong_start_and_wrong_addresses():
    good = {"a.example.test": {"yours": ["198.51.100.9"], "unbound": ["198.51.100.9"],
                               "asked": ["192.0.2.1", "192.0.2.2", "192.0.2.3"]}}
    assert checks.verdict_resolver(good, "192.0.2.1", "192.168.1.1")
    lazy = {"a.example.test": {**good["a.example.test"], "asked": ["192.168.1.1"]}}
    assert "recursive resolver" in checks.verdict_resolver(lazy, "192.0.2.1", "192.168.1.1").message
    elsewhere = {"a.example.test": {**good["a.example.test"], "asked": ["192.0.2.3"]}}
    assert "start at the root" in checks.verdict_resolver(elsewhere, "192.0.2.1", "192.168.1.1").message
    short = {"a.example.test": {**good["a.example.test"], "yours": [], "asked": ["192.0.2.1"]}}
    verdict = checks.verdict_resolver(short, "192.0.2.1", "192.168.1.1")
    assert not verdict and "198.51.100.9" not in verdict.message
    raised = {"a.example.test": {**good["a.example.test"], "yours": "TimeoutError: timed out"}}
    assert "raised TimeoutError" in checks.verdict_resolver(raised, "192.0.2.1", "192.168.1.1").message


def test_dhcp_verdict_names_each_wrong_field_only():
    offer = {"kind": "OFFER", "address": "192.168.1.150", "router": "192.168.1.1", "dns": "192.168.1.1", "lease": 120,
             "renewal": 60, "server": "192.168.1.1"}
    right = {"address": "192.168.1.150", "router": "192.168.1.1", "dns": "192.168.1.1", "lease": 120}
    assert checks.verdict_dhcp(offer, right)
    verdict = checks.verdict_dhcp(offer, {**right, "lease": "120", "dns": "8.8.8.8"})
    assert not verdict and "lease:" in verdict.message and "dns:" in verdict.message and "address:" not in verdict.message
    assert "No OFFER came back" in checks.verdict_dhcp(None, right).message
    assert "exactly these keys" in checks.verdict_dhcp(offer, {"address": "x"}).message


def test_nat_verdict_tells_address_port_and_destination_apart():
    inside, outside = [("192.168.1.2", 30000, "198.51.100.80", 80)], [("203.0.113.2", 30000, "198.51.100.80", 80)]
    assert checks.verdict_nat(("203.0.113.2", 30000, "198.51.100.80", 80), inside, outside)
    private = checks.verdict_nat(("192.168.1.2", 30000, "198.51.100.80", 80), inside, outside)
    assert not private and "source address" in private.message and "source port" not in private.message
    assert "source port" in checks.verdict_nat(("203.0.113.2", 30001, "198.51.100.80", 80), inside, outside).message
    assert "tuple of four" in checks.verdict_nat("203.0.113.2:30000", inside, outside).message


def test_drawn_names_are_new_names_in_both_zones():
    drawn = checks.drawn_names(random.Random(5))
    assert len(drawn) == 4 and {n.split(".", 1)[1] for n in drawn} == {"example.test", "cdn.test"}
    assert not set(drawn) & {r[0].rstrip(".") for rows in zones.records().values() for r in rows}


@pytest.mark.parametrize("name", sorted(names.RECORDINGS))
def test_recordings_load_with_their_interfaces(name, monkeypatch):
    monkeypatch.setenv("NETLAB_RECORDED", "1")
    with names.HomeNetwork() as recorded:
        assert not recorded.live
        exp = names._run(recorded, None, name)
    assert exp.source == "recorded" and isinstance(exp.result, dict)
    assert {getattr(p, "sniffed_on", None) for p in exp.packets} <= {i.name for i in names.PLAN.interfaces}
    assert exp.lines()  # every frame says something


def test_the_walk_exercise_draws_only_names_it_has_recordings_for(monkeypatch):
    monkeypatch.setenv("NETLAB_RECORDED", "1")
    for name in {names.walk_name() for _ in range(40)}:
        exp = names.lookup(name=name)
        assert exp.result["name"] == name and checks.asked_for(exp, name)[0] == names.ROOT


# --- live ---------------------------------------------------------------------------------


@pytest.mark.lab
@live
@with_dns
@with_nft
def test_a_lookup_walks_from_the_root_once_and_then_comes_from_the_cache(home):
    exp = names.lookup(home, name="shop.example.test")
    r = exp.result
    assert r["addresses"][0] == r["addresses"][1] and "198.51.100.81" in r["addresses"][0]
    assert checks.asked_for(exp, "shop.example.test") == ["192.0.2.1", "192.0.2.2", "192.0.2.3"]
    assert checks.asked_for(exp, "shop.cdn.test") == ["192.0.2.2", "192.0.2.4"]  # the CNAME: test. was cached
    assert r["upstream"][0] and r["upstream"][1] == []
    lines = exp.lines(keep=lambda p: p.haslayer("DNS"))
    assert any("referral" in line and "glue 192.0.2.3" in line for line in lines)


@pytest.mark.lab
@live
@with_dns
def test_each_record_type_asked_gets_its_records_and_a_chain_is_followed(home):
    answers = dict(names.records(home).result["answers"])
    assert answers["example.test MX"] == ["example.test MX 10 mail.example.test"]
    assert answers["shop.example.test A"][-1] == "edge.cdn.test A 198.51.100.81" and len(answers["shop.example.test A"]) == 3
    yours = dict(names.records(home, [("example.test", "soa"), ("www.example.test", "TXT")]).result["answers"])
    assert yours["example.test SOA"][0].startswith("example.test SOA ns1.example.test")
    assert yours["www.example.test TXT"] == []


@pytest.mark.lab
@live
@with_dns
def test_the_cache_counts_ttls_down_and_keeps_no_such_name(home):
    r = names.cache(home, wait=1.2).result
    assert r["ttl"][0] == zones.TTL and 0 < r["ttl"][0] - r["ttl"][1] <= 3
    assert r["negative"] == ["NXDOMAIN", "NXDOMAIN"] and r["negative_ttl"][0] == zones.NEGATIVE_TTL
    assert [len(q) for q in r["upstream"]][1:] == [0, 1, 0]


@pytest.mark.lab
@live
@with_dns
def test_a_big_answer_is_truncated_over_udp_and_whole_over_tcp_on_both_hops(home):
    exp = names.truncated(home)
    r = exp.result
    assert r["udp_truncated"] and r["records"] == zones.MANY
    upstream = [line for line in r["upstream"] if "query" in line or "answer" in line]
    assert "UDP query A many.example.test" in upstream[0] and "UDP answer TC" in upstream[1]
    assert "TCP query A many.example.test" in upstream[2] and "TCP DNS answer" in upstream[3]
    assert any(p.haslayer("TCP") and p["TCP"].dport == 53 for p in exp.on("l0"))  # the laptop asked again over TCP


@pytest.mark.lab
@live
@with_dhcp
def test_dhcp_gives_the_laptop_its_address_router_dns_and_lease_and_renews(home):
    exp = names.dhcp(home)
    r = exp.result
    for step in ("offer", "ack", "renewed"):
        assert r[step]["address"] == names.LAPTOP and r[step]["router"] == names.HOME and r[step]["lease"] == 120
    kinds = [line.split("DHCP ")[1].split()[0] for line in exp.lines(keep=lambda p: p.haslayer("DHCP"))]
    assert kinds == ["DISCOVER", "OFFER", "REQUEST", "ACK", "REQUEST", "ACK"]
    assert exp.packets[0]["IP"].src == "0.0.0.0" and exp.packets[0]["Ether"].dst == "ff:ff:ff:ff:ff:ff"


@pytest.mark.lab
@live
@with_dhcp
def test_a_discover_from_another_mac_gets_an_address_from_the_pool(home):
    exp = names.dhcp_offer(home, names.discover_for("02:00:00:00:12:34", 4321))
    offer = exp.result["offer"]
    assert offer is not None and names.POOL[0] <= offer["address"] <= names.POOL[1]


@pytest.mark.lab
@live
@with_nft
def test_nat_rewrites_the_source_and_a_clash_the_port_and_keeps_out_what_was_not_asked_for(home):
    r = names.nat(home).result
    assert r["outside"][0] == ("203.0.113.2", 20000, "198.51.100.80", 80)
    assert r["outside"][1][0] == "203.0.113.2" and r["outside"][1][1] != 20000
    assert {peer[0] for peer in r["server_saw"]} == {"203.0.113.2"}
    assert r["conntrack"][0].startswith("ESTABLISHED  192.168.1.2:20000 → 198.51.100.80:80")
    closed = names.unsolicited(home).result
    assert not closed["connected"] and closed["inside"] == [] and closed["laptop_saw"] == []
    opened = names.unsolicited(home, forward=True).result
    assert opened["connected"] and opened["laptop_saw"][0][0] == names.INTERNET
    assert opened["inside"][0][2:] == ("192.168.1.2", 8080)
    assert not names.unsolicited(home).result["connected"]  # the port forward was taken away


@pytest.mark.lab
@live
@with_dns
@with_nft
def test_the_resolver_check_runs_a_students_function_on_names_it_has_not_seen():
    assert checks.iterative_resolver(_following)
    assert "recursive resolver" in checks.iterative_resolver(_recursive).message
    assert not checks.iterative_resolver(_root_only)


@pytest.mark.lab
@live
@with_nft
def test_the_nat_check_runs_the_drawn_port():
    port = names.nat_port()
    assert checks.nat_prediction(port, ("203.0.113.2", port, "198.51.100.80", 80))
    assert not checks.nat_prediction(port, ("192.168.1.2", port, "198.51.100.80", 80))


@pytest.mark.lab
@live
@with_dns
@with_dhcp
def test_the_daemons_end_with_their_topology():
    with Lab() as lab:
        lab.check_join()
        with Topology(lab, names.PLAN, ipv6=False) as topo:
            names._dns(topo)
            names._dhcp_server(topo)
            pids = [d.pid for d in names._daemons(topo).nsd] + [names._daemons(topo).unbound.pid,
                                                                 names._daemons(topo).dnsmasq.pid]
            assert all(_alive(pid) for pid in pids)
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and any(_alive(pid) for pid in pids):
            time.sleep(0.05)
        assert not any(_alive(pid) for pid in pids)


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.slow
def test_cli_names_recorded_says_so_and_lists_the_walk():
    env = dict(os.environ, NETLAB_RECORDED="1")
    done = subprocess.run([sys.executable, "-m", "netlab", "names"], capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("recorded: NETLAB_RECORDED is set")
    assert "192.0.2.1 (root): query A www.example.test?" in done.stdout
    assert "the same lookup again: 0 queries upstream" in done.stdout
    bad = subprocess.run([sys.executable, "-m", "netlab", "names", "no such.name"], capture_output=True, text=True,
                         timeout=60, env=env)
    assert bad.returncode != 0 and bad.stderr.count("\n") == 1 and "is not a DNS name" in bad.stderr


@pytest.mark.lab
@live
@with_dns
def test_a_resolver_that_cannot_start_says_why_at_once_and_gives_the_recording(monkeypatch):
    # Unbound refusing its configuration (as AppArmor's profile makes it on Ubuntu): a bad option stands in for it.
    monkeypatch.setattr(zones, "unbound_config", lambda folder, listen, allow: "server:\n  no-such-option: yes\n")
    started = time.monotonic()
    exp = names.lookup()
    assert time.monotonic() - started < names._READY
    assert exp.source == "recorded" and "Unbound did not start in the lab" in exp.why and "error" in exp.why
