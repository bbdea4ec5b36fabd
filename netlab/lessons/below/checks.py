"""The exercise checks of notebook 10: each says what is right or what to look at again.

Every public function marked `@exercise_check` is a check a notebook calls as `netlab.checks.NAME`
(`netlab.checks` finds it here); what a check shares with the others (`Feedback`, "not answered
yet", grading) is in `netlab.core.checking`. A check never reveals the answer.
"""

from __future__ import annotations

from typing import Any

from netlab.core.checking import Feedback, exercise_check, unanswered


@exercise_check
def router_rewrite(exp: Any, answer: Any) -> Feedback:
    """Exercise: from the student's own capture (a TTL drawn for the run), the datagram's TTL on c0 and on r1, the source
    MAC on r1, r1's IP checksum."""
    if (fb := unanswered(answer)) is not None:
        return fb
    keys = ("ttl_on_c0", "ttl_on_r1", "source_mac_on_r1", "checksum_on_r1")
    if not isinstance(answer, dict) or set(answer) != set(keys):
        return Feedback(False, f"Give a dict with exactly these keys: {', '.join(keys)}.")
    datagram = {}
    for pkt in getattr(exp, "packets", []):
        if pkt.haslayer("UDP") and pkt.haslayer("IP") and not pkt.haslayer("ICMP"):
            datagram.setdefault(getattr(pkt, "sniffed_on", "?"), pkt)
    if "c0" not in datagram or "r1" not in datagram:
        return Feedback(False, "Your capture lacks the datagram on c0 or on r1: run the experiment's cell again.")
    c0, r1 = datagram["c0"], datagram["r1"]
    if getattr(exp, "live", False) and c0["IP"].ttl == 64:
        return Feedback(False, "This is a capture sent with TTL 64, as section 2's: give the one sent with your own "
                               "TTL, drawn in the cell above the answer.")
    wrong = []
    if answer["ttl_on_c0"] != c0["IP"].ttl:
        wrong.append("ttl_on_c0 (the TTL field of the IP header, as the client sent it)")
    if answer["ttl_on_r1"] != r1["IP"].ttl:
        wrong.append("ttl_on_r1 (the same field, after the router)")
    if str(answer["source_mac_on_r1"]).lower() != r1.src.lower():
        wrong.append("source_mac_on_r1 (the Ethernet header's source on the second link: who sent the frame there?)")
    if answer["checksum_on_r1"] != r1["IP"].chksum:
        hint = " (a number: 0x... or an int)" if isinstance(answer["checksum_on_r1"], str) else ""
        wrong.append(f"checksum_on_r1{hint} (the IP header's checksum in the frame seen on r1, in your own capture)")
    if wrong:
        return Feedback(False, "Look again at " + "; ".join(wrong) + ".")
    return Feedback(True, "Right for your capture: the router took one from the TTL, so it had to compute the header "
                          "checksum again, and it sent the frame from its own MAC on the second link; the IP addresses "
                          "did not change.")


# What a probe from the client may meet in the lab: (destination, TTL). Each check draws a few of them
# at random, so an answer that only remembers the lesson's output (server, TTL 1 and 2) is not enough.
_PROBE_CASES = (
    ("10.2.0.2", 1), ("10.2.0.2", 2), ("10.2.0.2", 5),   # the server: TTL 1 dies at the router, more arrives
    ("10.2.0.1", 1), ("10.2.0.1", 3),                      # the router's far address: delivered to the router itself
    ("10.1.0.1", 1),                                       # the router's near address
    ("10.99.0.1", 1), ("10.99.0.1", 4),                    # nowhere: the router has no route, whatever the TTL
)
_REPLIES = ("time exceeded", "port unreachable", "network unreachable")
_CASES_PER_RUN = 4  # Linux lets a host send a burst of 6 ICMP errors to one peer, then one a second


def _new_probe_socket(path: Any) -> Any:
    import socket as _socket

    return path.net.client.socket(_socket.AF_INET, _socket.SOCK_DGRAM)


@exercise_check
def route_prediction(predict: Any) -> Feedback:
    """Exercise: a function (destination, ttl) -> (address, reply) predicting who answers a UDP probe, and how;
    the check draws cases from _PROBE_CASES and sends each probe in a fresh lab."""
    if (fb := unanswered(predict)) is not None:
        return fb
    if not callable(predict):
        return Feedback(False, "Give a function predict(destination, ttl) that returns a pair (address, reply).")
    import random

    from netlab.lessons.below.experiments import NOWHERE, LabPath, probe

    # At most one probe where no route leads: Linux sends a host Network Unreachable at most once a second
    # (and not in its first second), so that probe is sent twice when the first meets silence.
    routed = [c for c in _PROBE_CASES if c[0] != NOWHERE]
    cases = [*random.sample(routed, _CASES_PER_RUN - 1), random.choice([c for c in _PROBE_CASES if c[0] == NOWHERE])]
    random.shuffle(cases)
    with LabPath() as path:
        if path.net is None:
            return Feedback(False, f"The check sends your cases in the lab, and this machine refuses it: {path.why}")
        for destination, ttl in cases:
            said = predict(destination, ttl)
            if not (isinstance(said, tuple) and len(said) == 2 and all(isinstance(x, str) for x in said)):
                return Feedback(False, f"predict({destination!r}, {ttl}) returned {said!r}: return a pair of str, "
                                       "(address, reply), the reply one of " + ", ".join(map(repr, _REPLIES)) + ".")
            for _attempt in range(2 if destination == NOWHERE else 1):
                with _new_probe_socket(path) as sock:
                    hop = probe(sock, destination, ttl, timeout=1.2)
                if hop.address is not None:
                    break
            if hop.address is None:
                return Feedback(False, f"The probe to {destination} with TTL {ttl} got no answer in the lab just now "
                                       "(the router may be limiting its ICMP errors): run the check again.")
            address, reply = said
            if (address, reply.strip().lower()) == (hop.address, hop.reply):
                continue
            case = f"A probe to {destination} with TTL {ttl}"
            if reply.strip().lower() not in _REPLIES:
                return Feedback(False, f"{case}: the reply is one of " + ", ".join(map(repr, _REPLIES)) + ".")
            if address != hop.address:
                return Feedback(False, f"{case}: another host answered. Which host is the last one the probe "
                                       "reaches, and what does it do with it: forward it, take it, or drop it?")
            return Feedback(False, f"{case}: the right host answers, with another message. Does the probe die on "
                                   "the way, arrive where nothing listens, or find no route?")
    return Feedback(True, f"Right on the {len(cases)} probes drawn at random and sent just now: a router first looks up "
                          "the route; a packet for one of its own addresses is delivered to it whatever the TTL, one "
                          "it must forward dies there if its TTL is 1, and one with no route gets Network Unreachable.")


def _icmp_reply(path: Any, raw: Any, destination: str, ttl: int, timeout: float = 1.0) -> bytes | None:
    """Send one UDP probe with IP TTL `ttl` from the lab's client; the ICMP packet that answered it (IP header
    first, as a raw socket gets it), or None after `timeout` s. The reply is matched by the probe's own port,
    which the ICMP error quotes."""
    import select
    import socket as _socket
    import struct
    import time

    with _new_probe_socket(path) as sock:
        sock.setsockopt(_socket.IPPROTO_IP, _socket.IP_TTL, ttl)
        sock.sendto(b"a probe", (destination, 33434 + ttl))
        port = sock.getsockname()[1]
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([raw], [], [], left)[0]:
                break
            packet = raw.recv(2048)
            header = (packet[0] & 0x0F) * 4
            quoted = header + 8  # the ICMP header, then the IP header of the probe it answers, then 8 bytes of UDP
            if len(packet) >= quoted + 20 and packet[header] in (3, 11):
                inner = quoted + (packet[quoted] & 0x0F) * 4
                if len(packet) >= inner + 2 and struct.unpack("!H", packet[inner:inner + 2])[0] == port:
                    return packet
    return None


# nftables on the router: it drops the Time Exceeded it would send, so its hop stays silent.
_SILENT_ROUTER = """table ip netlab_silent {
    chain output {
        type filter hook output priority 0;
        icmp type time-exceeded drop
    }
}"""


@exercise_check
def own_traceroute(func: Any) -> Feedback:
    """Exercise: a function (send_probe, destination) -> list of addresses (None for a silent hop), run in the lab:
    send_probe(destination, ttl) gives the bytes of the ICMP reply, or None; one path has a silent router."""
    if (fb := unanswered(func)) is not None:
        return fb
    if not callable(func):
        return Feedback(False, "Give a function traceroute_hops(send_probe, destination) that returns a list of "
                               "addresses.")
    import socket as _socket
    import tempfile
    from pathlib import Path

    from netlab.lessons.below.experiments import ROUTER, ROUTER_FAR, SERVER, LabPath

    with LabPath() as path:
        if path.net is None:
            return Feedback(False, f"Your function needs the lab to run, and this machine refuses it: {path.why}")
        cases = ((SERVER, [ROUTER, SERVER], "the server", False),
                 (ROUTER_FAR, [ROUTER_FAR], "the router's far address 10.2.0.1", False),
                 (SERVER, [None, SERVER], "the server behind a router that sends no Time Exceeded", True))
        with path.net.client.socket(_socket.AF_INET, _socket.SOCK_RAW, _socket.IPPROTO_ICMP) as raw:
            sent: list[int] = []

            def send_probe(destination: str, ttl: int) -> bytes | None:
                if not isinstance(ttl, int) or not 1 <= ttl <= 30 or len(sent) >= 40:
                    raise ValueError("send_probe takes a TTL from 1 to 30 (and a trace needs no more than 8 probes)")
                sent.append(ttl)
                return _icmp_reply(path, raw, str(destination), ttl)

            for destination, expected, what, silent in cases:
                if silent:
                    with tempfile.NamedTemporaryFile("w", suffix=".nft", delete=False) as f:
                        f.write(_SILENT_ROUTER + "\n")
                    try:
                        path.net.router.run("nft", "-f", f.name)
                    finally:
                        Path(f.name).unlink(missing_ok=True)
                sent.clear()
                got = func(send_probe, destination)
                if not isinstance(got, list):
                    return Feedback(False, f"Your function returned {type(got).__name__}; return a list of addresses "
                                           "(str, or None for a hop that did not answer).")
                if got == expected:
                    continue
                if got[:len(expected)] == expected:
                    return Feedback(False, f"Towards {what} your list goes on after the answer that ends the trace: "
                                           "stop when the answer is not Time Exceeded.")
                if silent and got and got[0] is not None:
                    return Feedback(False, f"Towards {what}: when send_probe returns None, that hop did not answer; "
                                           "put None in its place and go on with the next TTL.")
                if silent and got[:1] == [None] and len(got) == 1:
                    return Feedback(False, f"Towards {what} your list stops at the silent hop: a hop that does not "
                                           "answer is no end of the path; go on with the next TTL.")
                if sent[:1] != [1]:
                    return Feedback(False, f"Towards {what} the hops are not right: start at TTL 1 and add one per probe.")
                return Feedback(False, f"Towards {what} the hops are not right: read who sent each ICMP reply (the IP "
                                       "header's source), and its ICMP type, which tells Time Exceeded from the rest.")
    return Feedback(True, "Run in the lab on three paths: two hops to the server; one to an address the router owns (it "
                          "answers Port Unreachable itself, at TTL 1); and the server behind a silent router, a '*' in "
                          "traceroute's output, which does not end the trace.")
