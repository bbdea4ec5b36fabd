"""The command line: `python -m netlab handshake --out DIR`, `python -m netlab show FILE.pcap`."""

from __future__ import annotations

import argparse
import errno
import os
import sys
from pathlib import Path
from typing import NoReturn

from netlab.core.conversation import Conversation, conversations
from netlab.core.errors import ConversationError, NetlabError
from netlab.core.pcapfiles import load_pcap


def _handshake(args: argparse.Namespace) -> int:
    from netlab.lessons.handshake import handshake

    _writable_folder(Path(args.out))
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
    from netlab.lessons.handshake import refused

    if args.out:
        _writable_folder(Path(args.out))
    exp = refused()
    print(exp.why)
    print(exp.conversation.table())
    print(f"the client saw: {exp.result!r}")
    if args.out:
        print(f"wrote {exp.save(Path(args.out) / 'refused.pcap')}")
    return 0


def _show(args: argparse.Namespace) -> int:
    if args.png:
        _writable_folder(Path(args.png).parent)
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

    _writable_folder(Path(args.out))  # before minutes of experiments, not after
    try:
        written = record_all(Path(args.out))
    except LabUnavailable as err:
        raise LabUnavailable(f"recording needs the lab, and this machine has none: {err}") from None
    for path in written:
        print(f"wrote {path}")
    return 0


def _http_server(args: argparse.Namespace) -> int:
    import signal

    from netlab.core.http import HTTPServer

    def show(record) -> None:
        print(record, flush=True)

    def stop(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    # Ctrl-C (and `kill`) stop the server cleanly, even when started where SIGINT was ignored
    # (a background job of a script).
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    with HTTPServer(port=args.port, on_request=show) as server:
        print(f"netlab HTTP server on {server.url}  (routes: / /large /chunked /slow; Ctrl-C stops it)", flush=True)
        try:
            while True:
                signal.pause()  # requests are served on other threads; Ctrl-C ends the wait
        except KeyboardInterrupt:
            print("stopping", flush=True)
    return 0


def _retransmit(args: argparse.Namespace) -> int:
    from netlab.core.peer import recording_note
    from netlab.lessons.transfer import retransmission_times, retransmissions

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


def _writable_folder(folder: Path) -> None:
    """Make `folder` (and its parents) if needed and make sure files can be written there: before an experiment runs."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise NotADirectoryError(errno.ENOTDIR, "cannot be a folder: it, or a folder above it, is a file", str(folder)) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "cannot write files in this folder", str(folder))


def _cwnd(args: argparse.Namespace) -> int:
    import json

    from netlab.lessons.congestion import available_algorithms, default_algorithm, run

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


def _traceroute(args: argparse.Namespace) -> int:
    from netlab.lessons.below import CLIENT, NAMES, SERVER, hops_of, trace

    exp = trace(max_hops=args.max_hops)
    print(exp.why if exp.live else f"recorded: {exp.why}")
    print(f"traceroute from the client ({CLIENT}) to the server ({SERVER}): UDP probes with TTL 1, 2, ...; "
          "round trips in ms")
    for hop in hops_of(exp):
        print(hop.line(NAMES))
    return 0


def _hops(text: str) -> int:
    """A traceroute's largest TTL, 1 to 30."""
    try:
        hops = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 30") from None
    if not 1 <= hops <= 30:
        raise argparse.ArgumentTypeError(f"{hops} hops: choose 1 to 30")
    return hops


def _loss(text: str) -> int:
    """The number of the data segment the path loses, 1 or more."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a segment number (1, 2, 3, …)") from None
    if not 1 <= number <= 100_000:
        raise argparse.ArgumentTypeError(f"{number}: data segments are numbered from 1 to 100000")
    return number


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
    from netlab.classroom.grading import grade, isolation, progress_bar, summary, write_csv

    if not isolation():
        print("netlab: no private namespace for the kernels here: students' code runs on the host (rows say so)",
              file=sys.stderr)
    try:
        rows = grade(args.submissions, Path(args.source), workers=args.workers, cell_seconds=args.cell_timeout,
                     notebook_seconds=args.notebook_timeout, progress=progress_bar())
    except ValueError as err:
        print(f"netlab: error: {err}", file=sys.stderr)
        return 2
    print(summary(rows))
    print(f"wrote {write_csv(rows, Path(args.out))}")
    return 0


def _ladder_png(conv: Conversation, path: Path) -> Path:
    from netlab.core.draw import ladder

    path.parent.mkdir(parents=True, exist_ok=True)
    ladder(conv).savefig(path, dpi=110)
    return path


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors follow netlab's policy: one line "netlab: error: ...", exit status 2."""

    def error(self, message: str) -> NoReturn:
        command = self.prog.removeprefix("python -m netlab").strip()
        self.exit(2, f"netlab: error: {command + ': ' if command else ''}{message} (see {self.prog} --help)\n")


def _port(text: str) -> int:
    """A TCP port number, 0 to 65535 (0: the kernel picks a free one)."""
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (a whole number from 0 to 65535)") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port number: ports go from 0 to 65535")
    return port


def _delay(text: str) -> float:
    """A delay in seconds, 0 to 5."""
    try:
        seconds = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0 <= seconds <= 5:  # also refuses nan
        raise argparse.ArgumentTypeError(f"{text} is not a delay from 0 to 5 seconds")
    return seconds


def _stream(text: str) -> int:
    """A TCP stream number, 0 or more (numbered like Wireshark's tcp.stream)."""
    try:
        number = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a stream number (0, 1, 2, …)") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"{number} is not a stream number: streams are numbered from 0")
    return number


def _count(text: str) -> int:
    """A number of retransmissions to wait for, 1 to 8."""
    try:
        count = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number from 1 to 8") from None
    if not 1 <= count <= 8:
        raise argparse.ArgumentTypeError(f"{count} retransmissions: choose 1 to 8 (8 takes about a minute)")
    return count


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

    p = commands.add_parser("handshake", help="capture a TCP handshake, one message and the teardown")
    p.add_argument("--out", default=".", help="folder for handshake.pcap and handshake.png (default: .)")
    p.add_argument("--close-delay", type=_delay, default=0.0, metavar="SECONDS",
                   help="hold the server's close this long (0.2 shows a four-segment teardown)")
    p.set_defaults(func=_handshake)

    p = commands.add_parser("refused", help="connect to a port where nothing listens: see the RST")
    p.add_argument("--out", help="folder for refused.pcap")
    p.set_defaults(func=_refused)

    p = commands.add_parser("show", help="print the table (and draw the ladder) for a pcap you recorded")
    p.add_argument("file", help="a pcap or pcapng file (tcpdump -w, Wireshark)")
    p.add_argument("--stream", type=_stream, help="show only TCP stream N (numbered from 0 like Wireshark)")
    p.add_argument("--png", help="also draw the ladder diagram to this PNG file (.png added when it has no extension)")
    p.add_argument("--payload", action="store_true", help="show the first bytes of each payload")
    window = p.add_mutually_exclusive_group()
    window.add_argument("--segments", type=_range(int, "segment numbers"), metavar="A:B",
                        help="draw segments A to B as numbered in the table (default: the first 60; at most 75)")
    window.add_argument("--time", type=_range(float, "seconds"), metavar="T0:T1",
                        help="draw the segments sent T0 to T1 seconds after the stream's first")
    p.set_defaults(func=_show)

    p = commands.add_parser("http-server", help="run the lessons' HTTP server on 127.0.0.1 until Ctrl-C")
    p.add_argument("--port", type=_port, default=0, help="port to listen on (default 0: the kernel picks a free one)")
    p.set_defaults(func=_http_server)

    p = commands.add_parser("retransmit", help="send to a peer that never acknowledges: see each timeout double")
    p.add_argument("--count", type=_count, default=5, metavar="N",
                   help="retransmissions to wait for, 1 to 8 (default 5: about 6 s)")
    p.set_defaults(func=_retransmit)

    p = commands.add_parser("traceroute", help="trace the lab's routed path: the router, then the server, with round trips")
    p.add_argument("--max-hops", type=_hops, default=8, metavar="N", help="the largest TTL to probe with, 1 to 30 (default 8)")
    p.set_defaults(func=_traceroute)

    p = commands.add_parser("mark-exercises", help="(maintainers) mark the exercises nbgrader's way, in place")
    p.add_argument("notebooks", nargs="*", help="notebooks to mark (default: every notebook of the series)")
    p.set_defaults(func=_mark_exercises)

    p = commands.add_parser("student-edition", help="write the notebooks without their answers, for students")
    p.add_argument("out_dir", metavar="OUT_DIR", help="folder to write the student edition to")
    p.add_argument("--source", default=str(NOTEBOOKS), help="the instructor edition's folder (default: notebooks/)")
    p.set_defaults(func=_student_edition)

    p = commands.add_parser("grade", help="run students' notebooks and grade their exercises into a CSV")
    p.add_argument("submissions", nargs="+", metavar="SUBMISSION_DIR", help="one folder per student, named for the student")
    p.add_argument("--out", default="grades.csv", help="the CSV to write (default: grades.csv)")
    p.add_argument("--source", default=str(NOTEBOOKS), help="the instructor edition's folder (default: notebooks/)")
    p.add_argument("--workers", type=int, help="notebooks graded at once (default: the number of cores)")
    p.add_argument("--cell-timeout", type=float, default=180.0, metavar="SECONDS", help="time limit per cell (default 180)")
    p.add_argument("--notebook-timeout", type=float, default=900.0, metavar="SECONDS",
                   help="time limit per notebook (default 900)")
    p.set_defaults(func=_grade)

    p = commands.add_parser("cwnd", help="send through a bottleneck: cwnd per round trip and each reduction")
    p.add_argument("--cc", metavar="NAME", help="congestion control (default: the kernel's default)")
    p.add_argument("--loss", type=_loss, metavar="N", help="the path loses the N-th data segment")
    p.add_argument("--json", action="store_true", help="print one JSON object: cc, source, rounds, reductions")
    p.set_defaults(func=_cwnd)

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
