"""The congestion-control lesson's subcommand: `python -m netlab cwnd`, cwnd per round trip through a bottleneck.

`python -m netlab` finds this module in the lesson and calls `add_commands`; each subcommand's
function returns the exit status, and an error it raises ends in one line "netlab: error: ...".
"""

from __future__ import annotations

import argparse

from netlab.core.arguments import number_type


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add this lesson's subcommands to `python -m netlab`."""
    p = commands.add_parser("cwnd", help="send through a bottleneck: cwnd per round trip and each reduction")
    p.add_argument("--cc", metavar="NAME", help="congestion control (default: the kernel's default)")
    p.add_argument("--loss", type=number_type("a data segment's number", 1, 100_000), metavar="N",
                   help="the path loses the N-th data segment")
    p.add_argument("--json", action="store_true", help="print one JSON object: cc, source, rounds, reductions")
    p.set_defaults(func=_cwnd, experiment=True)


def _cwnd(args: argparse.Namespace) -> int:
    import json

    from netlab.lessons.congestion.experiments import available_algorithms, default_algorithm, run

    cc = args.cc or default_algorithm()
    offered = available_algorithms()
    if offered and cc not in offered:
        raise ValueError(f"this kernel has no congestion control {cc!r}; it offers {', '.join(offered)}")
    recorded = f"congestion-{cc}" if cc in ("reno", "cubic", "bbr") else "congestion-cubic"
    exp = run(cc, rate=10e6, queue=100, rtt=0.04, seconds=1.5, drops=(args.loss,) if args.loss else (),
              recorded=recorded)
    if args.json:
        print(json.dumps({"cc": exp.algorithm, "source": exp.source, "rounds": [r.to_json() for r in exp.rounds],
                          "reductions": [r.to_json() for r in exp.reductions]}))
        return 0
    print(exp.why)
    print(f"{exp.algorithm}: {exp.path}")
    for r in exp.rounds:
        ratio = f"  (× {r.ratio:.2f})" if r.ratio else ""
        print(f"  round {r.number:>2}: cwnd {r.cwnd:>4} segments{ratio}")
    for cut in exp.reductions:
        print(f"  at {cut.time:.3f} s {cut}")
    if not exp.reductions:
        print("  no reduction of cwnd")
    return 0
