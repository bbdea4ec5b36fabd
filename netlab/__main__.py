"""The command line: `python -m netlab handshake --out DIR`, `python -m netlab show FILE.pcap`.

This file holds the tools that serve every lesson (`show`, `record`, the classroom's `mark-exercises`,
`student-edition` and `grade`) and the error policy (`main`). A lesson's own subcommands live in its
package (`netlab/lessons/<name>/commands.py`, `add_commands`), found by walking the lessons.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import NoReturn

from netlab.core.arguments import number_type, writable_folder
from netlab.core.conversation import Conversation, conversations
from netlab.core.errors import ConversationError, NetlabError
from netlab.core.pcapfiles import load_pcap
from netlab.lessons import lesson_parts


def _show(args: argparse.Namespace) -> int:
    if args.png:
        writable_folder(Path(args.png).parent)
    # One read and one split into streams, however many streams the file holds.
    convs = conversations(load_pcap(args.file), source=Path(args.file).name, partial=True)
    if not convs:
        raise ConversationError(f"{args.file} holds no TCP segments")
    if args.stream is not None:
        if not 0 <= args.stream < len(convs):
            raise ConversationError(f"there is no TCP stream {args.stream}; the capture holds streams 0..{len(convs) - 1}")
        convs = [convs[args.stream]]
    for conv in convs:
        print(conv.table(payload=args.payload))
        print()
        if args.png:
            print(_show_png(conv, args, several=len(convs) > 1) + "\n")
    return 0


def _show_png(conv: Conversation, args: argparse.Namespace, several: bool) -> str:
    """Draw one stream's ladder (the window --segments or --time chose, or its first 60 segments)
    to the PNG file --png names; say where, and which part of the stream it shows."""
    from netlab.core.draw import ladder, ladder_segments

    png = Path(args.png)
    if not png.suffix:
        png = png.with_suffix(".png")
    if several:
        png = png.with_name(f"{png.stem}-stream{conv.stream_number}{png.suffix}")
    window = {"segments": args.segments, "time": args.time}
    try:
        shown = ladder_segments(conv, **window)
    except ValueError as err:  # nothing of this stream in the window asked for
        if not several:
            raise ConversationError(str(err)) from None
        return f"(no ladder for stream {conv.stream_number}: {err})"
    ladder(conv, **window).savefig(png, dpi=110)
    if len(shown) == len(conv.segments):
        return f"wrote {png}"
    return (f"wrote {png}: segments {shown[0].number}–{shown[-1].number} of {len(conv.segments)} "
            "(choose others with --segments A:B or --time T0:T1)")


def _range(convert, what: str):
    """An argparse type for 'A:B' (either end may be left out), each end converted by `convert`."""
    def parse(text: str) -> tuple:
        if text.count(":") != 1:
            raise argparse.ArgumentTypeError(f"{text!r} is not a range A:B of {what} (either end may be left out)")
        try:
            first, last = (convert(part) if part.strip() else None for part in text.split(":"))
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a range A:B of {what}") from None
        if first is not None and last is not None and last < first:
            raise argparse.ArgumentTypeError(f"{text!r}: the range ends before it starts")
        return first, last
    return parse


def _record(args: argparse.Namespace) -> int:
    from netlab.core.errors import LabUnavailable
    from netlab.recordings import record_all

    writable_folder(Path(args.out))  # before minutes of experiments, not after
    try:
        written = record_all(Path(args.out))
    except LabUnavailable as err:
        raise LabUnavailable(f"recording needs the lab, and this machine has none: {err}") from None
    for path in written:
        print(f"wrote {path}")
    return 0


# The instructor edition: the notebooks of this checkout.
NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"


def _mark_exercises(args: argparse.Namespace) -> int:
    from netlab.classroom.edition import mark_files, series

    paths = [Path(p) for p in args.notebooks] or series(NOTEBOOKS)
    changed = mark_files(paths)
    for path in changed:
        print(f"marked {path}")
    print(f"{len(changed)} of {len(paths)} notebooks changed" if changed else f"all {len(paths)} notebooks were marked already")
    return 0


def _student_edition(args: argparse.Namespace) -> int:
    from netlab.classroom.edition import write_student_edition

    for path in write_student_edition(Path(args.out_dir), Path(args.source)):
        print(f"wrote {path}")
    return 0


def _grade(args: argparse.Namespace) -> int:
    from netlab.classroom.grading import grade, isolation, merge, progress_bar, shard, summary, write_csv
    from netlab.classroom.sandbox import problem

    if args.merge:
        rows = merge(Path(p) for p in args.submissions)
        print(summary(rows))
        print(f"wrote {write_csv(rows, Path(args.merge))}")
        return 0
    folders = shard(args.submissions, args.shard) if args.shard else args.submissions
    if args.unsandboxed:
        print("netlab: grading WITHOUT a sandbox: students' code runs as you, and can reach what you can (rows say "
              "'unsandboxed')", file=sys.stderr)
        if not isolation():
            print("netlab: no private namespace for the kernels here either: students' code runs on the host",
                  file=sys.stderr)
    elif (why := problem()) is not None:
        raise NetlabError(f"grading runs each submission in a sandbox, and {why}; install bubblewrap, or pass "
                          "--unsandboxed to grade without one (every row then says so)")
    rows = grade(folders, Path(args.source), workers=args.workers, cell_seconds=args.cell_timeout,
                 notebook_seconds=args.notebook_timeout, unsandboxed=args.unsandboxed, progress=progress_bar())
    print(summary(rows))
    print(f"wrote {write_csv(rows, Path(args.out))}")
    return 0


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors follow netlab's policy: one line "netlab: error: ...", exit status 2."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("python -m netlab").strip()
        self.exit(2, f"netlab: error: {command + ': ' if command else ''}{message} (see {self.prog} --help)\n")


def _shard(text: str) -> tuple[int, int]:
    """K/N: the K-th of N parts of the submissions (see netlab.classroom.grading.shard)."""
    from netlab.classroom.grading import parse_shard

    try:
        return parse_shard(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _error_line(err: BaseException) -> str:
    """The one line netlab prints for an error: its message, with a file's name where the OS names one."""
    if isinstance(err, OSError) and err.strerror:
        return f"{err.filename}: {err.strerror}" if err.filename else err.strerror
    return " ".join(str(err).split()) or type(err).__name__


def build_parser() -> argparse.ArgumentParser:
    """The command line's parser: one subcommand per experiment or tool."""
    parser = _Parser(
        prog="python -m netlab",
        description="See TCP conversations: capture them live in a private lab network, or read a pcap.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for lesson_commands in lesson_parts("commands"):  # each lesson's own subcommands, found, not listed
        lesson_commands.add_commands(commands)

    p = commands.add_parser("show", help="print the table (and draw the ladder) for a pcap you recorded")
    p.add_argument("file", help="a pcap or pcapng file (tcpdump -w, Wireshark)")
    p.add_argument("--stream", type=number_type("a stream number", 0),
                   help="show only TCP stream N (numbered from 0 like Wireshark)")
    p.add_argument("--png", help="also draw the ladder diagram to this PNG file (.png added when it has no extension)")
    p.add_argument("--payload", action="store_true", help="show the first bytes of each payload")
    window = p.add_mutually_exclusive_group()
    window.add_argument("--segments", type=_range(int, "segment numbers"), metavar="A:B",
                        help="draw segments A to B as numbered in the table (default: the first 60; at most 75)")
    window.add_argument("--time", type=_range(float, "seconds"), metavar="T0:T1",
                        help="draw the segments sent T0 to T1 seconds after the stream's first")
    p.set_defaults(func=_show)

    p = commands.add_parser("mark-exercises", help="(maintainers) mark the exercises nbgrader's way, in place")
    p.add_argument("notebooks", nargs="*", help="notebooks to mark (default: every notebook of the series)")
    p.set_defaults(func=_mark_exercises)

    p = commands.add_parser("student-edition", help="write the notebooks without their answers, for students")
    p.add_argument("out_dir", metavar="OUT_DIR", help="folder to write the student edition to")
    p.add_argument("--source", default=str(NOTEBOOKS), help="the instructor edition's folder (default: notebooks/)")
    p.set_defaults(func=_student_edition)

    p = commands.add_parser("grade", help="run students' notebooks and grade their exercises into a CSV")
    p.add_argument("submissions", nargs="+", metavar="SUBMISSION_DIR",
                   help="one folder per student, named for the student (with --merge: the shards' CSVs)")
    p.add_argument("--out", default="grades.csv", help="the CSV to write (default: grades.csv)")
    p.add_argument("--source", default=str(NOTEBOOKS), help="the instructor edition's folder (default: notebooks/)")
    p.add_argument("--workers", type=int, help="notebooks graded at once (default: the number of cores)")
    p.add_argument("--cell-timeout", type=float, default=180.0, metavar="SECONDS", help="time limit per cell (default 180)")
    p.add_argument("--notebook-timeout", type=float, default=900.0, metavar="SECONDS",
                   help="time limit per notebook (default 900)")
    p.add_argument("--shard", type=_shard, metavar="K/N",
                   help="grade only the K-th of N parts of the folders (by name), for N graders; join with --merge")
    p.add_argument("--merge", metavar="OUT",
                   help="join the CSVs given in place of the folders (the shards' grades) into OUT, and grade nothing")
    p.add_argument("--unsandboxed", action="store_true",
                   help="grade where no sandbox can be made: students' code then runs as you (every row says so)")
    p.set_defaults(func=_grade)

    p = commands.add_parser("record", help="(maintainers) re-record the captures shipped in netlab/data")
    p.add_argument("--out", default=str(Path(__file__).with_name("data")), help="folder to write to")
    p.set_defaults(func=_record)

    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one subcommand; any error a user can cause ends in one line "netlab: error: ..." and exit status 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (NetlabError, OSError, ValueError, TypeError) as err:  # TypeError/ValueError: a bad argument, named
        print(f"netlab: error: {_error_line(err)}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
