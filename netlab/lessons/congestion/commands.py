"""The congestion-control lesson's subcommand: `python -m netlab cwnd`, cwnd per round trip through a bottleneck.

`python -m netlab` finds this module in the lesson and calls `add_commands`; each subcommand's
function returns the exit status, and an error it raises ends in one line "netlab: error: ...".
"""

from __future__ import annotations

import argparse
import sys


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add this lesson's subcommands to `python -m netlab`."""
    p = commands.add_parser("cwnd", help="send through a bottleneck: cwnd per round trip and each reduction")
    p.add_argument("--cc", metavar="NAME", help="congestion control (default: the kernel's default)")
    p.add_argument("--loss", type=_loss, metavar="N", help="the path loses the N-th data segment")
    p.add_argument("--json", action="store_true", help="print one JSON object: cc, source, rounds, reductions")
    p.set_defaults(func=_cwnd, experiment=True)


def _cwnd(args: argparse.Namespace) -> int:
    import json

    from netlab.lessons.congestion.experiments import available_algorithms, default_algorithm, run

    cc = args.cc or default_algorithm()
    offered = available_algorithms()
    if offered and cc not in offered:
        print(f"netlab: error: this kernel has no congestion control {cc!r}; it offers {', '.join(offered)}", file=sys.stderr)
        return 2
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


def _loss(text: str) -> int:
    """The number of the data segment the path loses, 1 or more."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a segment number (1, 2, 3, …)") from None
    if not 1 <= number <= 100_000:
        raise argparse.ArgumentTypeError(f"{number}: data segments are numbered from 1 to 100000")
    return number
