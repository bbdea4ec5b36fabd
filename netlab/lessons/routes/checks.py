"""The exercise checks of notebook 11: each says what is right or what to look at again.

Every public function marked `@exercise_check` is a check a notebook calls as `netlab.checks.NAME`
(`netlab.checks` finds it here); what a check shares with the others (`Feedback`, "not answered
yet", grading) is in `netlab.core.checking`. A check never reveals the answer.

Each check is in two parts: the check gathers what the student hands over as **data** (values, a
function's source text, the fields of their own capture) and the cases to judge it on (drawn
per run, or measured in the lab), then a `verdict_*` function of that data alone decides. A
verdict needs no lab and no notebook, so a grader can run it in another process.
"""

from __future__ import annotations

import inspect
import ipaddress
import textwrap
from typing import Any

from netlab.core.checking import Feedback, exercise_check, unanswered, whole
from netlab.lessons.routes.addressing import AddressQuestion, SplitQuestion, as_table, describe

__all__ = ["address_facts", "subnet_split", "longest_prefix", "loop_prediction", "fragment_fields", "distance_vector",
           "verdict_address", "verdict_split", "verdict_lookup", "verdict_loop", "verdict_fragments",
           "verdict_distance_vector", "source_of"]


def _keys(answer: Any, keys: tuple[str, ...]) -> Feedback | None:
    if not isinstance(answer, dict) or set(answer) != set(keys):
        return Feedback(False, f"Give a dict with exactly these keys: {', '.join(keys)}.")
    return None


def source_of(func: Any, name: str) -> str:
    """The source text of the student's function (what a verdict runs); a ValueError where there is none."""
    if not callable(func):
        raise ValueError(f"give a function {name}(...), not {type(func).__name__}")
    try:
        return textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        raise ValueError(f"the source of {name} cannot be read: define it with `def` in a cell") from None


def _load(source: str, name: str) -> Any:
    """Run the source text of a student's function (with `ipaddress` at hand) and return the function."""
    space: dict[str, Any] = {"ipaddress": ipaddress, "__name__": "answer"}
    exec(compile(source, "<your answer>", "exec"), space)  # noqa: S102  (the student's own code, as the exercise asks)
    funcs = [v for k, v in space.items() if callable(v) and getattr(v, "__module__", None) == "answer"]
    return space.get(name) or (funcs[-1] if funcs else None)


# ---------------------------------------------------------------------------
# 1. An address and its network.

_ADDRESS_KEYS = ("network", "broadcast", "first_host", "last_host", "hosts")


@exercise_check
def address_facts(question: AddressQuestion, answer: Any) -> Feedback:
    """Exercise: for the drawn address with its prefix, the network, broadcast, first and last host, how many hosts."""
    if (fb := unanswered(answer)) is not None:
        return fb
    return verdict_address(question.address, answer)


def verdict_address(address: str, answer: Any) -> Feedback:
    if (fb := _keys(answer, _ADDRESS_KEYS)) is not None:
        return fb
    truth = describe(address)
    hints = {"network": "network: keep the prefix's bits, set the rest to 0, and write the prefix length after a /",
             "broadcast": "broadcast: keep the prefix's bits, set the rest to 1",
             "first_host": "first_host: the address just after the network's own",
             "last_host": "last_host: the address just before the broadcast address",
             "hosts": "hosts: 2 to the power of the host bits, less the two addresses no host may have"}
    wrong = []
    for key in _ADDRESS_KEYS:
        given = answer[key]
        if key == "network":
            try:
                given = str(ipaddress.IPv4Network(str(given)))
            except ValueError:
                pass
        if key == "hosts" and not whole(given):
            wrong.append("hosts (a whole number)")
        elif str(given) != str(truth[key]):
            wrong.append(hints[key])
    if wrong:
        return Feedback(False, f"For {address}: look again at " + "; ".join(wrong) + ".")
    # The same words for every drawn address: a stored output that nbval compares must not vary.
    return Feedback(True, "Right for your address: the prefix's bits name the network, the host bits that remain give "
                          "2^bits addresses, of which the first names the network and the last is its broadcast.")


# ---------------------------------------------------------------------------
# 2. Splitting a block into subnets.

_SPLIT_KEYS = ("prefix", "count", "last")


@exercise_check
def subnet_split(question: SplitQuestion, answer: Any) -> Feedback:
    """Exercise: the longest prefix whose subnets hold the hosts, how many such subnets fit the block, the last one."""
    if (fb := unanswered(answer)) is not None:
        return fb
    return verdict_split(question.block, question.hosts, answer)


def verdict_split(block: str, hosts: int, answer: Any) -> Feedback:
    if (fb := _keys(answer, _SPLIT_KEYS)) is not None:
        return fb
    net = ipaddress.IPv4Network(block)
    prefix = max(p for p in range(net.prefixlen, 31) if 2 ** (32 - p) - 2 >= hosts)
    subnets = list(net.subnets(new_prefix=prefix))
    if not whole(answer["prefix"]) or answer["prefix"] != prefix:
        big = whole(answer["prefix"]) and 2 ** (32 - answer["prefix"]) - 2 >= hosts
        said = "a longer prefix still holds" if big else f"a /{answer['prefix']} does not hold"
        return Feedback(False, f"prefix: {said} {hosts} hosts (count the network and broadcast addresses too).")
    if answer["count"] != len(subnets):
        return Feedback(False, f"count: how many /{prefix} fit in a /{net.prefixlen}? (a power of two)")
    try:
        last = ipaddress.IPv4Network(str(answer["last"]))
    except ValueError:
        return Feedback(False, "last: write it as a network with its prefix, such as '10.0.0.0/26'.")
    if last != subnets[-1]:
        return Feedback(False, f"last: the last /{prefix} of {block} ends where the block ends (at its broadcast address).")
    return Feedback(True, "Right for your block: each bit added to the prefix halves the subnets' size and doubles "
                          "their number, down to the longest prefix that still holds your hosts.")


# ---------------------------------------------------------------------------
# 3. Longest-prefix match, against the kernels.


@exercise_check
def longest_prefix(lookup: Any) -> Feedback:
    """Exercise: the student's lookup(table, address), run on r1's and r3's tables (r1 with three routes drawn
    per run) against the kernels' own `ip route get` for hundreds of addresses."""
    if (fb := unanswered(lookup)) is not None:
        return fb
    source = source_of(lookup, "lookup")
    from netlab.lessons.routes.experiments import lookups

    run = lookups()  # live: a fresh lab with routes drawn now; elsewhere the recording
    return verdict_lookup(source, run.result["tables"], run.result["answers"], live=run.live)


def verdict_lookup(source: str, tables: dict[str, list], answers: dict[str, dict[str, str | None]], *,
                   live: bool = True) -> Feedback:
    lookup = _load(source, "lookup")
    if lookup is None:
        return Feedback(False, "Your answer defines no function: write `def lookup(table, address): ...`.")
    where = "the kernels' choices just now" if live else "the kernels' choices in the recording"
    total = 0
    for host, table in tables.items():
        routes = [tuple(r) for r in as_table(table)]
        for address, expected in answers[host].items():
            total += 1
            got = lookup(list(routes), address)
            if got == expected:
                continue
            if expected is None:
                return Feedback(False, f"On {host}'s table, for {address}: the kernel finds no route (no prefix "
                                       f"holds it and there is no default), and your lookup said {got!r}: return None.")
            prefixes = sorted((p for p, _ in routes if ipaddress.IPv4Address(address) in ipaddress.IPv4Network(p)),
                              key=lambda p: int(p.split("/")[1]))
            return Feedback(False, f"On {host}'s table, for {address}: {len(prefixes)} prefixes hold it "
                                   f"({', '.join(prefixes)}); your lookup chose {got!r}, not the next hop of the one the "
                                   "kernel chose. Which of them is the longest?")
    return Feedback(True, f"Your lookup agrees with {where} on all {total} addresses, on r1's table (with routes drawn "
                          "for this run) and on r3's (no default route).")


# ---------------------------------------------------------------------------
# 4. A routing loop, predicted.


@exercise_check
def loop_prediction(ttl: Any, answer: Any) -> Feedback:
    """Exercise: for the drawn TTL, how often the echo request crosses r1–r2 in the loop, and who sends Time Exceeded;
    a live run with that TTL checks."""
    if (fb := unanswered(answer)) is not None:
        return fb
    if (fb := _keys(answer, ("crossings", "time_exceeded_from"))) is not None:
        return fb
    from netlab.lessons.routes.experiments import loop

    run = loop(ttl=ttl)
    if not run.live and run.result.get("ttl") != ttl:
        return Feedback(False, f"This check needs the lab to send a TTL of {ttl}, and this machine refuses it: {run.why}")
    return verdict_loop(ttl, answer, run.result["crossings"], run.result["time_exceeded_from"])


def verdict_loop(ttl: int, answer: dict[str, Any], crossings: int, sender: str | None) -> Feedback:
    wrong = []
    if answer["crossings"] != crossings:
        wrong.append("crossings: r1 takes one from the TTL before the first crossing, and each router another "
                     "before each crossing after it; a packet that would leave with TTL 0 never does")
    if answer["time_exceeded_from"] != sender:
        wrong.append("time_exceeded_from: which router holds the packet when its TTL reaches 0, and which of its "
                     "addresses does it send from (the one on its way back to the client)?")
    if wrong:
        return Feedback(False, f"With TTL {ttl}, compare with the live run: " + "; ".join(wrong) + ".")
    return Feedback(True, "Right, and the run with your TTL agrees: each crossing costs one from the TTL, and the "
                          "router that would send it on with TTL 0 drops it and says Time Exceeded.")


# ---------------------------------------------------------------------------
# 5. Fragments, read from the student's own capture.


@exercise_check
def fragment_fields(exp: Any, answer: Any) -> Feedback:
    """Exercise: from the student's own capture (a datagram of a size drawn per run), each fragment on r1–r2 as
    (offset in bytes, MF, bytes of data), in order."""
    if (fb := unanswered(answer)) is not None:
        return fb
    fragments = [(p["IP"].frag * 8, int(bool(p["IP"].flags.MF)), len(bytes(p["IP"].payload)))
                 for p in getattr(exp, "packets", []) if getattr(p, "sniffed_on", None) == "r1-r2" and p.haslayer("IP")
                 and (p["IP"].flags.MF or p["IP"].frag)]
    if not fragments:
        return Feedback(False, "Your capture has no fragments on r1-r2: run the cell above the exercise again.")
    return verdict_fragments(exp.result["size"], answer, fragments)


def verdict_fragments(size: int, answer: Any, fragments: list[tuple[int, int, int]]) -> Feedback:
    if not isinstance(answer, (list, tuple)) or not all(isinstance(f, (list, tuple)) and len(f) == 3 for f in answer):
        return Feedback(False, "Give a list with one (offset, mf, data_bytes) triple per fragment, in order.")
    given = [tuple(f) for f in answer]
    if len(given) != len(fragments):
        return Feedback(False, f"Your datagram ({size} bytes of UDP data) was cut into a different number of fragments: "
                               "count the frames on r1-r2 that carry a fragment.")
    for i, (mine, real) in enumerate(zip(given, fragments, strict=True)):
        if mine[0] != real[0]:
            return Feedback(False, f"Fragment {i}: the offset. The header counts it in 8-byte units; give it in bytes.")
        if mine[1] != real[1]:
            return Feedback(False, f"Fragment {i}: MF (more fragments) is 1 on all but one fragment.")
        if mine[2] != real[2]:
            return Feedback(False, f"Fragment {i}: the bytes of data after the IP header (its total length less 20); "
                                   "the first one's data starts with the UDP header.")
    return Feedback(True, "Right for your capture: each fragment but the last carries a multiple of 8 bytes, and "
                          "together they carry the whole UDP datagram, its 8-byte header and its data.")


# ---------------------------------------------------------------------------
# 6. Distance vector, against BIRD's tables.


@exercise_check
def distance_vector(update: Any, run: Any) -> Feedback:
    """Exercise: the student's Bellman-Ford update(table, neighbour, advertised), iterated over the lab's three
    routers until nothing changes, must give the metrics BIRD's RIP computed in `run` (the notebook's `rip`)."""
    if (fb := unanswered(update)) is not None:
        return fb
    source = source_of(update, "update")
    tables = getattr(run, "result", None)
    if not isinstance(tables, dict) or "tables" not in tables:
        return Feedback(False, "Pass the RIP experiment of section 6 (`protocol`) as the second argument.")
    from netlab.lessons.routes.experiments import PLAN

    links = [(PLAN.interface(link.a).host, PLAN.interface(link.b).host, PLAN.interface(link.a).network)
             for link in PLAN.links]
    connected = {h: sorted(i.network for i in PLAN.on(h)) for h in PLAN.routers}
    routers_links = [link for link in links if link[0] in PLAN.routers and link[1] in PLAN.routers]
    addresses = {(i.host, i.network): i.ipv4 for i in PLAN.interfaces}
    return verdict_distance_vector(source, connected, routers_links, addresses, tables["tables"], live=run.live)


def verdict_distance_vector(source: str, connected: dict[str, list[str]], links: list[tuple[str, str, str]],
                            addresses: dict[tuple[str, str], str], bird: dict[str, list], *, live: bool = True) -> Feedback:
    update = _load(source, "update")
    if update is None:
        return Feedback(False, "Your answer defines no function: write `def update(table, neighbour, advertised): ...`.")
    # Each router starts with its own networks at metric 1 (RIP counts a connected network as one hop).
    tables: dict[str, dict[str, tuple[int, str]]] = {r: {n: (1, "direct") for n in nets} for r, nets in connected.items()}
    for _round in range(20):
        changed = False
        for a, b, net in links:
            for me, them in ((a, b), (b, a)):
                advertised = {prefix: metric for prefix, (metric, _) in tables[them].items()}
                new = update(dict(tables[me]), addresses[(them, net)], advertised)
                if not isinstance(new, dict):
                    return Feedback(False, f"update returned {type(new).__name__}; return the new table, a dict "
                                           "prefix → (metric, next hop).")
                if new != tables[me]:
                    tables[me], changed = new, True
        if not changed:
            break
    else:
        return Feedback(False, "Your tables never stopped changing after 20 rounds: does update keep a route when an "
                               "advertisement is no better than what the table has?")
    where = "the daemon's tables just now" if live else "the daemon's recorded tables"
    for router, routes in sorted(bird.items()):
        for prefix, _via, metric in routes:
            got = tables[router].get(prefix)
            if got is None:
                return Feedback(False, f"{router}'s table lacks {prefix}, which RIP learned: does update add a prefix "
                                       "the table does not have yet?")
            if not isinstance(got, (tuple, list)) or len(got) != 2:
                return Feedback(False, f"{router}'s entry for {prefix} is {got!r}: make each entry (metric, next hop).")
            if got[0] != metric:
                return Feedback(False, f"{router}'s metric for {prefix} is {got[0]}, BIRD's is not: a route through a "
                                       "neighbour costs what the neighbour advertised, plus one for the hop to it.")
    return Feedback(True, f"Your update, run round after round on the lab's three routers, gives the metrics of {where} "
                          "for every network: Bellman-Ford is what RIP computes.")
