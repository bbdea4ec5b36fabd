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
    # Why each cut happened, from the kernel's counters: only for a live run, whose ordered loss is known.
    whys = _why_cuts(exp, args.loss) if exp.live else [""] * len(exp.reductions)
    for cut, why in zip(exp.reductions, whys):
        print(f"  at {cut.time:.3f} s {cut}" + (f": {why}" if why else ""))
    if not exp.reductions:
        print("  no reduction of cwnd")
    if exp.live:
        ordered = f"data segment {args.loss}" if args.loss else "nothing"
        print(f"  losses: the path lost {ordered} as ordered; its full queue dropped {exp.queue_drops} "
              f"(tc's count); the sender retransmitted {exp.samples[-1].total_retrans} (TCP_INFO)")
    return 0


def _why_cuts(exp, loss: int | None) -> list[str]:
    """For each cut of cwnd, what the kernel's counters say caused it: the ordered loss, or the queue's own drops."""
    samples = exp.samples
    start = next((s.time for s in samples if s.bytes_sent), samples[0].time if samples else 0.0)
    # The ordered loss belongs to the first cut after that segment left (data_segs_out counts it).
    sent_at = next((s.time - start for s in samples if loss and s.data_segs_out >= loss), None)
    ordered_cut = next((i for i, c in enumerate(exp.reductions) if sent_at is not None and c.time >= sent_at), None)
    bounds = [c.time for c in exp.reductions] + [float("inf")]

    def retransmitted_by(t: float) -> int:  # the kernel's count of segments resent before `t` s
        return max((s.total_retrans for s in samples if s.time - start < t), default=0)

    reasons = []
    for i, cut in enumerate(exp.reductions):
        resent = retransmitted_by(bounds[i + 1]) - retransmitted_by(cut.time)
        segments = f"{resent} segment{'s' if resent != 1 else ''} resent"
        if cut.cause == "timeout":
            reasons.append(f"a timeout; {segments} until the next cut")
        elif i == ordered_cut:
            queue = f", {resent - 1} more that the full queue dropped in the same window" if resent > 1 else ""
            reasons.append(f"{segments} in this recovery: the one the path lost{queue}")
        else:
            reasons.append(f"a loss of its own: {segments}, dropped by the full queue "
                           "(cwnd had grown past what the path and its queue hold)")
    return reasons

