"""The exercise checks of notebook 12: each says what is right or what to look at again.

Every public function marked `@exercise_check` is a check a notebook calls as `netlab.checks.NAME`
(`netlab.checks` finds it here); what a check shares with the others (`Feedback`, "not answered
yet", grading) is in `netlab.core.checking`. A check never reveals the answer.

Each check is in two parts: the check gathers what the student hands over as **data** (their own
capture, a value, a function) and what to judge it against (the student's capture itself, or a
fresh run in the lab: Unbound's answers for names drawn now, the tuple the home router's NAT
wrote), then a `verdict_*` function of that data alone decides. A verdict needs no lab and no
notebook, so a grader can run it in another process. No answer is written down here: the lab and
the student's capture are the oracles.
"""

from __future__ import annotations

import ipaddress
import random
import string
from typing import Any

from netlab.core.checking import Feedback, exercise_check, unanswered, whole
from netlab.core.experiment import Experiment

__all__ = ["resolver_walk", "iterative_resolver", "dhcp_reading", "nat_prediction", "verdict_walk", "verdict_resolver",
           "verdict_dhcp", "verdict_nat", "asked_for", "drawn_names"]


# ---------------------------------------------------------------------------
# 1. The walk, read from the student's own capture.


def asked_for(exp: Experiment, name: str, qtype: int = 1) -> list[str]:
    """The servers the resolver asked for (`name`, A), in order, from a capture's frames on w0."""
    from scapy.layers.dns import DNS
    from scapy.layers.inet import IP, UDP

    want = name.rstrip(".").lower() + "."
    out = []
    for p in exp.packets:
        if getattr(p, "sniffed_on", None) != "w0" or UDP not in p or DNS not in p or p[DNS].qr or not p[DNS].qd:
            continue
        q = p[DNS].qd[0]
        if q.qname.decode().lower() == want and q.qtype == qtype:
            out.append(p[IP].dst)
    return out


@exercise_check
def resolver_walk(exp: Any, answer: Any) -> Feedback:
    """Exercise: from the student's own capture of a lookup with an empty cache, the servers the resolver asked
    for the name's A record, in order."""
    if (fb := unanswered(answer)) is not None:
        return fb
    if not isinstance(exp, Experiment) or not isinstance(exp.result, dict) or "name" not in exp.result:
        return Feedback(False, "Pass the lookup you ran (`mine = netlab.names.lookup(home, name=...)`) as the first argument.")
    return verdict_walk(exp.result["name"], asked_for(exp, exp.result["name"]), answer)


def verdict_walk(name: str, asked: list[str], answer: Any) -> Feedback:
    if not isinstance(answer, (list, tuple)) or not all(isinstance(a, str) for a in answer):
        return Feedback(False, "Give a list of the servers' addresses as text, in the order they were asked, "
                               "such as ['192.0.2.9', ...].")
    if not asked:
        return Feedback(False, f"Your capture has no query for {name} on w0: run the lookup cell again (it starts "
                               "Unbound with an empty cache).")
    answer = [a.strip() for a in answer]
    if answer == asked:
        return Feedback(True, "Right: from the root down, each server asked the whole name, each referral naming "
                              "the next server and its address (glue).")
    if len(answer) != len(asked):
        return Feedback(False, f"Your list has {len(answer)} servers; your capture shows {len(asked)} queries for the A "
                               f"record of {name} on w0. Count only queries (not answers), for that name and type; "
                               "a CNAME makes the resolver ask again, for the name it points to: that is another name.")
    first = next(i for i, (a, b) in enumerate(zip(answer, asked, strict=True)) if a != b)
    return Feedback(False, f"The first {first} servers are right; the next one is not. Look at the referral just "
                           "before it: which name server does it name, and which address does its glue give?")


# ---------------------------------------------------------------------------
# 2. The student's iterative resolver, run in the lab on names it has not seen.


def drawn_names(rng: random.Random, count: int = 4) -> dict[str, str]:
    """`count` new names under example.test and cdn.test with addresses, drawn per run (name → IPv4)."""
    names = {}
    for i in range(count):
        label = "".join(rng.choice(string.ascii_lowercase) for _ in range(6))
        zone = "example.test" if i % 2 == 0 else "cdn.test"
        names[f"{label}.{zone}"] = f"198.51.100.{rng.randrange(1, 255)}"
    return names


@exercise_check
def iterative_resolver(resolve: Any) -> Feedback:
    """Exercise: the student's resolve(name, root, ask), run in a fresh lab on names drawn now, against Unbound."""
    if (fb := unanswered(resolve)) is not None:
        return fb
    if not callable(resolve):
        return Feedback(False, f"Give your function `resolve` itself (no call, no quotes), not a {type(resolve).__name__}.")
    from netlab.core.errors import LabUnavailable
    from netlab.lessons.names.experiments import HOME, ROOT, iterate_in_lab

    try:
        runs = iterate_in_lab(resolve, drawn_names(random.Random()))
    except LabUnavailable as err:
        return Feedback(False, f"This check runs your resolver in the lab, which this machine refuses: {err}")
    return verdict_resolver(runs, ROOT, HOME)


def verdict_resolver(runs: dict[str, dict[str, Any]], root: str, resolver: str) -> Feedback:
    for name, run in runs.items():
        yours, truth, asked = run["yours"], run["unbound"], run["asked"]
        if resolver in asked:
            return Feedback(False, f"For {name} your function asked {resolver}, the home router's recursive resolver: "
                                   "it would do the walk for you. Ask the root first, then whom each referral names.")
        if not asked or asked[0] != root:
            return Feedback(False, f"For {name} your function's first question went to "
                                   f"{asked[0] if asked else 'no server'}: start at the root, whose address is `root`.")
        if isinstance(yours, str) and ":" in yours and not _address(yours):
            return Feedback(False, f"For {name} (a name drawn just now) your function raised {yours}.")
        got = [yours] if isinstance(yours, str) else yours
        if not isinstance(got, (list, tuple)) or not all(isinstance(a, str) for a in got):
            return Feedback(False, f"For {name} your function returned {type(yours).__name__}: return a list of "
                                   "IPv4 addresses as text.")
        if sorted(got) != sorted(truth):
            return Feedback(False, f"For {name} (drawn just now) your function returned {list(got)} after asking "
                                   f"{len(asked)} servers; Unbound's answer differs. Does it follow each referral (the "
                                   "NS in the authority section, its address among the additional records) until "
                                   "a reply has answers?")
    return Feedback(True, f"Your resolver found all {len(runs)} names drawn for this run, starting at the root and "
                          "following referrals, with the same addresses as Unbound.")


def _address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------------------
# 3. DHCP: the student's own DISCOVER and the OFFER it got.

_OFFER_KEYS = ("address", "router", "dns", "lease")


@exercise_check
def dhcp_reading(exp: Any, answer: Any) -> Feedback:
    """Exercise: the student's DISCOVER sent on the home link (`dhcp_offer`), and what they read in the OFFER."""
    if (fb := unanswered(answer)) is not None:
        return fb
    if not isinstance(exp, Experiment) or not isinstance(exp.result, dict) or "offer" not in exp.result:
        return Feedback(False, "Pass what `netlab.names.dhcp_offer(home, discover)` returned as the first argument.")
    return verdict_dhcp(exp.result["offer"], answer)


def verdict_dhcp(offer: dict[str, Any] | None, answer: Any) -> Feedback:
    if offer is None:
        return Feedback(False, "No OFFER came back to your DISCOVER. A server answers a DISCOVER sent to everyone "
                               "(Ethernet ff:ff:ff:ff:ff:ff, IP 255.255.255.255) from 0.0.0.0, UDP port 68 to 67, with "
                               "BOOTP's chaddr the MAC it came from and DHCP's message-type 'discover'.")
    if not isinstance(answer, dict) or set(answer) != set(_OFFER_KEYS):
        return Feedback(False, f"Give a dict with exactly these keys: {', '.join(_OFFER_KEYS)}.")
    wrong = []
    hints = {"address": "address: the OFFER's yiaddr ('your' address)",
             "router": "router: option 3 (`router` in scapy's options)",
             "dns": "dns: option 6 (`name_server`)",
             "lease": "lease: option 51 (`lease_time`), in seconds, as a number"}
    for key in _OFFER_KEYS:
        given = answer[key]
        if key == "lease":
            if not whole(given) or given != offer["lease"]:
                wrong.append(hints[key])
        elif str(given) != str(offer[key]):
            wrong.append(hints[key])
    if wrong:
        return Feedback(False, "Your DISCOVER got an OFFER; look at it again: " + "; ".join(wrong) + ".")
    return Feedback(True, "Right: your own DISCOVER got an OFFER, and you read the address offered for your MAC, the "
                          "router, the DNS server and the lease from it.")


# ---------------------------------------------------------------------------
# 4. NAT, predicted and run.


@exercise_check
def nat_prediction(port: Any, answer: Any) -> Feedback:
    """Exercise: the 4-tuple on the outside link of a connection from the laptop's drawn source port to the web
    server; a fresh run in the lab checks."""
    if (fb := unanswered(answer)) is not None:
        return fb
    if not whole(port) or not 1024 <= port <= 65535:
        return Feedback(False, f"Pass the port drawn for you (`port = netlab.names.nat_port(home)`), not {port!r}.")
    from netlab.lessons.names.experiments import nat

    run = nat(port=port, clash=False)
    if not run.live:
        return Feedback(False, f"This check needs the lab to open a connection from port {port}, and this machine "
                               f"refuses it: {run.why}")
    return verdict_nat(answer, run.result["inside"], run.result["outside"])


def verdict_nat(answer: Any, inside: list, outside: list) -> Feedback:
    if not isinstance(answer, (list, tuple)) or len(answer) != 4:
        return Feedback(False, "Give a tuple of four: (source address, source port, destination address, destination port).")
    if not outside:
        return Feedback(False, "The run in the lab saw no SYN leave the home router; run the check again.")
    seen = tuple(outside[0])
    given = (str(answer[0]), answer[1], str(answer[2]), answer[3])
    wrong = []
    if given[0] != seen[0]:
        wrong.append("the source address: which address of the home router can the web server send its replies to?")
    if given[1] != seen[1]:
        wrong.append("the source port: masquerade changes a port only when it must (when another connection "
                     "already has that outside tuple)")
    if given[2:] != seen[2:]:
        wrong.append("the destination: does the home router change where the connection goes?")
    if wrong:
        return Feedback(False, "The connection just run in the lab left the home router with another tuple. Look at "
                               + "; ".join(wrong) + ".")
    kept = "kept the port" if inside and inside[0][1] == seen[1] else "changed the port"
    return Feedback(True, f"Right: the router wrote its own public address in place of the laptop's and {kept}, "
                          "and the web server answered that address.")
