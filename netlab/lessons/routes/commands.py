"""The addresses-and-routes lesson's subcommand: `python -m netlab routes`, one ping across the lab's three routers.

`python -m netlab` finds this module in the lesson and calls `add_commands`; each subcommand's
function returns the exit status, and an error it raises ends in one line "netlab: error: ...".
"""

from __future__ import annotations

import argparse

_DESTINATIONS = {"server": "10.2.1.2", "site": "10.2.0.1", "outside": "192.0.2.7"}


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add this lesson's subcommands to `python -m netlab`."""
    p = commands.add_parser("routes", help="ping across the lab's three routers and show the links the packets crossed")
    p.add_argument("destination", nargs="?", default="server", choices=sorted(_DESTINATIONS),
                   help="the server (10.2.1.2, via r2), r3's site (10.2.0.1, the /16) or outside (192.0.2.7, the default "
                        "route); default server")
    p.set_defaults(func=_routes, experiment=True)


def _routes(args: argparse.Namespace) -> int:
    from netlab.lessons.routes.experiments import Network, follow

    with Network() as net:  # one network for both (or, where it is refused, the recordings at once)
        exp = follow(net, _DESTINATIONS[args.destination])
        routes = net.table("r1")
    print(exp.why if exp.live else f"recorded: {exp.why}")
    print("r1's routing table (prefix → next hop or own link):")
    for prefix, via in routes:
        print(f"  {prefix:<15} → {via}")
    r = exp.result
    print(f"ping {r['destination']}: the request crossed {' → '.join(r['request_links']) or 'no link'}; "
          f"the reply {' → '.join(r['reply_links']) or 'never came'}")
    for sender, what in r["errors"]:
        print(f"  from {sender}: {what}")
    return 0
