"""Notebook 11's network: three routers built from a plan, the kernels' longest-prefix match, the
experiments on the wire, BIRD's RIP, and the exercises' verdicts (with their bad inputs).

One live network serves the tests that only read it (each experiment puts back what it changes);
the tests of a daemon's life make their own topology.
"""

import os
import random
import re
import subprocess
import sys
import time

import pytest

from netlab.core.delayline import Direction
from netlab.core.experiment import load_recorded, recorded_meta
from netlab.core.lab import Lab, lab_available
from netlab.core.programs import find
from netlab.core.topology import PATH, Interface, Link, Plan, Topology, interface
from netlab.lessons.routes import addressing, checks
from netlab.lessons.routes import experiments as routes

LIVE = lab_available()[0]
live = pytest.mark.skipif(not LIVE, reason="this machine refuses the lab")
with_bird = pytest.mark.skipif(find("bird") is None, reason="no bird (apt: bird2)")
with_ping = pytest.mark.skipif(find("ping") is None, reason="no ping (apt: iputils-ping)")


@pytest.fixture(scope="module")
def net():
    with routes.Network() as network:
        if not network.live:
            pytest.skip(network.why)
        yield network


# --- the plan and its bad inputs -------------------------------------------------


def test_plan_reads_as_the_lesson_draws_it():
    assert routes.PLAN.routers == ("r1", "r2", "r3")
    assert [(link.a, link.b) for link in routes.PLAN.links] == [
        ("c-r1", "r1-c"), ("r1-r2", "r2-r1"), ("r1-r3", "r3-r1"), ("r2-r3", "r3-r2"), ("r2-s", "s-r2")]
    assert routes.PLAN.interface("r3-site").network == "10.2.0.0/16"
    assert routes.PLAN.owner("10.0.23.3") == "r3" and routes.PLAN.owner("10.9.9.9") is None


def test_a_plan_that_does_not_hold_together_is_refused_in_one_sentence():
    one = interface("a0", "a", "10.0.0.1/24", "b0")
    with pytest.raises(ValueError, match="does not name it back"):
        Plan(hosts=("a", "b"), interfaces=(one, interface("b0", "b", "10.0.0.2/24", "zz"),
                                           interface("zz", "b", "10.0.1.1/24", None)))
    with pytest.raises(ValueError, match="not one of the plan's hosts"):
        Plan(hosts=("a",), interfaces=(interface("a0", "c", "10.0.0.1/24", None),))
    with pytest.raises(ValueError, match="15 characters"):
        Plan(hosts=("a",), interfaces=(Interface("a-very-long-name0", "a", "10.0.0.1", "", "02:00:0a:00:00:01", None),))


def test_a_bad_link_delay_or_mtu_is_refused_before_anything_starts():
    def plan(delays: dict) -> Plan:
        return Plan(hosts=routes.PLAN.hosts, interfaces=routes.PLAN.interfaces, routes=routes.PLAN.routes,
                    routers=routes.PLAN.routers, delays=delays)

    link = frozenset(("r1-r2", "r2-r1"))
    with pytest.raises(ValueError, match="r1-r2.*from 0 to 1"):
        Topology(None, plan({link: 2.0}), ipv6=False)
    with pytest.raises(ValueError, match="r1-r2.*from 0 to 1"):
        Topology(None, plan({link: -0.01}), ipv6=False)
    with pytest.raises(TypeError, match="r1-r2.*Direction"):
        Topology(None, plan({link: "10 ms"}), ipv6=False)
    with pytest.raises(ValueError, match="loss must be a probability"):
        Topology(None, plan({link: Direction(delay=0.01, loss=2)}), ipv6=False)
    with pytest.raises(ValueError, match="link's two ends"):
        plan({frozenset(("r1-r2", "c-r1")): 0.01})
    with pytest.raises(ValueError, match="MTU"):
        Topology(None, routes.PLAN, ipv6=False, mtu={"r1-r2": 500})
    with pytest.raises(TypeError, match="Plan"):
        Topology(None, "client—router—server")


def test_a_links_delay_is_what_its_delay_line_does_each_way():
    forward, backward = Direction(delay=0.001), Direction(delay=0.002, loss=0.1, seed=1)
    assert Link("a", "b").directions() is None
    assert Link("a", "b", 0.005).directions() == (Direction(delay=0.005), Direction(delay=0.005))
    assert Link("a", "b", (forward, backward)).directions() == (forward, backward)
    assert {(k.a, k.b): k.delay for k in routes.PLAN.links if k.delay} == {
        ("c-r1", "r1-c"): 0.002, ("r1-r2", "r2-r1"): 0.005, ("r2-s", "s-r2"): 0.010}


# --- addresses and tables as data ---------------------------------------------------


def test_describe_agrees_with_the_standard_library_on_drawn_addresses():
    import ipaddress

    rng = random.Random(5)
    for _ in range(200):
        q = addressing.address_question(rng)
        d, net = addressing.describe(q.address), ipaddress.ip_interface(q.address).network
        hosts = net.hosts()
        first = next(hosts)
        assert (d["network"], d["broadcast"], d["first_host"], d["last_host"], d["hosts"]) == (
            str(net), str(net.broadcast_address), str(first), str(net.broadcast_address - 1), net.num_addresses - 2)
        assert d["private"] and 17 <= net.prefixlen <= 29


@pytest.mark.parametrize("bad, words", [
    ("10.1.0.2", "with its prefix length"), ("10.1.0.2/33", "0 to 32"), ("10.1.0.300/24", "not an IPv4 address"),
    ("server/24", "not an IPv4 address"), (1234, "with its prefix length"), ("10.1.0.2/x", "0 to 32"),
])
def test_a_bad_address_gets_one_sentence(bad, words):
    with pytest.raises(ValueError, match=words) as err:
        addressing.describe(bad)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("bad, words", [
    ("0.0.0.0/0 via r1", "not str"), ([("10.2.0.0/16",)], "pairs"), ([("10.2.0.1/16", "r1")], "no host bits"),
    ([("10.2.0.0/40", "r1")], "not an IPv4 prefix"),
])
def test_a_table_that_is_not_one_gets_one_sentence(bad, words):
    with pytest.raises(ValueError, match=words):
        addressing.as_table(bad)


def test_ip_json_becomes_routes_and_batch_answers_are_matched_by_destination():
    shown = ('[{"dst":"default","gateway":"10.0.13.3","dev":"r1-r3","flags":[]},'
             '{"dst":"10.1.0.0/24","dev":"r1-c","protocol":"kernel","scope":"link","prefsrc":"10.1.0.1","flags":[]},'
             '{"dst":"10.0.23.0/24","nexthops":[{"gateway":"10.0.12.2","dev":"r1-r2"},{"gateway":"10.0.13.3"}]},'
             '{"type":"broadcast","dst":"10.1.0.255","dev":"r1-c"}]')
    assert [tuple(r) for r in addressing.table_of(shown)] == [
        ("0.0.0.0/0", "10.0.13.3"), ("10.1.0.0/24", "r1-c"), ("10.0.23.0/24", "10.0.12.2")]
    batch = ('[{"dst":"10.5.1.1","gateway":"10.0.0.2","dev":"va"}]\n[{"dst":"10.0.0.7","dev":"va"}]\n'
             '[{"type":"local","dst":"10.0.0.1","dev":"lo"}]\n')
    assert addressing.kernel_answers(["10.5.1.1", "10.0.0.7", "8.8.8.8", "10.0.0.1"], batch) == {
        "10.5.1.1": "10.0.0.2", "10.0.0.7": "va", "8.8.8.8": None, "10.0.0.1": None}


def test_birdc_show_route_gives_the_best_route_of_each_prefix():
    text = """BIRD 2.0.12 ready.
Table master4:
10.1.0.0/24          unicast [direct1 00:56:29.000] * (240)
\tdev r1-c
10.0.23.0/24         unicast [rip1 00:56:29.015] * (120/2)
\tvia 10.0.12.2 on r1-r2 weight 1
\tvia 10.0.13.3 on r1-r3 weight 1
10.0.12.0/24         unicast [direct1 00:56:29.000] * (240)
\tdev r1-r2
                     unicast [rip1 00:56:29.011] (120/2)
\tvia 10.0.12.2 on r1-r2
10.2.1.0/24          unicast [rip1 00:56:29.011] * (120/3)
\tvia 10.0.13.3 on r1-r3
"""
    assert routes._bird_routes(text) == [["10.0.12.0/24", "r1-r2", 1], ["10.0.23.0/24", "10.0.12.2", 2],
                                         ["10.1.0.0/24", "r1-c", 1], ["10.2.1.0/24", "10.0.13.3", 3]]


def test_split_questions_always_leave_room_for_four_subnets():
    import ipaddress

    rng = random.Random(7)
    for _ in range(200):
        q = addressing.split_question(rng)
        block = ipaddress.ip_network(q.block)
        prefix = max(p for p in range(block.prefixlen, 31) if 2 ** (32 - p) - 2 >= q.hosts)
        assert prefix >= block.prefixlen + 2


# --- the verdicts, on data alone ------------------------------------------------------

FIRST_MATCH = '''
def lookup(table, address):
    for prefix, via in table:
        if ipaddress.ip_address(address) in ipaddress.ip_network(prefix):
            return via
'''
LONGEST = '''
def lookup(table, address):
    best = None
    for prefix, via in table:
        net = ipaddress.ip_network(prefix)
        if ipaddress.ip_address(address) in net and (best is None or net.prefixlen > best[0].prefixlen):
            best = (net, via)
    return best and best[1]
'''


def test_lookup_verdict_accepts_longest_prefix_and_names_the_case_first_match_fails():
    meta = recorded_meta("routes-lookups")["result"]  # the verdict needs no lab: the recording's data serve
    assert checks.verdict_lookup(LONGEST, meta["tables"], meta["answers"])
    fb = checks.verdict_lookup(FIRST_MATCH, meta["tables"], meta["answers"])
    assert not fb and "longest" in fb.message and re.search(r"for \d+\.\d+\.\d+\.\d+", fb.message)
    kernel_choice = re.search(r"for (\S+):", fb.message).group(1)
    host = re.search(r"On (r\d)'s", fb.message).group(1)
    assert meta["answers"][host][kernel_choice] not in fb.message  # the hint names the case, not the answer
    assert not checks.verdict_lookup("x = 1", meta["tables"], meta["answers"])


def test_address_split_loop_and_fragment_verdicts_point_at_the_wrong_part_only():
    right = addressing.describe("172.20.37.141/21")
    right = {k: right[k] for k in ("network", "broadcast", "first_host", "last_host", "hosts")}
    assert checks.verdict_address("172.20.37.141/21", right)
    fb = checks.verdict_address("172.20.37.141/21", dict(right, hosts=2048, broadcast="172.20.37.255"))
    assert not fb and "hosts:" in fb.message and "broadcast:" in fb.message and "172.20.39.255" not in fb.message
    assert not checks.verdict_address("172.20.37.141/21", {"network": "x"})
    assert checks.verdict_split("10.4.8.0/22", 50, {"prefix": 26, "count": 16, "last": "10.4.11.192/26"})
    assert "count" in checks.verdict_split("10.4.8.0/22", 50, {"prefix": 26, "count": 4, "last": "10.4.11.192/26"}).message
    assert "longer prefix" in checks.verdict_split("10.4.8.0/22", 50, {"prefix": 24, "count": 4, "last": "x"}).message
    assert checks.verdict_loop(8, {"crossings": 7, "time_exceeded_from": "10.0.12.2"}, 7, "10.0.12.2")
    assert "crossings" in checks.verdict_loop(8, {"crossings": 8, "time_exceeded_from": "10.0.12.2"}, 7, "10.0.12.2").message
    pieces = [(0, 1, 552), (552, 1, 552), (1104, 0, 304)]
    assert checks.verdict_fragments(1400, pieces, pieces)
    assert "8-byte units" in checks.verdict_fragments(1400, [(0, 1, 552), (69, 1, 552), (1104, 0, 304)], pieces).message
    assert "number of fragments" in checks.verdict_fragments(1400, pieces[:2], pieces).message


def test_distance_vector_verdict_against_birds_recorded_tables(tmp_path):
    run = load_recorded("routes-rip", kind=routes.RouteExperiment)
    good = '''
def update(table, neighbour, advertised):
    new = dict(table)
    for prefix, metric in advertised.items():
        cost = min(metric + 1, 16)
        if prefix not in new or cost < new[prefix][0]:
            new[prefix] = (cost, neighbour)
    return new
'''
    no_hop = good.replace("metric + 1", "metric")
    assert checks.distance_vector(_defined(good, "update", tmp_path), run)
    fb = checks.distance_vector(_defined(no_hop, "update", tmp_path), run)
    assert not fb and "plus one" in fb.message
    assert "dict" in checks.distance_vector(_defined("def update(t, n, a):\n    return 3\n", "update", tmp_path), run).message
    assert "Not answered yet" in repr(checks.distance_vector(..., run))


def _defined(source, name, folder):
    """A function from source text, with a file behind it so that inspect.getsource reads it back."""
    import importlib.util

    path = folder / f"answer_{abs(hash(source))}.py"
    path.write_text("import ipaddress\n" + source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, name)


@pytest.mark.parametrize("name", sorted(routes.RECORDINGS))
def test_recordings_load_with_their_interfaces(name, monkeypatch):
    monkeypatch.setenv("NETLAB_RECORDED", "1")
    with routes.Network() as recorded:
        assert not recorded.live
        exp = routes._run(recorded, None, name)
    assert exp.source == "recorded" and isinstance(exp.result, dict)
    names = {i.name for i in routes.PLAN.interfaces}
    assert {getattr(p, "sniffed_on", None) for p in exp.packets} <= names
    assert "checksum" not in "".join(exp.lines())  # ping's random IP IDs would make it differ run to run


# --- live ---------------------------------------------------------------------------------


@pytest.mark.lab
@live
@with_ping
def test_each_destination_takes_the_links_of_its_longest_matching_prefix(net):
    crossed = {d: routes.follow(net, d).result for d in (routes.SERVER, routes.SITE, routes.OUTSIDE)}
    assert crossed[routes.SERVER]["request_links"] == ["c-r1", "r1-r2", "r2-s"]  # the /24 via r2
    assert crossed[routes.SITE]["request_links"] == ["c-r1", "r1-r3"] and crossed[routes.SITE]["received"] == 1  # the /16
    assert crossed[routes.OUTSIDE]["errors"] == [["10.0.13.3", "Destination Net Unreachable"]]  # default, then none


@pytest.mark.lab
@live
def test_the_kernels_agree_with_a_longest_prefix_lookup_and_the_drawn_routes_go_away(net):
    before = net.table("r1")
    run = routes.lookups(net, seed=3, count=150)
    assert len(run.result["tables"]["r1"]) == len(before) + 3
    assert any(v is None for v in run.result["answers"]["r3"].values())  # r3 has no default route
    assert checks.verdict_lookup(LONGEST, run.result["tables"], run.result["answers"])
    assert not checks.verdict_lookup(FIRST_MATCH, run.result["tables"], run.result["answers"])
    assert net.table("r1") == before


@pytest.mark.lab
@live
@with_ping
def test_static_mistakes_show_on_the_wire_and_are_put_back(net):
    lost = routes.missing_return(net).result
    assert lost["received"] == 0 and lost["reply_links"] == ["r2-s"]
    lopsided = routes.asymmetric(net).result
    assert lopsided["reply_links"] == ["r2-s", "r2-r3", "r1-r3", "c-r1"] and lopsided["received"] == 1
    for ttl in (5, 8):
        circle = routes.loop(net, ttl=ttl).result
        assert circle["crossings"] == ttl - 1
        assert circle["time_exceeded_from"] == ("10.0.12.2" if (ttl - 1) % 2 else "10.1.0.1")
    assert routes.follow(net, routes.SERVER).result["reply_links"] == ["r2-s", "r1-r2", "c-r1"]


@pytest.mark.lab
@live
def test_a_datagram_is_fragmented_lost_with_one_fragment_and_refused_with_df(net):
    whole = routes.fragments(net, size=1000, mtu=576)
    pieces = [p for p in whole.on("r1-r2") if p.haslayer("IP")]
    assert [(p["IP"].frag * 8, int(p["IP"].flags.MF)) for p in pieces] == [(0, 1), (552, 0)]
    assert whole.result["intact"] and whole.result["received"] == 1000
    short = routes.fragments(net, size=1400, drop=1)
    assert short.result["received"] == 0
    assert any(p.haslayer("ICMP") and (p["ICMP"].type, p["ICMP"].code) == (11, 1) for p in short.on("c-r1"))
    refused = routes.fragments(net, size=1400, df=True)
    assert "Message too long" in refused.result["error"]
    assert "1500" in net.net.r1.run("ip", "link", "show", "r1-r2")  # the MTU put back


@pytest.mark.lab
@live
@with_bird
def test_rip_fills_the_tables_and_routes_around_a_failed_link(net):
    run = routes.rip(net)
    r = run.result
    assert r["converged_s"] is not None and r["reconverged_s"] is not None
    r1 = {prefix: (via, metric) for prefix, via, metric in r["tables"]["r1"]}
    assert r1["10.2.1.0/24"] == ("10.0.12.2", 2) and r1["10.2.0.0/16"] == ("10.0.13.3", 2)
    after = {prefix: (via, metric) for prefix, via, metric in r["tables_after"]["r1"]}
    assert after["10.2.1.0/24"] == ("10.0.13.3", 3)
    assert any(p.haslayer("RIP") for p in run.on("r1-r2"))
    assert [tuple(x) for x in net.table("r1")] == [tuple(x) for x in routes.table(net, "r1").result["routes"]]
    assert "proto bird" not in net.net.r1.run("ip", "route")  # BIRD stopped, its routes withdrawn


@pytest.mark.lab
@live
@with_bird
def test_a_daemon_ends_with_its_topology_even_when_the_agent_is_killed():
    with Lab() as lab:
        lab.check_join()
        for kill_agent in (False, True):
            with Topology(lab, routes.PLAN, ipv6=False) as topo:
                conf = os.path.join(topo.folder, "r1.conf")
                with open(conf, "w") as f:
                    f.write(routes.BIRD_CONFIG.format(router_id="10.0.12.1"))
                daemon = topo.start("r1", find("bird"), "-f", "-c", conf, "-s", os.path.join(topo.folder, "ctl"))
                assert _alive(daemon.pid)  # the lab shares this process's PID namespace
                if kill_agent:
                    topo._agent.kill()  # PR_SET_PDEATHSIG: the daemon goes with it
            deadline = time.monotonic() + 3
            while time.monotonic() < deadline and _alive(daemon.pid):
                time.sleep(0.05)
            assert not _alive(daemon.pid), f"BIRD (pid {daemon.pid}) outlived its topology"


def _alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return "(bird)" in stat and stat.rpartition(")")[2].split()[0] != "Z"


@pytest.mark.slow
def test_cli_routes_recorded_says_so_and_names_the_links():
    env = dict(os.environ, NETLAB_RECORDED="1")
    done = subprocess.run([sys.executable, "-m", "netlab", "routes", "outside"], capture_output=True, text=True,
                          timeout=60, env=env)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("recorded: NETLAB_RECORDED is set")
    assert "  0.0.0.0/0       → 10.0.13.3" in lines
    assert "the request crossed c-r1 → r1-r3; the reply never came" in done.stdout
    assert "from 10.0.13.3: Destination Net Unreachable" in done.stdout


@pytest.mark.parametrize("hidden, experiment, recording", [
    ("bird", lambda: routes.rip(), "routes-rip"),
    ("ping", lambda: routes.follow(destination=routes.SITE), "routes-follow-site"),
    ("nft", lambda: routes.fragments(drop=1), "routes-fragments-drop1"),
])
def test_a_missing_debian_program_gives_the_recording_and_names_its_package(without_programs, hidden, experiment,
                                                                             recording):
    without_programs(hidden)
    exp = experiment()
    assert not exp.live and exp.why.startswith("recorded: ") and f"`{hidden}`" in exp.why
    assert {"bird": "bird2", "ping": "iputils-ping", "nft": "nftables"}[hidden] in exp.why
    assert exp.result == recorded_meta(recording)["result"]


def test_the_figure_draws_the_plan_and_marks_the_links_each_way_crossed(monkeypatch):
    from netlab.lessons.routes.drawing import network_figure

    monkeypatch.setenv("NETLAB_RECORDED", "1")
    lopsided = routes.asymmetric()
    fig = routes.draw_network(lopsided, title="asymmetric")
    lines = [line for line in fig.axes[0].lines if line.get_xydata().size]
    thick = [line for line in lines if line.get_linewidth() == 5]
    dashed = [line for line in lines if line.get_linestyle() != "-" and line.get_linewidth() == 2.5]
    assert len(thick) == len(lopsided.result["request_links"]) == 3
    assert len(dashed) == len(lopsided.result["reply_links"]) == 4
    words = {t.get_text() for t in fig.axes[0].texts}
    assert set(routes.PLAN.hosts) <= words and {i.network for i in routes.PLAN.interfaces} <= {w.split("\n")[-1] for w in words}
    assert repr(fig) == "<Figure size 950x360 with 1 Axes>"
    with pytest.raises(ValueError, match="no place on the page for router"):
        network_figure(Plan(hosts=("client", "router"), interfaces=()))


def test_a_variant_never_recorded_is_one_sentence_where_the_lab_is_refused(monkeypatch):
    monkeypatch.setenv("NETLAB_RECORDED", "1")
    with pytest.raises(ValueError, match="'routes-loop-ttl5' was not recorded: netlab ships routes-loop-ttl8"):
        routes.loop(ttl=5)
    with pytest.raises(ValueError, match="ttl"):
        routes.loop(ttl=1)
    with pytest.raises(ValueError, match="r1-r2 or r1-r3"):
        routes.rip(down="r2-r3")
    with pytest.raises(ValueError, match="destination must be one of"):
        routes.follow(destination="8.8.8.8")


@pytest.mark.lab
@live
@with_ping
def test_each_hop_adds_its_links_delays_to_the_round_trip(net):
    hops = {h["host"]: min(h["rtts_ms"]) for h in routes.hops(net).result["hops"]}
    # 2, 5 and 10 ms one way on the three links: round trips of at least 4, 14 and 34 ms, and
    # each hop within a few ms of that (the delay lines' own time, a loaded machine's lateness).
    for host, least in (("r1", 4), ("r2", 14), ("server", 34)):
        assert least <= hops[host] < least + 8, hops


@pytest.mark.lab
@live
def test_a_capture_across_a_delayed_link_is_causal():
    import socket as sockets

    from netlab.core.conversation import Conversation

    plan = Plan(hosts=PATH.hosts, interfaces=PATH.interfaces, routes=PATH.routes, routers=PATH.routers,
                delays={frozenset(("c0", "r0")): 0.02,
                        frozenset(("r1", "s0")): (Direction(delay=0.01), Direction(delay=0.03, duplicate=0.3, seed=4))})
    with Lab() as lab, Topology(lab, plan, ipv6=False) as net:
        assert set(net.lines) == {"c0", "r1"}
        with net.server.socket() as server:
            server.bind(("0.0.0.0", 0))
            server.listen()
            server.settimeout(5)
            port = server.getsockname()[1]
            with net.capture("c0", "s0") as cap, net.client.socket() as client:
                client.settimeout(5)
                started = time.monotonic()
                client.connect((net.server.address, port))
                connected = time.monotonic() - started
                peer, _ = server.accept()
                with peer:
                    for _ in range(20):
                        client.sendall(b"x" * 3000)
                    peer.settimeout(5)
                    got = 0
                    while got < 60000:
                        got += len(peer.recv(65536))
                    peer.shutdown(sockets.SHUT_WR)
                client.close()
    assert connected >= 2 * (0.02 + 0.02 + 0.01) - 0.02  # back: 20 ms + 30 ms, out 20 ms + 10 ms (less stamps' slack)
    for where in ("c0", "s0"):
        conv = Conversation.from_packets([p for p in cap.packets if p.sniffed_on == where])
        assert conv.causality == [], (where, conv.causality)


def test_programs_started_in_the_lab_find_netlab_on_their_path_from_any_folder():
    from pathlib import Path

    from netlab.core.lab import package_parent

    # The topology's agent starts with -S (no site, so no .pth of an installed netlab): it finds
    # netlab through the PYTHONPATH Lab.popen gives, which must name the folder above the package.
    assert (Path(package_parent()) / "netlab" / "core" / "inlab" / "topology_agent.py").is_file()
