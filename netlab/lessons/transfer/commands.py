"""The data-transfer lesson's subcommand: `python -m netlab retransmit`, each retransmission timeout doubling.

`python -m netlab` finds this module in the lesson and calls `add_commands`; each subcommand's
function returns the exit status, and an error it raises ends in one line "netlab: error: ...".
"""

from __future__ import annotations

import argparse

from netlab.core.arguments import number_type


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add this lesson's subcommands to `python -m netlab`."""
    p = commands.add_parser("retransmit", help="send to a peer that never acknowledges: see each timeout double")
    p.add_argument("--count", type=number_type("a number of retransmissions", 1, 8), default=5, metavar="N",
                   help="retransmissions to wait for, 1 to 8 (default 5: about 6 s)")
    p.set_defaults(func=_retransmit, experiment=True)


def _retransmit(args: argparse.Namespace) -> int:
    from netlab.core.peer import recording_note
    from netlab.lessons.transfer.experiments import retransmission_times, retransmissions

    exp = retransmissions(count=args.count)
    times = retransmission_times(exp.conversation)
    if exp.live:
        print(exp.why)
    else:
        # In the command line's terms: the recording was made once, with its own count.
        print(f"recorded: {exp.why.removesuffix(recording_note(exp.script))} The recording holds "
              f"{len(times)} retransmissions; --count applies to live runs.")
    print(f"the kernel sent 100 bytes to a peer that never acknowledges, then {len(times)} times again:")
    previous_wait = None
    last = 0.0
    for number, when in enumerate(times, 1):
        wait = when - last
        ratio = f", {wait / previous_wait:.2f} × the wait before" if previous_wait else ""
        print(f"  retransmission {number}: at {when:6.3f} s, {wait:.3f} s after the last copy{ratio}")
        previous_wait, last = wait, when
    return 0
