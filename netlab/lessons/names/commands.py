"""The names lesson's subcommand: `python -m netlab names`, one lookup walked from the root by the lab's Unbound.

`python -m netlab` finds this module in the lesson and calls `add_commands`; each subcommand's
function returns the exit status, and an error it raises ends in one line "netlab: error: ...".
"""

from __future__ import annotations

import argparse


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add this lesson's subcommands to `python -m netlab`."""
    p = commands.add_parser("names", help="look a name up in the lab's own DNS (root, test., example.test) through "
                                          "Unbound, and show the servers it asked")
    p.add_argument("name", nargs="?", default="www.example.test",
                   help="a name under example.test or cdn.test (www, mail, shop, many, edge); default www.example.test")
    p.set_defaults(func=_names, experiment=True)


def _names(args: argparse.Namespace) -> int:
    from netlab.lessons.names.experiments import lookup

    exp = lookup(name=args.name)
    print(exp.why if exp.live else f"recorded: {exp.why}")
    r = exp.result
    print(f"getaddrinfo({r['name']!r}): {', '.join(r['addresses'][0]) or r['errors'][0]}")
    print("the resolver asked:")
    for line in r["upstream"][0]:
        print(f"  {line}")
    print(f"the same lookup again: {len(r['upstream'][1])} queries upstream (answered from the cache)")
    return 0
