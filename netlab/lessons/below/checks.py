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
    """Exercise: from the student's own capture, the datagram's TTL on c0 and on r1, the source MAC on r1, r1's IP checksum."""
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
    return Feedback(True, f"Right for your capture: the router took one from the TTL ({c0['IP'].ttl} → {r1['IP'].ttl}), "
                          "so it had to compute the header checksum again, and it sent the frame from its own MAC "
                          "on the second link; the IP addresses did not change.")


@exercise_check
def ttl_prediction(answer: Any) -> Feedback:
    """Exercise: predict, then a live run checks: the TTL a datagram sent with TTL 2 arrives with, and who answers TTL 1."""
    if (fb := unanswered(answer)) is not None:
        return fb
    keys = ("ttl_2_arrives_with", "ttl_1_answered_by")
    if not isinstance(answer, dict) or set(answer) != set(keys):
        return Feedback(False, f"Give a dict with exactly these keys: {', '.join(keys)}.")
    from netlab.lessons.below.experiments import LabPath, first_datagram

    with LabPath() as path:  # one lab for both runs (or the recordings, where the lab is refused)
        two, one = first_datagram(path, ttl=2), first_datagram(path, ttl=1)
    where = "measured just now" if two.live else "in the recording"
    arrived = [p["IP"].ttl for p in two.on("r1") if p.haslayer("UDP") and not p.haslayer("ICMP")]
    answered = [p["IP"].src for p in one.on("c0") if p.haslayer("ICMP")]
    if not arrived or not answered:
        return Feedback(False, "The run did not capture what it should; run the check again.")
    wrong = []
    if answer["ttl_2_arrives_with"] != arrived[0]:
        wrong.append("ttl_2_arrives_with: how many routers take one from the TTL on the way to the server?")
    if answer["ttl_1_answered_by"] != answered[0]:
        wrong.append("ttl_1_answered_by: which address does the router use on the client's link?"
                     if str(answer["ttl_1_answered_by"]).startswith("10.2.") else
                     "ttl_1_answered_by: a datagram whose TTL runs out never reaches the server; who noticed?")
    if wrong:
        return Feedback(False, f"Compare with what was {where}: " + " ".join(wrong))
    return Feedback(True, f"Both right, {where}: the router decrements the TTL before it forwards, and where it reaches "
                          "0 the router drops the datagram and sends ICMP Time Exceeded from its address on that link.")


@exercise_check
def own_traceroute(func: Any) -> Feedback:
    """Exercise: a function (new_socket, destination) -> list of addresses, run in the lab on two destinations."""
    if (fb := unanswered(func)) is not None:
        return fb
    if not callable(func):
        return Feedback(False, "Give a function traceroute_hops(new_socket, destination) that returns a list of addresses.")
    import socket as _socket

    from netlab.lessons.below.experiments import ROUTER, ROUTER_FAR, SERVER, LabPath

    with LabPath() as path:
        if path.net is None:
            return Feedback(False, f"Your function needs the lab to run, and this machine refuses it: {path.why}")

        def new_socket() -> _socket.socket:
            return path.net.client.socket(_socket.AF_INET, _socket.SOCK_DGRAM)

        cases = ((SERVER, [ROUTER, SERVER], "the server"), (ROUTER_FAR, [ROUTER_FAR], "the router's far address 10.2.0.1"))
        for destination, expected, what in cases:
            got = func(new_socket, destination)
            if not isinstance(got, list):
                return Feedback(False, f"Your function returned {type(got).__name__}; return a list of addresses (str).")
            if got == expected:
                continue
            if got[:len(expected)] == expected:
                return Feedback(False, f"Towards {what} your list goes on after the destination answered: stop when the "
                                       "answer is not Time Exceeded.")
            if None in got:
                return Feedback(False, f"Towards {what} a probe got no answer: did you wait for the error queue "
                                       "(netlab.below.probe does) and use a fresh socket per probe?")
            return Feedback(False, f"Towards {what} the hops are not right: start at TTL 1 and add one per probe.")
    return Feedback(True, "Run in the lab on two paths: two hops to the server, and one to an address the router owns "
                          "(it answers Port Unreachable itself, at TTL 1).")
