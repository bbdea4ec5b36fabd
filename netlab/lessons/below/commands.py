"""The below-TCP lesson's subcommand: `python -m netlab traceroute`, the lab's routed path hop by hop.

`python -m netlab` finds this module in the lesson and calls `add_commands`; each subcommand's
function returns the exit status, and an error it raises ends in one line "netlab: error: ...".
"""

from __future__ import annotations

import argparse

from netlab.core.arguments import number_type


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add this lesson's subcommands to `python -m netlab`."""
    p = commands.add_parser("traceroute", help="trace the lab's routed path: the router, then the server, with round trips")
    p.add_argument("--max-hops", type=number_type("a largest TTL", 1, 30), default=8, metavar="N",
                   help="the largest TTL to probe with, 1 to 30 (default 8)")
    p.set_defaults(func=_traceroute, experiment=True)


def _traceroute(args: argparse.Namespace) -> int:
    from netlab.lessons.below.experiments import CLIENT, NAMES, SERVER, hops_of, trace

    exp = trace(max_hops=args.max_hops)
    print(exp.why if exp.live else f"recorded: {exp.why}")
    print(f"traceroute from the client ({CLIENT}) to the server ({SERVER}): UDP probes with TTL 1, 2, ...; "
          "round trips in ms")
    for hop in hops_of(exp):
        print(hop.line(NAMES))
    return 0
