"""Notebook 10's path: the topology in the lab, and each experiment's behaviour on the wire.

One live path serves the tests that only read it (each experiment puts back what it changes);
the tests of building and closing make their own.
"""

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from netlab.core.lab import Lab, lab_available
from netlab.core.topology import INTERFACES, Topology
from netlab.lessons.below import experiments as below

LIVE = lab_available()[0]
live = pytest.mark.skipif(not LIVE, reason="this machine refuses the lab")


@pytest.fixture(scope="module")
def path():
    with below.LabPath() as lab_path:
        if not lab_path.live:
            pytest.skip(lab_path.why)
        yield lab_path


@pytest.mark.lab
@live
def test_first_datagram_is_preceded_by_arp_on_each_link_and_rewritten_by_the_router(path):
    exp = below.first_datagram(path)
    assert exp.result["arrived"]
    for link, asker, asked in (("c0", "10.1.0.2", "10.1.0.1"), ("r1", "10.2.0.1", "10.2.0.2")):
        frames = exp.on(link)
        assert frames[0].haslayer("ARP") and frames[0]["ARP"].op == 1 and frames[0]["ARP"].pdst == asked
        assert frames[0]["ARP"].psrc == asker and frames[0].dst == "ff:ff:ff:ff:ff:ff"
        assert frames[1].haslayer("ARP") and frames[1]["ARP"].op == 2
        assert frames[2].haslayer("UDP")
    c0, r1 = (next(p for p in exp.on(link) if p.haslayer("UDP")) for link in ("c0", "r1"))
    assert (c0["IP"].src, c0["IP"].dst) == (r1["IP"].src, r1["IP"].dst) == ("10.1.0.2", "10.2.0.2")
    assert r1["IP"].ttl == c0["IP"].ttl - 1
    assert (c0.src, c0.dst) == (INTERFACES["c0"].mac, INTERFACES["r0"].mac)
    assert (r1.src, r1.dst) == (INTERFACES["r1"].mac, INTERFACES["s0"].mac)
    assert (r1["IP"].chksum - c0["IP"].chksum) % 0xFFFF == 0x0100  # RFC 1624: TTL is the high byte of its word
    assert any("10.1.0.1" in line and "REACHABLE" in line for line in exp.result["neighbours"]["client"])
    assert not any("10.2.0.2" in line for line in exp.result["neighbours"]["client"])


@pytest.mark.lab
@live
def test_ttl_1_is_answered_by_the_router_with_time_exceeded(path):
    exp = below.first_datagram(path, ttl=1)
    assert not exp.result["arrived"]
    icmp = [p for p in exp.on("c0") if p.haslayer("ICMP")]
    assert [(p["IP"].src, p["ICMP"].type) for p in icmp] == [("10.1.0.1", 11)]
    assert not any(p.haslayer("UDP") and not p.haslayer("ICMP") for p in exp.on("r1"))


@pytest.mark.lab
@live
def test_missing_routes_fail_locally_and_at_the_router(path):
    exp = below.unreachable(path)
    assert exp.result["local_errno"] == 101  # ENETUNREACH, nothing sent
    assert exp.result["from_router"] == "network unreachable"
    assert exp.result["from_address"] == "10.1.0.1"
    assert path.net.client.run("ip", "route").startswith("default via 10.1.0.1")  # put back


@pytest.mark.lab
@live
@pytest.mark.skipif(shutil.which("tracepath") is None, reason="no tracepath (apt: iputils-tracepath)")
def test_traceroute_finds_the_same_hops_as_tracepath(path):
    ours = [h.address for h in below.hops_of(below.trace(path))]
    assert ours == ["10.1.0.1", "10.2.0.2"]
    assert below.tracepath(path.net) == ours


@pytest.mark.lab
@live
def test_traceroute_stops_at_an_address_the_router_owns(path):
    hops = below.traceroute(lambda: path.net.client.socket(socket.AF_INET, socket.SOCK_DGRAM), below.ROUTER_FAR)
    assert [(h.address, h.reply) for h in hops] == [("10.2.0.1", "port unreachable")]
    assert 0 < hops[0].rtt < 1.0


@pytest.mark.lab
@live
def test_path_mtu_discovery_lowers_the_segment_size(path):
    exp = below.path_mtu(path, mtu=1280, size=8000)
    r = exp.result
    assert (r["mss_before"], r["mss_after"], r["received"]) == (1448, 1228, 8000)
    needed = [p for p in exp.on("c0") if p.haslayer("ICMP") and (p["ICMP"].type, p["ICMP"].code) == (3, 4)]
    assert needed and all(p["ICMP"].nexthopmtu == 1280 for p in needed)
    assert max(p["IP"].len for p in exp.on("r1") if p.haslayer("TCP")) <= 1280
    assert "mtu 1500" in path.net.router.run("ip", "link", "show", "r1")  # put back


@pytest.mark.lab
@live
def test_blocking_fragmentation_needed_makes_a_black_hole(path):
    exp = below.path_mtu(path, mtu=1280, size=8000, blocked=True, seconds=1.0)
    assert exp.result["received"] == 0
    assert exp.result["mss_after"] == 1448
    assert any(p.haslayer("ICMP") for p in exp.on("c0"))  # sent by the router, dropped in the client
    assert "netlab_blackhole" not in path.net.client.run("nft", "list", "tables")


@pytest.mark.lab
@live
def test_a_name_is_resolved_by_the_labs_dns_server_before_the_handshake(path):
    exp = below.resolve(path)
    assert exp.result["peer"] == ["10.2.0.2", 80]
    assert "A server.netlab.test" in exp.result["questions"]
    dns = [i for i, p in enumerate(exp.packets) if p.haslayer("DNS")]
    syn = next(i for i, p in enumerate(exp.packets) if p.haslayer("TCP"))
    assert dns and max(dns) < syn
    assert all(p["IP"].dst == "10.2.0.2" for p in exp.packets if p.haslayer("DNS") and not p["DNS"].qr)


@pytest.mark.lab
@live
def test_an_unknown_name_fails_in_the_lab(path):
    exp = below.resolve(path, name="nowhere.netlab.test")
    assert "error" in exp.result and "peer" not in exp.result


@pytest.mark.lab
@live
def test_ipv6_uses_neighbour_discovery_not_arp(path):
    exp = below.ipv6_handshake(path)
    assert exp.result["received"] == "hello over IPv6"
    assert not any(p.haslayer("ARP") for p in exp.packets)
    assert any(p.haslayer("ICMPv6ND_NS") for p in exp.on("c0")) and any(p.haslayer("ICMPv6ND_NA") for p in exp.on("c0"))
    syn = [p for p in exp.on("r1") if p.haslayer("TCP") and p["TCP"].flags == "S"]
    assert syn[0]["IPv6"].hlim == 63


@pytest.mark.lab
@live
def test_topology_closes_without_leaving_its_agent_or_links():
    with Lab() as lab:
        with Topology(lab) as net:
            agent = net._agent
            assert "c0" in lab.run("ip", "-o", "link", "show")
        assert agent.poll() is not None
        assert "c0" not in lab.run("ip", "-o", "link", "show")


def test_bad_mtu_and_interface_names_are_refused():
    with pytest.raises(ValueError, match="r9"):
        Topology(None, mtu={"r9": 1400})
    with pytest.raises(ValueError, match="MTU"):
        Topology(None, mtu={"r1": 500})


@pytest.mark.parametrize("name", sorted(below.RECORDINGS))
def test_recordings_load_with_their_interfaces(name, monkeypatch):
    monkeypatch.setenv("NETLAB_RECORDED", "1")
    with below.LabPath() as recorded:
        assert not recorded.live
        exp = below._run(recorded, None, name)
    assert exp.source == "recorded" and exp.packets
    assert {getattr(p, "sniffed_on", None) for p in exp.packets} <= {"c0", "r0", "r1", "s0"}


@pytest.mark.slow
def test_cli_traceroute_prints_the_router_then_the_server():
    done = subprocess.run([sys.executable, "-m", "netlab", "traceroute"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[2].split()[:3] == ["1", "10.1.0.1", "router"] and "time exceeded" in lines[2]
    assert lines[3].split()[:3] == ["2", "10.2.0.2", "server"] and "port unreachable" in lines[3]
    assert lines[2].split()[4] == "ms"


def test_router_rewrite_check_points_at_the_wrong_field_without_the_answer(monkeypatch):
    monkeypatch.setenv("NETLAB_RECORDED", "1")
    from netlab import checks

    exp = below.first_datagram()
    c0, r1 = (next(p for p in exp.on(link) if p.haslayer("UDP")) for link in ("c0", "r1"))
    right = {"ttl_on_c0": c0["IP"].ttl, "ttl_on_r1": r1["IP"].ttl, "source_mac_on_r1": r1.src,
             "checksum_on_r1": r1["IP"].chksum}
    assert checks.router_rewrite(exp, right)
    wrong = dict(right, source_mac_on_r1=c0.src, checksum_on_r1=c0["IP"].chksum)
    fb = checks.router_rewrite(exp, wrong)
    assert not fb and "source_mac_on_r1" in fb.message and "checksum_on_r1" in fb.message
    assert r1.src not in fb.message and f"{r1['IP'].chksum}" not in fb.message
    assert repr(checks.router_rewrite(exp, ...)).startswith("✘ Not answered yet")


@pytest.mark.lab
@live
def test_route_prediction_check_sends_probes_drawn_at_random_and_names_the_case_not_the_answer():
    from netlab import checks

    def right(destination, ttl):
        if destination in (below.ROUTER, below.ROUTER_FAR):
            return destination, "port unreachable"
        if destination == below.NOWHERE:
            return below.ROUTER, "network unreachable"
        return (below.ROUTER, "time exceeded") if ttl == 1 else (destination, "port unreachable")

    def no_route_forgotten(destination, ttl):  # right, but a packet with no route is taken for one that arrives
        if destination == below.NOWHERE:
            return (below.ROUTER, "time exceeded") if ttl == 1 else (destination, "port unreachable")
        return right(destination, ttl)

    assert checks.route_prediction(right)
    fb = checks.route_prediction(no_route_forgotten)  # every draw holds a probe to NOWHERE, which this gets wrong
    assert not fb and f"to {below.NOWHERE} with TTL" in fb.message
    assert "network unreachable" not in fb.message.lower()
    assert "pair" in checks.route_prediction(lambda destination, ttl: destination).message
    assert repr(checks.route_prediction(...)).startswith("✘ Not answered yet")


@pytest.mark.lab
@live
def test_own_traceroute_check_reads_replies_the_library_cannot_make():
    from scapy.layers.inet import ICMP, IP

    from netlab import checks

    def right(send_probe, destination):
        hops = []
        for ttl in range(1, 9):
            reply = send_probe(destination, ttl)
            if reply is None:
                hops.append(None)
                continue
            hops.append(IP(reply).src)
            if IP(reply)[ICMP].type != 11:
                break
        return hops

    def stops_at_silence(send_probe, destination):
        hops = []
        for ttl in range(1, 9):
            reply = send_probe(destination, ttl)
            hops.append(None if reply is None else IP(reply).src)
            if reply is None or IP(reply)[ICMP].type != 11:
                break
        return hops

    def borrowed(send_probe, destination):  # the lesson's traceroute, in a lab of its own: no silent router there
        with below.LabPath() as path:
            hops = below.traceroute(lambda: path.net.client.socket(socket.AF_INET, socket.SOCK_DGRAM), destination)
        return [h.address for h in hops]

    assert checks.own_traceroute(right)
    assert "stops at the silent hop" in checks.own_traceroute(stops_at_silence).message
    assert "None" in checks.own_traceroute(borrowed).message


@pytest.mark.slow
def test_cli_traceroute_says_when_it_shows_the_recording():
    done = subprocess.run([sys.executable, "-m", "netlab", "traceroute"], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "NETLAB_RECORDED": "1"})
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("recorded: NETLAB_RECORDED is set")
    assert [line.split()[1] for line in done.stdout.splitlines()[2:]] == ["10.1.0.1", "10.2.0.2"]


@pytest.mark.lab
@live
def test_a_command_that_hangs_in_the_topology_is_stopped_at_its_time_bound(path):
    import time

    from netlab.core.topology import TopologyError

    start = time.monotonic()
    with pytest.raises(TopologyError, match="did not finish within 0.3 s"):
        path.net.server.run("sleep", "5", timeout=0.3)
    assert time.monotonic() - start < 2.0
    assert path.net.server.run("true") == ""  # and the agent still answers


@pytest.mark.lab
@live
def test_a_topology_without_ipv6_has_no_ipv6_addresses():
    with Lab() as lab, Topology(lab, ipv6=False) as net:
        assert "inet6" not in net.server.run("ip", "addr", "show", "dev", "s0")
        assert "10.2.0.2/24" in net.server.run("ip", "addr", "show", "dev", "s0")
        with net.capture("c0") as cap, net.client.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.sendto(b"x", (below.SERVER, below.DATAGRAM_PORT))
            below.icmp_error(sock, 0.0)
        assert not any(p.haslayer("IPv6") for p in cap.packets)


ORDINARY_USER_PATH = """
import json, os
from netlab.lessons.below import experiments as below
with below.LabPath() as path:
    print(json.dumps({"uid": os.geteuid(), "live": path.live, "arrived": below.first_datagram(path).result["arrived"],
                      "hops": [h.address for h in below.hops_of(below.trace(path))],
                      "mss_after": below.path_mtu(path).result["mss_after"],
                      "peer": below.resolve(path).result.get("peer")}))
"""


@pytest.mark.lab
@live
@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("runuser") is None, reason="needs root to become `nobody` (runuser)")
def test_an_ordinary_user_builds_the_path_and_runs_its_experiments():
    # The agent makes namespaces, runs ip, nft and a resolver in a mount namespace: all without privileges on the host.
    import json
    import pwd

    import dnslib
    import scapy

    import netlab

    python = "/usr/bin/python3"
    if not os.path.exists(python):
        pytest.skip("no /usr/bin/python3 for `nobody` to run")
    root = Path(tempfile.mkdtemp(prefix="netlab-below-nobody-"))  # pytest's tmp_path is not readable by nobody
    try:
        root.chmod(0o755)
        for package in (netlab, scapy, dnslib):
            shutil.copytree(os.path.dirname(package.__file__), root / package.__name__)
        env = ["env", "-i", "PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", f"HOME={root}", f"PYTHONPATH={root}",
               "PYTHONDONTWRITEBYTECODE=1"]
        done = subprocess.run(["runuser", "-u", "nobody", "--", *env, python, "-c", ORDINARY_USER_PATH], cwd=root,
                              capture_output=True, text=True, timeout=120)
    finally:
        shutil.rmtree(root)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result == {"uid": pwd.getpwnam("nobody").pw_uid, "live": True, "arrived": True,
                      "hops": ["10.1.0.1", "10.2.0.2"], "mss_after": 1228, "peer": ["10.2.0.2", 80]}


def test_the_black_hole_without_nft_shows_the_recording(without_programs):
    without_programs("nft")
    exp = below.path_mtu(blocked=True)
    assert exp.source == "recorded" and "nftables" in exp.why
    assert exp.result["received"] == 0
