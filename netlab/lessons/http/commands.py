"""The HTTP lesson's subcommand: `python -m netlab http-server`, the lessons' web server on 127.0.0.1.

`python -m netlab` finds this module in the lesson and calls `add_commands`; each subcommand's
function returns the exit status, and an error it raises ends in one line "netlab: error: ...".
"""

from __future__ import annotations

import argparse

from netlab.core.arguments import number_type


def add_commands(commands: argparse._SubParsersAction) -> None:
    """Add this lesson's subcommands to `python -m netlab`."""
    p = commands.add_parser("http-server", help="run the lessons' HTTP server on 127.0.0.1 until Ctrl-C")
    p.add_argument("--port", type=number_type("a port number", 0, 65535), default=0,
                   help="port to listen on (default 0: the kernel picks a free one)")
    p.set_defaults(func=_http_server)


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
