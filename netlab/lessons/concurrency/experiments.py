"""One echo protocol served three ways, and a load generator that measures them side by side.

Theory of operation
-------------------
The protocol is plain echo: the server sends back every byte it receives. It is served three
ways, each written the way its own experts write it:

- `ThreadedEchoServer`: a thread per connection. Each handler blocks in `recv`, which releases
  the GIL while it waits, so hundreds of connections make hundreds of threads.
- `SelectorEchoServer`: one thread, non-blocking sockets and a `selectors` loop, with an output
  buffer per connection (a reply the kernel cannot take at once waits there, and reading from
  that client pauses until it has drained).
- `AsyncioEchoServer`: `asyncio.start_server` with streams, on an event loop in one thread.

All three are context managers bound to 127.0.0.1 on a port the kernel picks, in a `netlab.Lab`
when given one, and each counts its open connections so a load test starts only when every client
has been accepted. The load comes from separate processes (`lab.popen`, or plain subprocesses on
the host's loopback where the lab is refused): C clients split over a few generator processes,
each client sending M small messages one at a time and timing each echo. Each generator reports
its latencies and its own CPU time, so a run shows whether the generator or the server was busy.
A comparison starts its generator processes once and gives them one run after another.

Rules for this file:
1. Servers run in the calling process (their threads and memory are what a notebook measures);
   clients run in other processes, so that client work is never counted as server work.
2. Every server, generator and wait has a timeout, and `close()` leaves no thread, socket or
   process behind, even when a run fails half-way.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from netlab.core.errors import HelperError
from netlab.core.experiment import lab_or_host
from netlab.core.lab import Lab, package_parent, read_line
from netlab.core.sockets import listener
from netlab.core.stats import percentile

if TYPE_CHECKING:
    from matplotlib.figure import Figure

__all__ = [
    "MODELS", "AsyncioEchoServer", "ConcurrencyError", "LoadComparison", "FdLimit", "IdleCost", "LoadPoint",
    "SelectorEchoServer", "ThreadedEchoServer", "compare", "model_server", "idle_cost", "lab_or_host", "load",
    "raise_fd_limit", "blocking_work",
]

# A listen backlog long enough for 500 clients connecting at once (the kernel caps it at
# net.core.somaxconn, 4096 on current Linux); with a short backlog, SYNs beyond it are dropped
# and those clients wait a whole SYN retransmission timeout (1 s) to connect.
BACKLOG = 1024
# Largest read per recv: an echo message is small, but a read this size drains whatever queued.
READ_SIZE = 65536
# Largest load message, in bytes: small enough that an empty send buffer always takes it whole.
MAX_ECHO = 4096
# A server stops within this many seconds of close().
STOP_TIMEOUT = 5.0
# After accept() fails for want of a resource (EMFILE: no file descriptor left), a server waits
# this long before it tries again, instead of spinning on a listener that stays readable.
ACCEPT_BACKOFF = 0.05


class ConcurrencyError(HelperError):
    """A server, a load run or a transfer could not do what was asked (the message says what)."""


def _nodelay(sock: socket.socket) -> None:
    # Each echo is a small segment sent while the previous reply may be unacknowledged: without
    # TCP_NODELAY, Nagle's algorithm can hold it until that ACK arrives (up to the peer's 40 ms
    # delayed-ACK timer). Request/response servers turn Nagle off.
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _EchoServer:
    """What the three servers share: the listening socket, the connection count, the life cycle."""

    model = ""

    def __init__(self, *, lab: Lab | None = None, host: str = "127.0.0.1", port: int = 0,
                 backlog: int = BACKLOG) -> None:
        self._threads_before = threading.active_count()
        self._count_lock = threading.Lock()
        self.open_connections = 0  # connections accepted and not yet closed
        self.accepted = 0  # connections accepted since the server started
        self.errors: list[str] = []  # one line per connection that ended with an error, or accept() failure
        self.accept_error: str | None = None  # why the last accept() failed, until one succeeds again
        self.accept_failures = 0  # accept() calls that failed since the server started (EMFILE and the like)
        self.lab = lab  # the lab the server listens in (None: the host), where its load must run too
        self._closed = False
        self._closing = threading.Event()  # set by close(): ends an accept back-off at once
        self._listener = listener(lab, host, port, backlog)
        self.address: tuple[str, int] = self._listener.getsockname()

    def _opened(self) -> None:
        with self._count_lock:
            self.open_connections += 1
            self.accepted += 1
            self.accept_error = None

    def _accept_failed(self, err: OSError) -> None:
        # accept() failed while the server was open: most often EMFILE, no file descriptor left for
        # the new connection. The connection stays queued in the kernel; the server keeps going and
        # tries again after a back-off. Each new reason is recorded once, not once per retry.
        line = f"accept() failed: {type(err).__name__}: {err}"
        if err.errno in (errno.EMFILE, errno.ENFILE):
            soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
            line += f" (this process may open {soft} files; see netlab.concurrency.raise_fd_limit)"
        with self._count_lock:
            self.accept_failures += 1
            if line != self.accept_error:
                self.errors.append(line)
            self.accept_error = line

    def _ended(self, err: BaseException | None = None) -> None:
        with self._count_lock:
            self.open_connections -= 1
            if err is not None:
                self.errors.append(f"{type(err).__name__}: {err}")

    @property
    def threads(self) -> int:
        """Threads in this process now, beyond those that ran before this server started."""
        return threading.active_count() - self._threads_before

    def wait_for_connections(self, count: int, timeout: float = 10.0) -> None:
        """Wait (up to `timeout` seconds) until exactly `count` connections are open."""
        deadline = time.monotonic() + timeout
        while self.open_connections != count:
            if time.monotonic() > deadline:
                why = f"; its last error: {self.errors[-1]}" if self.errors else ""
                raise ConcurrencyError(f"the {self.model} server has {self.open_connections} connections open "
                                       f"after {timeout:g} s, expected {count}{why}")
            time.sleep(0.001)

    def close(self) -> None:
        """Stop accepting, end every connection, and wait for the server's threads to finish."""
        if self._closed:
            return
        self._closed = True
        self._closing.set()
        self._stop()

    def _stop(self) -> None:
        raise NotImplementedError

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.address[0]}:{self.address[1]} open={self.open_connections}>"


def _join(threads: Iterable[threading.Thread], what: str, timeout: float = STOP_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    for thread in list(threads):
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            raise ConcurrencyError(f"{what} did not stop within {timeout:g} s")


class ThreadedEchoServer(_EchoServer):
    """Echo with one thread per connection: each handler blocks in `recv` until its client speaks."""

    model = "threads"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._connections: dict[threading.Thread, socket.socket] = {}
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"echo-threads-accept-{self.address[1]}",
                                          daemon=True)
        self._acceptor.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError as err:
                if self._closed:
                    return  # close() shut the listener down
                self._accept_failed(err)
                if self._closing.wait(ACCEPT_BACKOFF):
                    return
                continue
            _nodelay(conn)
            handler = threading.Thread(target=self._handle, args=(conn,), daemon=True,
                                       name=f"echo-threads-{self.address[1]}")
            with self._count_lock:
                if self._closed:
                    conn.close()
                    return
                self._connections[handler] = conn
            self._opened()
            handler.start()

    def _handle(self, conn: socket.socket) -> None:
        err = None
        try:
            with conn:
                while data := conn.recv(READ_SIZE):
                    conn.sendall(data)
        except OSError as exc:  # a reset ends this connection, not the server
            err = exc if not self._closed else None
        finally:
            with self._count_lock:
                self._connections.pop(threading.current_thread(), None)
            self._ended(err)

    def _stop(self) -> None:
        # On Linux, shutting a listening socket down wakes a thread blocked in accept() at once.
        try:
            self._listener.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self._acceptor.join(STOP_TIMEOUT)
        self._listener.close()
        with self._count_lock:
            handlers = dict(self._connections)
        for conn in handlers.values():
            try:
                conn.shutdown(socket.SHUT_RDWR)  # a handler blocked in recv() then reads b""
            except OSError:
                pass
        _join([self._acceptor, *handlers], f"the {self.model} echo server")


class SelectorEchoServer(_EchoServer):
    """Echo from one thread: non-blocking sockets, a `selectors` loop and an output buffer per connection."""

    model = "selectors"
    # Stop reading from a client while this many bytes of its echo wait to be sent (back-pressure).
    HIGH_WATER = 1 << 20

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._listener.setblocking(False)
        self._selector = selectors.DefaultSelector()
        self._wake_r, self._wake_w = socket.socketpair()  # close() writes here to end select()
        self._selector.register(self._listener, selectors.EVENT_READ, None)
        self._selector.register(self._wake_r, selectors.EVENT_READ, "wake")
        self._paused_until: float | None = None  # accepting is paused until then (see _accept)
        self._thread = threading.Thread(target=self._loop, name=f"echo-selectors-{self.address[1]}", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        try:
            while not self._closed:
                wait = None
                if self._paused_until is not None:  # accept() ran out of a resource: try again later
                    wait = self._paused_until - time.monotonic()
                    if wait <= 0:
                        self._paused_until, wait = None, None
                        self._selector.register(self._listener, selectors.EVENT_READ, None)
                for key, events in self._selector.select(wait):
                    if key.data == "wake":
                        return
                    if key.data is None:
                        self._accept()
                    else:
                        self._serve(key.fileobj, key.data, events)
        finally:
            for key in list(self._selector.get_map().values()):
                if key.data not in (None, "wake"):
                    self._drop(key.fileobj)
            self._selector.close()

    def _accept(self) -> None:
        # Accept everything queued: after a burst of connects one wake-up holds many.
        while True:
            try:
                conn, _ = self._listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as err:
                # EMFILE and the like: the listener stays readable, so stop watching it for a
                # back-off instead of spinning, and keep serving the connections already open.
                self._accept_failed(err)
                self._selector.unregister(self._listener)
                self._paused_until = time.monotonic() + ACCEPT_BACKOFF
                return
            conn.setblocking(False)
            _nodelay(conn)
            self._selector.register(conn, selectors.EVENT_READ, bytearray())
            self._opened()

    def _serve(self, conn: socket.socket, pending: bytearray, events: int) -> None:
        try:
            if events & selectors.EVENT_READ:
                data = conn.recv(READ_SIZE)
                if not data:
                    self._drop(conn)
                    return
                pending += data
            if pending:
                sent = conn.send(pending)
                del pending[:sent]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError as err:
            self._drop(conn, err)
            return
        # Ask to hear when the kernel can take more while an echo is pending; stop reading from a
        # client whose echoes pile up faster than it reads them (back-pressure).
        wanted = selectors.EVENT_WRITE if pending else 0
        if len(pending) < self.HIGH_WATER:
            wanted |= selectors.EVENT_READ
        if wanted != self._selector.get_key(conn).events:
            self._selector.modify(conn, wanted, pending)

    def _drop(self, conn: socket.socket, err: BaseException | None = None) -> None:
        self._selector.unregister(conn)
        conn.close()
        self._ended(err)

    def _stop(self) -> None:
        self._wake_w.send(b"x")
        _join([self._thread], f"the {self.model} echo server")
        for sock in (self._listener, self._wake_r, self._wake_w):
            sock.close()


_SHORTAGES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class _OneShortagePerWakeUp(socket.socket):
    """A listening socket whose `accept()`, after failing for want of a resource, next says "nothing queued".

    asyncio's server handles EMFILE itself: it stops watching the listener and tries again a second
    later. It then goes on calling `accept()` anyway, up to `backlog` times (1,024 here), and schedules
    one more retry for each failure (CPython gh-151615, fixed upstream in 2026; 3.11.7, 3.12.1 and
    3.13.0 all do it). Those retries re-arm the listener in turn, so they multiply: 7,000 to 12,000
    failed accepts in a 3 s shortage, and, once the server closes, one traceback for each retry still
    pending. Answering the call after a failure with EAGAIN ends that loop, as the upstream fix does.
    Where no call follows in the same loop (a Python with the fix, or a failure on the last turn),
    the first call after the retry gets that EAGAIN instead, and the listener is read one loop turn
    later.
    """

    _short = False  # the last accept() failed for want of a resource

    def accept(self) -> tuple[socket.socket, Any]:
        if self._short:
            self._short = False
            raise BlockingIOError(errno.EAGAIN, "accept() just ran out of a resource; wait for the retry")
        try:
            return super().accept()
        except OSError as err:
            self._short = err.errno in _SHORTAGES
            raise


class AsyncioEchoServer(_EchoServer):
    """Echo with `asyncio.start_server` and streams, on an event loop in one thread."""

    model = "asyncio"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._listener = _OneShortagePerWakeUp(fileno=self._listener.detach())
        self._ready = threading.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=f"echo-asyncio-{self.address[1]}", daemon=True)
        self._thread.start()
        if not self._ready.wait(STOP_TIMEOUT) or self._failure is not None:
            self.close()
            raise ConcurrencyError(f"the asyncio echo server did not start: {self._failure or 'timeout'}")

    def _run(self) -> None:
        try:
            with asyncio.Runner() as runner:  # asyncio.run(), with our handler for what the loop reports
                runner.get_loop().set_exception_handler(self._loop_error)
                runner.run(self._main())
        except BaseException as err:  # reported by __init__ or close()
            self._failure = err
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        handlers: set[asyncio.Task] = set()

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            # asyncio turns TCP_NODELAY on for every TCP connection it makes or accepts.
            handlers.add(asyncio.current_task())
            self._opened()
            err = None
            try:
                while data := await reader.read(READ_SIZE):
                    writer.write(data)
                    await writer.drain()  # past 64 KiB unsent, waits till at most 16 KiB are left
            except (OSError, asyncio.CancelledError) as exc:
                err = exc if isinstance(exc, OSError) and not self._closed else None
            finally:
                writer.close()
                handlers.discard(asyncio.current_task())
                self._ended(err)

        # start_server calls listen() again, with a backlog of 100 unless told otherwise: 500 clients
        # connecting at once would overflow it, and those dropped would wait 1 s to retransmit their SYN.
        server = await asyncio.start_server(handle, sock=self._listener, backlog=BACKLOG)
        self._ready.set()
        async with server:
            await self._stopping.wait()
            server.close()
            for task in list(handlers):
                task.cancel()
            await asyncio.gather(*handlers, return_exceptions=True)

    def _loop_error(self, loop: asyncio.AbstractEventLoop, context: dict) -> None:
        # asyncio's server handles EMFILE in accept() itself (it pauses accepting for a second and
        # tries again) and reports it here: record it, as the other two servers do.
        err = context.get("exception")
        if isinstance(err, OSError) and "accept" in context.get("message", "") and not self._closed:
            self._accept_failed(err)
        else:
            loop.default_exception_handler(context)

    def _stop(self) -> None:
        if self._loop is not None and self._stopping is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._stopping.set)
        _join([self._thread], f"the {self.model} echo server")
        self._listener.close()


MODELS: dict[str, type[_EchoServer]] = {
    "threads": ThreadedEchoServer,
    "selectors": SelectorEchoServer,
    "asyncio": AsyncioEchoServer,
}


def model_server(model: str, lab: Lab | None = None, host: str = "127.0.0.1", port: int = 0) -> _EchoServer:
    """Start the echo server of `model` ('threads', 'selectors' or 'asyncio'); use it in a `with` block."""
    if model not in MODELS:
        raise ValueError(f"unknown server model {model!r}: choose one of {', '.join(MODELS)}")
    return MODELS[model](lab=lab, host=host, port=port)


# ---------------------------------------------------------------------------
# File descriptors: every connection costs one on each side.


@dataclass(frozen=True)
class FdLimit:
    """The open-file limit (RLIMIT_NOFILE) before and after `raise_fd_limit`."""

    needed: int
    soft_before: int
    soft: int
    hard: int

    @property
    def enough(self) -> bool:
        return self.soft >= self.needed

    def __str__(self) -> str:
        change = (f"raised from {self.soft_before} to {self.soft}" if self.soft != self.soft_before
                  else f"{self.soft}, left as it was")
        return f"open files allowed (soft limit): {change}; hard limit {self.hard}; needed {self.needed}"


def raise_fd_limit(needed: int) -> FdLimit:
    """Raise this process's soft limit on open files to at least `needed` (never above the hard limit).

    Programs started afterwards (the load generators) inherit the new limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    new = soft
    if soft != resource.RLIM_INFINITY and soft < needed:
        new = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
    return FdLimit(needed, soft, new, hard)


def _need_fds(needed: int, what: str) -> FdLimit:
    """Raise the open-file limit to `needed`, or fail before anything starts if the hard limit is lower."""
    limit = raise_fd_limit(needed)
    if not limit.enough:
        raise ConcurrencyError(
            f"{what} needs about {needed} open files, but this process may "
            f"open only {limit.soft} (hard limit {limit.hard}): use fewer connections, or raise the hard "
            f"limit (ulimit -Hn) before starting Jupyter")
    return limit


# ---------------------------------------------------------------------------
# The load generator: a separate process, C clients on non-blocking sockets in one epoll loop.


def generator_main() -> None:
    """A load generator's main (a separate process started by `_Generators`, never by hand).

    One process serves one run after another, so a comparison of twelve runs starts its
    generators once: each line on stdin is a run's JSON settings, each reply a JSON line on
    stdout. End of input ends the process.
    """
    while line := sys.stdin.readline():
        _serve_run(json.loads(line))


def _serve_run(cfg: dict) -> None:
    """Connect the run's clients, say ready, then run the load on "go" (or hold idle connections until told)."""
    address, clients, messages, size = tuple(cfg["address"]), cfg["clients"], cfg["messages"], cfg["size"]
    tag = cfg["tag"]
    socks: list[socket.socket] = []
    try:
        for _ in range(clients):
            sock = socket.create_connection(address, timeout=5.0)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            socks.append(sock)
        print(json.dumps({"ready": len(socks)}), flush=True)
        if cfg.get("hold"):  # idle connections: keep them open until told to close
            sys.stdin.readline()
            print(json.dumps({"done": True}), flush=True)
            return
        if sys.stdin.readline().strip() != "go":
            return  # the parent gave up
        print(json.dumps(_generate(socks, messages, size, tag, cfg["deadline"])), flush=True)
    finally:
        # After the report, so that the server's work on these closes is not counted in the run.
        for sock in socks:
            sock.close()


def _message(tag: int, client: int, number: int, size: int) -> bytes:
    # Each message names its client and its number, so an echo sent to the wrong client or out
    # of order is counted as wrong.
    return f"{tag}.{client}.{number}.".encode().ljust(size, b"x")


class _Client:
    """One simulated client: which message it is on, the echo read so far, when the message left."""

    __slots__ = ("number", "sent", "message", "echo", "since")

    def __init__(self, number: int) -> None:
        self.number, self.sent, self.message, self.echo, self.since = number, 0, b"", bytearray(), 0.0


def _generate(socks: list[socket.socket], messages: int, size: int, tag: int, deadline: float) -> dict:
    """Every client sends `messages` messages, one at a time, each after the previous echo is whole."""
    sel = selectors.DefaultSelector()
    latencies: list[int] = []  # microseconds
    wrong = 0
    start, cpu_start = time.monotonic(), time.process_time()

    def send_next(sock: socket.socket, client: _Client) -> None:
        client.message = _message(tag, client.number, client.sent, size)
        client.echo = bytearray()
        client.since = time.perf_counter()
        # One small message in flight per connection, so the send buffer is empty: the kernel takes it whole.
        sock.sendall(client.message)

    for number, sock in enumerate(socks):
        sock.setblocking(False)
        client = _Client(number)
        sel.register(sock, selectors.EVENT_READ, client)
        send_next(sock, client)
    active, error = len(socks), ""
    while active and not error:
        if time.monotonic() - start > deadline:
            error = f"{active} clients still waiting for echoes after {deadline:g} s"
        for key, _ in sel.select(timeout=1.0):
            sock, client = key.fileobj, key.data
            chunk = sock.recv(READ_SIZE)
            if not chunk:
                error = "the server closed a connection before echoing everything"
                break
            client.echo += chunk
            if len(client.echo) < size:
                continue  # TCP is a byte stream: the rest of this echo is still on its way
            latencies.append(round((time.perf_counter() - client.since) * 1e6))
            wrong += client.echo != client.message
            client.sent += 1
            if client.sent < messages:
                send_next(sock, client)
            else:
                sel.unregister(sock)
                active -= 1
    end = time.monotonic()
    sel.close()
    return {"start": start, "end": end, "cpu": time.process_time() - cpu_start, "latencies_us": latencies,
            "wrong": wrong, "error": error}


class _Generators:
    """Generator processes (in the lab, or on the host): started once, then given one run after another."""

    def __init__(self, lab: Lab | None, count: int, timeout: float) -> None:
        # Starting a Python process that imports this module takes about 0.2 s: a comparison
        # starts its generators once, not once per run.
        self.procs: list[subprocess.Popen] = []
        self.active: list[subprocess.Popen] = []  # those taking part in the current run
        self.timeout = timeout
        code = "from netlab.lessons.concurrency.experiments import generator_main; generator_main()"
        env = dict(os.environ, PYTHONPATH=package_parent() + os.pathsep + os.environ.get("PYTHONPATH", ""))
        try:
            for _ in range(count):
                argv = [sys.executable, "-c", code]
                kwargs = dict(stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                self.procs.append(lab.popen(argv, **kwargs) if lab is not None else subprocess.Popen(argv, env=env, **kwargs))
        except BaseException:
            self.close()
            raise

    def connect(self, settings: list[dict]) -> None:
        """Give the first len(settings) generators a run's settings; wait until each has connected its clients."""
        if len(settings) > len(self.procs):
            raise ValueError(f"a run for {len(settings)} generator processes, but {len(self.procs)} were started")
        self.active = self.procs[:len(settings)]
        for proc, cfg in zip(self.active, settings):
            proc.stdin.write(json.dumps(cfg) + "\n")
            proc.stdin.flush()
        for proc in self.active:
            self._expect(proc, "ready")

    def _expect(self, proc: subprocess.Popen, key: str) -> dict:
        # A line with a deadline: a generator that never answers must not hang the notebook.
        line = read_line(proc.stdout, self.timeout).decode(errors="replace")
        if not line:
            try:
                proc.wait(0.5)  # its output ended: it is exiting, and its stderr says why (below)
            except subprocess.TimeoutExpired:
                proc.kill()
                raise ConcurrencyError(f"a load generator did not report {key!r} within {self.timeout:g} s") from None
        try:
            reply = json.loads(line)
        except ValueError:
            proc.kill()
            err = proc.communicate(timeout=STOP_TIMEOUT)[1].strip().splitlines()
            raise ConcurrencyError(f"a load generator failed: {err[-1] if err else line.strip() or 'no output'}") from None
        if key not in reply:
            raise ConcurrencyError(f"a load generator said {line.strip()!r}, expected {key!r}")
        return reply

    def release(self, word: str = "go", key: str = "latencies_us") -> list[dict]:
        """Tell every generator to start (all within microseconds), then collect what each reports."""
        for proc in self.active:
            proc.stdin.write(word + "\n")
            proc.stdin.flush()
        return [self._expect(proc, key) for proc in self.active]

    def close(self) -> None:
        for proc in self.procs:
            try:
                if proc.stdin:
                    proc.stdin.close()  # a generator still waiting for "go" reads EOF and leaves
            except OSError:
                pass
            try:
                proc.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=STOP_TIMEOUT)
            for stream in (proc.stdout, proc.stderr):
                if stream:
                    stream.close()

    def __enter__(self) -> _Generators:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ---------------------------------------------------------------------------
# A load run and a comparison of the three models.


@dataclass
class LoadPoint:
    """One load run: `clients` clients each sending `messages` echoes of `size` bytes to one server model."""

    model: str
    clients: int
    messages: int
    size: int
    generators: int
    requests: int  # echoes that came back (should be clients × messages)
    wrong: int  # echoes whose bytes were not the message sent (in any of compare's rounds of this point)
    seconds: float  # from the generators' start to the last echo
    latencies_us: list[int] = field(repr=False)
    server_threads: int  # threads the server added to its process while all clients were connected
    generator_busy: float  # the busiest generator's CPU time / the run's wall time (1.0: never waited)
    server_busy: float  # the server process's CPU time / wall time (can exceed 1.0 with several cores)
    server_cpu: float  # seconds of CPU time the server process used during the run
    generator_cpu: float  # seconds of CPU time all generator processes used together
    server_switches: int  # context switches of all the server process's threads during the run
    gc_pause: float = 0.0  # the longest pause of the garbage collector in the server's process during the run (s)
    # Echoes per second of every run of this point when `compare` repeated it (this run's included):
    # their spread shows how much other work on the machine disturbed the runs.
    rounds: list[float] = field(default_factory=list, repr=False)

    @property
    def spread(self) -> float:
        """How far the slowest round fell below the fastest, as a fraction (0.0: all rounds alike)."""
        return 1 - min(self.rounds) / max(self.rounds) if self.rounds else 0.0

    @property
    def correct(self) -> bool:
        """Every client got every echo back, byte for byte."""
        return self.wrong == 0 and self.requests == self.clients * self.messages

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.seconds

    def percentile_ms(self, p: float) -> float:
        """The p-th percentile (0–100) of the echo round-trip times, in milliseconds."""
        return percentile(self.latencies_us, p) / 1000

    @property
    def cpu_us_per_request(self) -> tuple[float, float]:
        """CPU time per echo in microseconds: (server, load generators). Each includes its kernel time."""
        n = max(1, self.requests)
        return self.server_cpu / n * 1e6, self.generator_cpu / n * 1e6

    @property
    def switches_per_request(self) -> float:
        """How often the server process's threads (a notebook's own included) were switched out per echo (getrusage)."""
        return self.server_switches / max(1, self.requests)

    @property
    def p50_ms(self) -> float:
        return self.percentile_ms(50)

    @property
    def p99_ms(self) -> float:
        return self.percentile_ms(99)


def load(server: _EchoServer, clients: int, messages: int = 50, *, size: int = 32, generators: int = 2,
         lab: Lab | None = None, timeout: float = 60.0) -> LoadPoint:
    """Run one load against a running `server`: `clients` clients, each sending `messages` echoes of `size` bytes.

    The clients are split over `generators` processes, in the server's lab (or on the host when
    the server listens there), all connected before any sends; the run is timed from the moment
    they are released to the last echo. `lab`, if given, must be the server's. `timeout` (seconds)
    bounds the whole run.
    """
    if clients < 1 or messages < 1 or not 16 <= size <= MAX_ECHO or generators < 1:
        raise ValueError(f"a load needs clients ≥ 1, messages ≥ 1, 16 ≤ size ≤ {MAX_ECHO} and "
                               f"generators ≥ 1 (got {clients}, {messages}, {size}, {generators})")
    if lab is None:
        lab = server.lab  # the clients must reach the server's 127.0.0.1, not another namespace's
    elif lab is not server.lab:
        where = "on the host" if server.lab is None else "in another lab"
        raise ConcurrencyError(f"the {server.model} server listens {where}, so its load cannot run in the lab "
                               f"given: leave out lab= to load it where it listens")
    _need_fds(2 * clients + 64, f"a load of {clients} clients")
    with _Generators(lab, min(generators, clients), timeout=timeout) as gens, _quiet_collector():
        return _load(server, clients, messages, size, gens)


def _load(server: _EchoServer, clients: int, messages: int, size: int, gens: _Generators) -> LoadPoint:
    """`load` with generator processes already started (in the server's lab): they may serve many runs."""
    generators = min(len(gens.procs), clients)
    shares = [clients // generators + (i < clients % generators) for i in range(generators)]
    settings = [{"address": list(server.address), "clients": n, "messages": messages, "size": size, "tag": i,
                 "deadline": gens.timeout} for i, n in enumerate(shares)]
    gens.connect(settings)
    server.wait_for_connections(clients)
    threads = server.threads
    # The server runs in the caller's process, among the caller's objects: a notebook's kernel, with
    # scapy and matplotlib loaded, holds some 200,000 that Python's cyclic garbage collector tracks,
    # and one full pass over them holds the GIL for about 0.1 s (97 to 120 ms measured here, about
    # once in 36 runs of a comparison). Landing in a run, such a pass freezes the server whatever its
    # model, and every echo in flight waits for it. `_quiet_collector` (around every load) moves those
    # objects out of the collector's sight first, so that a pass in a run sees only the objects made
    # since; `gc_pause` records the longest pass during the run.
    with _collector_pauses() as pauses:
        cpu0, wall0, switches0 = time.process_time(), time.monotonic(), _switches()
        reports = gens.release()
        server_cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        switches = _switches() - switches0
    server.wait_for_connections(0)  # every connection closed again before the next run
    errors = [r["error"] for r in reports if r["error"]]
    if errors:
        raise ConcurrencyError(f"the {server.model} server under {clients} clients: {errors[0]}")
    seconds = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    latencies = [lat for r in reports for lat in r["latencies_us"]]
    return LoadPoint(
        model=server.model, clients=clients, messages=messages, size=size, generators=generators,
        requests=len(latencies), wrong=sum(r["wrong"] for r in reports), seconds=seconds, latencies_us=latencies,
        server_threads=threads, generator_busy=max(r["cpu"] / (r["end"] - r["start"]) for r in reports),
        server_busy=server_cpu / wall, server_switches=switches, server_cpu=server_cpu,
        generator_cpu=sum(r["cpu"] for r in reports), gc_pause=max(pauses, default=0.0),
    )


@contextlib.contextmanager
def _quiet_collector():
    """Collect once, then hide every object alive now from the garbage collector's passes, until the end."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


@contextlib.contextmanager
def _collector_pauses():
    """Yield a list that fills with the length (seconds) of every garbage collection in this process meanwhile."""
    pauses: list[float] = []
    began = [0.0]

    def note(phase: str, info: dict) -> None:
        if phase == "start":
            began[0] = time.perf_counter()
        else:
            pauses.append(time.perf_counter() - began[0])

    gc.callbacks.append(note)
    try:
        yield pauses
    finally:
        gc.callbacks.remove(note)


def _switches() -> int:
    # RUSAGE_SELF sums over every thread of the process, those that have ended included.
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_nvcsw + usage.ru_nivcsw


@dataclass
class LoadComparison:
    """Load runs of several server models at several client counts, and where they ran."""

    points: list[LoadPoint]
    where: str  # "lab" or "host"
    why: str  # one sentence: where the servers and clients ran

    def point(self, model: str, clients: int) -> LoadPoint:
        """The run of `model` with `clients` clients."""
        for p in self.points:
            if p.model == model and p.clients == clients:
                return p
        raise ValueError(f"no run of {model!r} with {clients} clients in this comparison")

    @property
    def models(self) -> list[str]:
        return list(dict.fromkeys(p.model for p in self.points))

    @property
    def clients(self) -> list[int]:
        return sorted({p.clients for p in self.points})

    @property
    def correct(self) -> bool:
        """Every run of every model answered every request with the right bytes."""
        return all(p.correct for p in self.points)

    def table(self) -> str:
        """One row per run: echoes per second, p50/p99 round-trip times, the server's threads, its context
        switches per echo, and the CPU time per echo (µs) of the server and of the load generators."""
        lines = [f"{'model':<10}{'clients':>8}{'requests':>10}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
                 f"{'threads':>9}{'switches':>10}{'cpu µs: server':>16}{'gen':>6}{'spread':>8}"]
        for p in self.points:
            lines.append(f"{p.model:<10}{p.clients:>8}{p.requests:>10}{p.requests_per_second:>9.0f}"
                         f"{p.p50_ms:>9.2f}{p.p99_ms:>9.2f}{p.server_threads:>9}{p.switches_per_request:>10.2f}"
                         f"{p.cpu_us_per_request[0]:>16.0f}{p.cpu_us_per_request[1]:>6.0f}{p.spread:>8.0%}")
        return "\n".join(lines)

    def ratios(self, clients: int) -> dict[str, float]:
        """Each model's requests per second at `clients`, relative to the fastest model there."""
        rates = {m: self.point(m, clients).requests_per_second for m in self.models}
        best = max(rates.values())
        return {m: rate / best for m, rate in rates.items()}

    def plot(self) -> Figure:
        """Requests per second, and p50/p99 round-trip times, against the number of clients."""
        from netlab.core.draw import NotebookFigure

        colours = {"threads": "#E69F00", "selectors": "#0072B2", "asyncio": "#009E73"}  # Okabe–Ito
        fig = NotebookFigure(figsize=(8.6, 3.6))
        rate_ax, lat_ax = fig.subplots(1, 2)
        for model in self.models:
            pts = [self.point(model, c) for c in self.clients]
            colour = colours.get(model, "#555555")
            rate_ax.plot(self.clients, [p.requests_per_second for p in pts], "o-", color=colour, label=model)
            lat_ax.plot(self.clients, [p.p50_ms for p in pts], "o-", color=colour, label=f"{model} p50")
            lat_ax.plot(self.clients, [p.p99_ms for p in pts], "s--", color=colour, label=f"{model} p99")
        for ax in (rate_ax, lat_ax):
            ax.set_xscale("log")
            ax.set_xticks(self.clients, labels=[str(c) for c in self.clients])
            ax.minorticks_off()
            ax.set_xlabel("concurrent clients C")
            ax.grid(True, alpha=0.3)
        rate_ax.set_ylabel("echoes per second")
        rate_ax.set_ylim(bottom=0)
        rate_ax.legend(fontsize=9)
        lat_ax.set_yscale("log")
        lat_ax.set_ylabel("round-trip time (ms)")
        lat_ax.legend(fontsize=8, ncol=1)
        where = "live in the lab" if self.where == "lab" else "on the host's loopback"
        fig.suptitle(f"One echo protocol, {len(self.models)} servers ({where})", fontweight="bold")
        fig.tight_layout()
        return fig

    def __str__(self) -> str:
        return self.table()


class _Progress:
    """A text progress bar: redrawn in place in a notebook (one output, updated) and on a terminal (\\r)."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._handle = None
        if "ipykernel" in sys.modules:
            from IPython.display import Pretty, display

            self._pretty = Pretty
            self._handle = display(Pretty(self._bar(0, "")), display_id=True)

    def _bar(self, done: int, label: str) -> str:
        width = 30
        filled = round(width * done / self.total)
        return f"[{'#' * filled}{'.' * (width - filled)}] {done}/{self.total} {label}"

    def show(self, done: int, label: str) -> None:
        if self._handle is not None:
            self._handle.update(self._pretty(self._bar(done, label)))
        else:
            end = "\n" if done == self.total else ""
            print(f"\r{self._bar(done, label):<70}", end=end, flush=True)


def compare(models: Iterable[str] = tuple(MODELS), clients: Iterable[int] = (1, 10, 100, 500), *,
            messages: int = 50, size: int = 32, generators: int = 2, rounds: int = 3, progress: bool = True,
            timeout: float = 60.0) -> LoadComparison:
    """Run the same load against each server model at each client count, in a fresh lab.

    Every point is measured `rounds` times, in rounds that each go through every model and client
    count, and keeps its fastest run. Other work on the machine only ever slows a run down (a
    process of someone else's taking the cores for a tenth of a second stalls every echo then in
    flight), and such a burst lasts about as long as one round: in a single pass it would land on
    whichever model was running then and pass for that model's own slowness. Each point's `rounds`
    keeps every run's rate, so the spread between them shows how disturbed the runs were.

    Where the lab is refused, servers and generators run on this machine's 127.0.0.1 instead
    (nothing is captured, so nothing needs recording). Raises the soft open-file limit if
    `max(clients)` connections need it. `progress` prints a text progress bar.
    """
    models, clients = list(models), sorted(set(clients))
    for model in models:
        if model not in MODELS:
            raise ValueError(f"unknown server model {model!r}: choose one of {', '.join(MODELS)}")
    if not clients or clients[0] < 1:
        raise ValueError(f"client counts must be 1 or more, got {clients}")
    if rounds < 1:
        raise ValueError(f"rounds must be 1 or more, got {rounds}")
    _need_fds(2 * max(clients) + 64, f"a load of {max(clients)} clients")
    with lab_or_host() as (lab, where, why):
        runs: dict[tuple[str, int], list[LoadPoint]] = {(m, c): [] for m in models for c in clients}
        total, done = rounds * len(runs), 0
        bar = _Progress(total) if progress else None
        with _Generators(lab, min(generators, max(clients)), timeout=timeout) as gens, _quiet_collector():
            for _ in range(rounds):
                for model in models:
                    with model_server(model, lab=lab) as server:
                        for c in clients:
                            if bar:
                                bar.show(done, f"{model}, {c} clients")
                            runs[model, c].append(_load(server, c, messages, size, gens))
                            done += 1
        if bar:
            bar.show(done, "done")
    points = []
    for tries in runs.values():
        best = max(tries, key=lambda p: p.requests_per_second)
        best.rounds = [p.requests_per_second for p in tries]
        best.wrong = sum(p.wrong for p in tries)  # a wrong echo in any round makes the point wrong
        points.append(best)
    return LoadComparison(points, where, why)


# ---------------------------------------------------------------------------
# Idle connections: what holding them costs each model.


@dataclass(frozen=True)
class IdleCost:
    """What `connections` idle connections added to the server's process."""

    model: str
    connections: int
    threads: int  # threads added
    resident_bytes: int  # resident memory (RSS) added
    virtual_bytes: int  # address space reserved (thread stacks count fully here)

    @property
    def resident_per_connection(self) -> float:
        return self.resident_bytes / self.connections

    @property
    def virtual_per_connection(self) -> float:
        return self.virtual_bytes / self.connections

    def __str__(self) -> str:
        # A difference can come out negative: memory that earlier work had freed is handed back.
        return (f"{self.model:<10} {self.connections} idle connections: {self.threads:+d} threads, "
                f"{self.resident_per_connection / 1024:+.1f} KiB resident and "
                f"{self.virtual_per_connection / 1024:+.0f} KiB of address space per connection")


def _memory() -> tuple[int, int]:
    """This process's (resident, virtual) memory in bytes, from /proc/self/statm."""
    with open("/proc/self/statm") as f:
        size, resident = (int(v) for v in f.read().split()[:2])
    page = os.sysconf("SC_PAGE_SIZE")
    return resident * page, size * page


def idle_cost(models: Iterable[str] = ("threads", "asyncio"), connections: int = 500,
              timeout: float = 30.0) -> list[IdleCost]:
    """Connect `connections` clients that send nothing to each model; measure the threads and memory added.

    The clients live in another process, so only the server's side is counted. Memory is read
    from /proc (Linux); elsewhere it is reported as 0.
    """
    if connections < 1:
        raise ValueError(f"idle_cost needs connections ≥ 1, got {connections}")
    models = list(models)
    for model in models:
        if model not in MODELS:
            raise ValueError(f"unknown server model {model!r}: choose one of {', '.join(MODELS)}")
    _need_fds(2 * connections + 64, f"holding {connections} idle connections")
    costs = []
    with lab_or_host() as (lab, _where, _why), _Generators(lab, 1, timeout=timeout) as gens:
        for model in models:
            threads0 = threading.active_count()
            mem0 = _memory() if os.path.exists("/proc/self/statm") else (0, 0)
            with model_server(model, lab=lab) as server:
                gens.connect([{"address": list(server.address), "clients": connections, "messages": 0, "size": 32,
                               "tag": 0, "deadline": timeout, "hold": True}])
                server.wait_for_connections(connections)
                threads = threading.active_count() - threads0
                mem = _memory() if mem0 != (0, 0) else (0, 0)
                gens.release("close", key="done")
                server.wait_for_connections(0)
            costs.append(IdleCost(model, connections, threads, mem[0] - mem0[0], mem[1] - mem0[1]))
    return costs


# ---------------------------------------------------------------------------
# Blocking work inside a handler (notebook 07's exercise 2): what a slow call costs each model.

BLOCKING_MESSAGE = 32  # bytes per echo in blocking_work


def _blocking_threads(listen: socket.socket, work: float, stop: threading.Event) -> None:
    """A thread per connection; each echo first sleeps `work` seconds, which blocks only its own thread."""
    def handle(conn: socket.socket) -> None:
        with conn, contextlib.suppress(OSError):
            while data := conn.recv(READ_SIZE):
                time.sleep(work)
                conn.sendall(data)

    listen.settimeout(0.1)
    while not stop.is_set():
        try:
            conn, _ = listen.accept()
        except (TimeoutError, OSError):
            continue
        threading.Thread(target=handle, args=(conn,), daemon=True).start()


def _blocking_selectors(listen: socket.socket, work: float, stop: threading.Event) -> None:
    """One selectors loop; each echo first sleeps `work` seconds, which blocks the loop and so every connection."""
    with selectors.DefaultSelector() as sel:
        listen.setblocking(False)
        sel.register(listen, selectors.EVENT_READ)
        while not stop.is_set():
            for key, _ in sel.select(0.1):
                if key.fileobj is listen:
                    with contextlib.suppress(OSError):  # BlockingIOError, or the listener shut down: stop is set
                        conn, _ = listen.accept()
                        sel.register(conn, selectors.EVENT_READ)
                    continue
                conn = key.fileobj
                try:
                    data = conn.recv(READ_SIZE)
                except OSError:
                    data = b""
                if not data:
                    sel.unregister(conn)
                    conn.close()
                    continue
                time.sleep(work)
                conn.sendall(data)  # an echo this small always fits the empty send buffer
        for key in list(sel.get_map().values()):
            if key.fileobj is not listen:
                key.fileobj.close()


def blocking_work(clients: int = 10, messages: int = 10, work: float = 0.005, timeout: float = 10.0) -> dict[str, float]:
    """Echoes per second of "threads" and "selectors" when each echo costs the server `work` seconds of blocking
    (a sleep, as a slow call would).

    For each model, `clients` clients (threads of this process) each send `messages` messages of
    32 bytes, one at a time, in one fresh lab (or on this host's loopback); timed from their start
    to the last echo, each model's run bounded by `timeout` seconds.
    """
    with lab_or_host() as (lab, _where, _why):
        return {model: _blocking_run(lab, serve, clients, messages, work, timeout)
                for model, serve in (("threads", _blocking_threads), ("selectors", _blocking_selectors))}


def _blocking_run(lab: Lab | None, serve: Any, clients: int, messages: int, work: float, timeout: float) -> float:
    with listener(lab, backlog=BACKLOG) as listen:
        stop = threading.Event()
        server = threading.Thread(target=serve, args=(listen, work, stop), daemon=True)
        server.start()
        address = listen.getsockname()
        socks = [lab.create_connection(address, timeout=timeout) if lab else socket.create_connection(address, timeout)
                 for _ in range(clients)]
        failures: list[BaseException] = []

        def client(sock: socket.socket) -> None:
            try:
                for _ in range(messages):
                    sock.sendall(b"x" * BLOCKING_MESSAGE)
                    got = 0
                    while got < BLOCKING_MESSAGE:
                        piece = sock.recv(BLOCKING_MESSAGE - got)
                        if not piece:
                            raise ConcurrencyError("the server closed before it echoed")
                        got += len(piece)
            except BaseException as err:
                failures.append(err)

        try:
            workers = [threading.Thread(target=client, args=(s,), daemon=True) for s in socks]
            start = time.monotonic()
            for w in workers:
                w.start()
            _join(workers, "the blocking-work clients", timeout)
            seconds = time.monotonic() - start
        finally:
            for s in socks:
                s.close()
            stop.set()
            with contextlib.suppress(OSError):
                listen.shutdown(socket.SHUT_RDWR)  # wakes the server's accept() or select() at once
            server.join(STOP_TIMEOUT)
        if failures:
            raise ConcurrencyError(f"a blocking-work client failed: {failures[0]!r}")
    return clients * messages / seconds
