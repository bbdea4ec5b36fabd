"""The handshake lesson's subcommands: `python -m netlab handshake` and `refused`.

`python -m netlab` finds this module in the lesson and calls `add_commands`; each subcommand's
function returns the exit status, and an error it raises ends in one line "netlab: error: ...".
"""

from __future__ import annotations

import argparse
from pathlib import Path

from netlab.core.arguments import number_type, writable_folder
from netlab.core.conversation import Conversation


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add this lesson's subcommands to `python -m netlab`."""
    p = commands.add_parser("handshake", help="capture a TCP handshake, one message and the teardown")
    p.add_argument("--out", default=".", help="folder for handshake.pcap and handshake.png (default: .)")
    p.add_argument("--close-delay", type=number_type("a delay in seconds", 0, 5, whole=False), default=0.0,
                   metavar="SECONDS", help="hold the server's close this long (0.2 shows a four-segment teardown)")
    p.set_defaults(func=_handshake, experiment=True)

    p = commands.add_parser("refused", help="connect to a port where nothing listens: see the RST")
    p.add_argument("--out", help="folder for refused.pcap")
    p.set_defaults(func=_refused, experiment=True)


def _handshake(args: argparse.Namespace) -> int:
    from netlab.lessons.handshake.experiments import handshake

    writable_folder(Path(args.out))
    exp = handshake(close_delay=args.close_delay)
    print(exp.why)
    print(exp.conversation.table())
    print(f"closed first: {exp.conversation.closed_first}")
    for state in exp.kernel_states:
        print(f"kernel after: {state}")
    out = Path(args.out)
    pcap = exp.save(out / "handshake.pcap")
    png = _ladder_png(exp.conversation, out / "handshake.png")
    print(f"wrote {pcap} and {png}")
    return 0


def _refused(args: argparse.Namespace) -> int:
    from netlab.lessons.handshake.experiments import refused

    if args.out:
        writable_folder(Path(args.out))
    exp = refused()
    print(exp.why)
    print(exp.conversation.table())
    print(f"the client saw: {exp.result!r}")
    if args.out:
        print(f"wrote {exp.save(Path(args.out) / 'refused.pcap')}")
    return 0


def _ladder_png(conv: Conversation, path: Path) -> Path:
    from netlab.core.draw import ladder

    path.parent.mkdir(parents=True, exist_ok=True)
    ladder(conv).savefig(path, dpi=110)
    return path
