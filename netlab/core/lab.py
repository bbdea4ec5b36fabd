"""The private lab network: a user + network namespace that netlab creates and cleans up.

Theory of operation
-------------------
`Lab()` starts one helper process with `unshare --user --map-root-user --net`. Inside, the
helper is root of a brand-new network stack: its own `lo`, its own ports, no route to any real
network. It works the same for root and for an ordinary user, because an unprivileged user may
create a user namespace and is then root *of that namespace only*.

The notebook's own Python stays where it is (a Jupyter kernel is multi-threaded and may not
enter a user namespace). Instead the helper creates sockets inside the lab and hands the open
file descriptors back over a Unix socket (SCM_RIGHTS). A socket belongs to the network
namespace it was created in, whoever holds it, so the student's code in a notebook cell talks
over the lab's network with ordinary `socket` objects. Packet capture needs privileges only
the helper has, so the helper sniffs and sends the captured frames back. The helper's program
is `netlab.core.inlab.helper`; the two sides speak `netlab.core.inlab.protocol`.

A machine may refuse all this (user namespaces turned off, a container's seccomp profile,
Ubuntu's AppArmor restriction). netlab recognises a refusal by what happened, never by the
words of an error message: the helper's first act is one byte saying it is inside; unshare
ending without that byte is a refusal (`LabUnavailable`, one sentence naming the cause where
it can be told), and so is a first `nsenter` into the lab that fails (`Lab.check_join`). A
namespace *inside* the lab (the bottleneck's receiver, a topology's router and server, a
resolver's mount namespace) may be refused where the lab is not: the program that makes it
reports the errno of its own system call, and `inner_refusal_sentence` says so in one sentence.

Rules for this file:
1. Everything that crosses into the namespace goes through the helper's requests, or through
   `Lab.popen` for a whole program (iperf3, load generators, the scripted peer): nothing else
   in netlab enters the lab.
2. Every wait has a timeout, and `Lab.close()` always leaves no process, thread or socket
   behind, even when the helper has died.
"""

from __future__ import annotations

import errno
import os
import re
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from netlab.core.errors import LabError, LabUnavailable
from netlab.core.inlab.protocol import recv_msg as _recv_msg
from netlab.core.inlab.protocol import send_msg as _send_msg
from netlab.core.programs import command, program
from netlab.core.sockets import recv_exactly

__all__ = ["Lab", "LabError", "LabUnavailable", "SocketState", "lab_available", "refusal_sentence", "join_refusal_sentence",
           "inner_refusal_sentence", "package_parent", "last_line", "read_line"]

# How long the helper may take to start (python + scapy import), in seconds.
START_TIMEOUT = 30.0
# How long any single request to the helper may take, in seconds.
REQUEST_TIMEOUT = 15.0


@dataclass(frozen=True)
class SocketState:
    """One TCP socket as the lab's kernel reports it (`ss -tan`)."""

    state: str  # e.g. "ESTAB", "TIME-WAIT", "LISTEN"
    local: tuple[str, int]
    peer: tuple[str, int] | None

    def __str__(self) -> str:
        peer = f"{self.peer[0]}:{self.peer[1]}" if self.peer else "*"
        return f"{self.state:<11} {self.local[0]}:{self.local[1]} ⇄ {peer}"


# ---------------------------------------------------------------------------
# The notebook side.


def _unshare_command() -> list[str]:
    return [program("unshare", "to create a private lab network"), "--user", "--map-root-user", "--net"]


# The helper's first act inside the namespace is one byte, INSIDE, on its channel: proof that the
# namespace was made. unshare exiting before that byte came is a refusal, whatever errno it
# met and in whatever language it said so.
INSIDE = b"+"
_HELPER = (f"import os, sys; os.write(int(sys.argv[1]), {INSIDE!r}); "
           "from netlab.core.inlab.helper import serve_helper; serve_helper()")
# unshare's exit status when it could not run the program it was given (util-linux: 126, 127).
_EXEC_FAILED = (126, 127)

# Run in a fresh (single-threaded) Python where the lab is refused: the step that failed and its
# errno, which name the cause in any locale ("unshare 28", "uid_map 1", or "ok").
_PROBE = """
import ctypes, os
uid = os.getuid()
libc = ctypes.CDLL(None, use_errno=True)
if libc.unshare(0x10000000 | 0x40000000) != 0:  # CLONE_NEWUSER | CLONE_NEWNET
    print("unshare", ctypes.get_errno())
    raise SystemExit
try:
    with open("/proc/self/setgroups", "w") as f:
        f.write("deny")
    with open("/proc/self/uid_map", "w") as f:
        f.write(f"0 {uid} 1")
except OSError as err:
    print("uid_map", err.errno)
else:
    print("ok")
"""

# Where an administrator finds what to change (README section for JupyterHub and containers).
ADMIN_HINT = "see README, 'Running a class on JupyterHub'"


def _read(path: str) -> str:
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return ""


def _under_seccomp() -> bool:
    """True when this process runs under a seccomp filter (a container's security profile)."""
    return re.search(r"^Seccomp:\s*2\s*$", _read("/proc/self/status"), re.MULTILINE) is not None


def _apparmor_restricts() -> bool:
    """True on Ubuntu's AppArmor restriction of unprivileged user namespaces (23.10 and later)."""
    return _read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns").strip() == "1"


def _probe_unshare() -> tuple[str, int] | None:
    """The step and errno at which this system refuses a user + network namespace (None if it did not, or unknown)."""
    try:
        done = subprocess.run([sys.executable, "-I", "-c", _PROBE], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    step, _, number = done.stdout.strip().partition(" ")
    return (step, int(number)) if number.isdigit() else None


def refusal_sentence(unshare_said: str) -> str:
    """One sentence on why this system refused the lab's namespace, naming the cause where it can be told.

    `unshare_said` is unshare's last line of stderr (in the user's language), used where no
    better cause is known.
    """
    probe = _probe_unshare()
    code = probe[1] if probe else None
    hint = ""
    if code == errno.ENOSPC:
        limit = _read("/proc/sys/user/max_user_namespaces").strip()
        cause = ("user namespaces are turned off: user.max_user_namespaces is 0" if limit == "0"
                 else f"the limit on user namespaces, user.max_user_namespaces = {limit or '?'}, is reached")
    elif _under_seccomp():
        how = f", {probe[0]}() fails with {errno.errorcode.get(code, code)}" if probe and code else ""
        cause = f"this process runs under a seccomp filter, a container's security profile, that forbids it{how}"
        hint = ADMIN_HINT
    elif _apparmor_restricts():
        cause, hint = "Ubuntu's AppArmor forbids it: kernel.apparmor_restrict_unprivileged_userns is 1", ADMIN_HINT
    elif probe and code:
        cause = f"{probe[0]}: {os.strerror(code)}"
    else:
        cause = unshare_said or "unshare failed"
    return ("This system refuses to create a private network namespace "
            f"({cause}), so netlab shows recorded captures instead" + (f"; {hint}." if hint else "."))


def join_refusal_sentence(nsenter_said: str) -> str:
    """One sentence on why a program may not join the lab (setns refused), naming the cause where it can be told."""
    if _under_seccomp():
        cause, hint = "a seccomp filter, a container's security profile, forbids setns()", ADMIN_HINT
    elif _apparmor_restricts():
        cause, hint = "Ubuntu's AppArmor forbids it: kernel.apparmor_restrict_unprivileged_userns is 1", ADMIN_HINT
    else:
        cause, hint = nsenter_said or "nsenter failed", ""
    return ("This system lets netlab create a private network but refuses programs joining it "
            f"({cause}), so what needs them (the scripted peer, iperf3, load generators) shows a recording "
            "or runs on this machine instead" + (f"; {hint}." if hint else "."))


def inner_refusal_sentence(call: str, code: int, what: str) -> str:
    """One sentence on why the lab may not make `what`, a namespace inside it, where `call` (such as
    "unshare(CLONE_NEWNET)") failed with errno `code`: told by what happened, never by a message's words."""
    name = errno.errorcode.get(code, str(code))
    if code == errno.EROFS:
        cause, hint = f"{call} fails with EROFS: /proc/sys is mounted read-only, as container engines do by default", ADMIN_HINT
    elif _under_seccomp():
        cause, hint = f"a seccomp filter, a container's security profile, forbids {call}: {name}", ADMIN_HINT
    elif _apparmor_restricts():
        cause, hint = "Ubuntu's AppArmor forbids it: kernel.apparmor_restrict_unprivileged_userns is 1", ADMIN_HINT
    else:
        cause, hint = f"{call} fails with {name}, {os.strerror(code)}", ""
    return (f"This system lets netlab create a private network but refuses {what} inside it ({cause}), "
            "so netlab shows recorded captures instead" + (f"; {hint}." if hint else "."))


class Lab:
    """A private network namespace with its own loopback, for one experiment or many.

    Use it as a context manager. Sockets from `lab.socket()` live in the lab; `lab.capture()`
    records every packet on the lab's loopback.
    """

    def __init__(self, timeout: float = START_TIMEOUT) -> None:
        if os.environ.get("NETLAB_RECORDED"):
            raise LabUnavailable(
                "NETLAB_RECORDED is set, so netlab shows recorded captures instead of live ones."
            )
        unshare = _unshare_command()  # before any socket exists: raising here leaves none open
        self._lock = threading.Lock()
        self._closed = False
        self._join_refused: str | None = None  # None until a program has joined the lab (see check_join)
        self._joined = False
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        self._chan = ours
        argv = [*unshare, sys.executable, "-c", _HELPER, str(theirs.fileno())]
        env = dict(os.environ, PYTHONPATH=package_parent() + os.pathsep + os.environ.get("PYTHONPATH", ""))
        try:
            self._proc = subprocess.Popen(
                argv, pass_fds=[theirs.fileno()], stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env,
            )
        except PermissionError as err:
            ours.close()
            raise LabUnavailable(
                f"This system does not let you run {unshare[0]} ({err.strerror}), so netlab shows "
                "recorded captures instead."
            ) from None
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        try:
            hello = self._await_hello(timeout)
        except KeyboardInterrupt:  # stopped while the lab starts: leave no helper, pipe or socket behind
            self._proc.kill()
            self._reap()
            raise
        if hello[0] != "ready":
            self._reap()
            raise LabError(f"the lab process did not start: {hello[1]}")
        self.pid: int = hello[1]["pid"]
        self.netns: int = hello[1]["netns"]
        self._children: list[subprocess.Popen] = []
        self._chan.settimeout(REQUEST_TIMEOUT)

    def _await_hello(self, timeout: float) -> tuple[Any, ...]:
        """Wait (up to `timeout` seconds) for the helper's INSIDE byte and its hello; tell a refusal from a failure.

        No INSIDE byte and unshare gone: the namespace could not be made, a refusal (LabUnavailable)
        whatever the errno or the language of unshare's message. Anything else that goes
        wrong is a LabError.
        """
        deadline = time.monotonic() + timeout
        inside = False
        try:
            self._chan.settimeout(timeout)
            inside = recv_exactly(self._chan, len(INSIDE)) == INSIDE
            self._chan.settimeout(max(deadline - time.monotonic(), 0.001))
            hello, _ = _recv_msg(self._chan)
        except TimeoutError:
            # Silent for `timeout` seconds: waiting longer for its exit would only add to the wait.
            self._proc.kill()
            detail = last_line(self._reap())
            raise LabError(f"the lab process did not start within {timeout:g} s" + (f": {detail}" if detail else "")) from None
        except (EOFError, OSError) as err:
            stderr = self._reap()
            if not inside and self._proc.returncode not in (0, *_EXEC_FAILED):
                raise LabUnavailable(refusal_sentence(last_line(stderr))) from None
            raise LabError(f"the lab process did not start: {last_line(stderr) or err}") from None
        return hello

    # -- requests -----------------------------------------------------------

    def request(self, op: str, *args: Any, timeout: float = REQUEST_TIMEOUT) -> tuple[Any, list[int]]:
        """Ask the helper in the lab to do `op` (see `serve_helper`); return its answer and any descriptors."""
        if self._closed:
            raise LabError("this lab is closed; open a new one with netlab.Lab()")
        with self._lock:
            self._chan.settimeout(timeout)
            try:
                _send_msg(self._chan, (op, args))
                reply, fds = _recv_msg(self._chan)
            except TimeoutError:
                # A helper that does not answer cannot read "quit" either: stop it at once.
                self._proc.kill()
                self._reap()
                raise LabError(f"the lab did not answer {op!r} within {timeout:g} s; it was stopped") from None
            except (EOFError, OSError) as err:
                stderr = self._reap()
                code = self._proc.returncode
                how = f"was killed (signal {-code})" if code is not None and code < 0 else "ended"
                raise LabError(f"the lab process {how} during {op!r}: {last_line(stderr) or err}") from None
            except BaseException:
                # Interrupted half-way (Jupyter's stop button raises KeyboardInterrupt here): the
                # reply may still arrive and would be read as the answer to the next request.
                # A lab out of step is no use, so stop it; the next request says it is closed.
                self._proc.kill()
                self._reap()
                raise
        if reply[0] == "error":
            for fd in fds:
                os.close(fd)
            raise reply[1]
        return reply[1], fds

    def socket(self, family: int = socket.AF_INET, type: int = socket.SOCK_STREAM, proto: int = 0) -> socket.socket:
        """Return a new socket that lives in the lab's network (use it like any socket)."""
        _, fds = self.request("socket", family, type, proto)
        return socket.socket(fileno=fds[0])

    def create_connection(self, address: tuple[str, int], timeout: float = 5.0) -> socket.socket:
        """Connect a TCP socket inside the lab to `address`; `timeout` in seconds."""
        sock = self.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.settimeout(timeout)
            sock.connect(address)
        except BaseException:
            sock.close()
            raise
        return sock

    def create_server(self, address: tuple[str, int] = ("127.0.0.1", 0), backlog: int = 16) -> socket.socket:
        """Return a TCP socket listening inside the lab (port 0: the kernel picks one)."""
        sock = self.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(address)
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
        return sock

    def unused_port(self) -> tuple[str, int]:
        """An address on the lab's loopback where nothing listens: a port the kernel picked, closed again unused."""
        with self.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            return probe.getsockname()

    def add_veth(self, near: str, far: str, *, address: str, neighbour: str, neighbour_mac: str, mtu: int,
                 near_mac: str | None = None, far_mac: str | None = None) -> None:
        """Add a veth pair near ⇄ far to the lab: `near` gets `address` (CIDR) and a permanent neighbour
        entry `neighbour` → `neighbour_mac`; `far` gets no address, for a program that reads and writes
        its raw frames (the scripted peer, the bottleneck's delay line). Both are up, MTU `mtu` bytes."""
        add = ["ip", "link", "add", near, *(["address", near_mac] if near_mac else []), "mtu", str(mtu),
               "type", "veth", "peer", "name", far, *(["address", far_mac] if far_mac else []), "mtu", str(mtu)]
        for argv in (
            add,
            # A veth hands the kernel's 64 KB "super-segments" (GSO) over whole; capped at one MTU,
            # the kernel cuts them into real MSS-sized segments before they reach the wire.
            ["ip", "link", "set", near, "gso_max_size", str(mtu)],
            # No IPv6 link-local addresses: no router solicitations in a capture.
            ["ip", "link", "set", near, "addrgenmode", "none"],
            ["ip", "link", "set", far, "addrgenmode", "none"],
            ["ip", "addr", "add", address, "dev", near],
            ["ip", "link", "set", far, "up"],
            ["ip", "link", "set", near, "up"],
            # The kernel knows the neighbour's Ethernet address without asking: no ARP in a capture.
            ["ip", "neigh", "replace", neighbour, "lladdr", neighbour_mac, "dev", near, "nud", "permanent"],
        ):
            self.run(*argv)

    def run(self, *argv: str, timeout: float = 10.0) -> str:
        """Run a command (such as `ss -tan`) inside the lab and return what it printed."""
        out, _ = self.request("run", command(argv), timeout, timeout=timeout + REQUEST_TIMEOUT)
        return out

    def sysctl(self, name: str, value: str) -> None:
        """Set kernel parameter `name` (such as `net.ipv4.ip_local_reserved_ports`) in the lab's network namespace.

        Written to /proc/sys by the helper, as `sysctl -w` would: no program needed, so it works
        where procps is missing or its `sysctl` is not on the user's PATH.
        """
        if not re.fullmatch(r"net(\.[A-Za-z0-9_-]+)+", name):
            raise ValueError(f"name must be a network kernel parameter such as net.ipv4.ip_forward, not {name!r}")
        self.request("sysctl", name, str(value))

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen:
        """Start a program (an iperf3 server, load-generating clients) in the lab's network.

        The process joins the lab's namespaces with `nsenter`, as the same user, so it sees only
        the lab's interfaces. Use it as a context manager or wait for it; any still running when
        the lab closes are killed then. `kwargs` go to `subprocess.Popen`.
        """
        if self._closed:
            raise LabError("this lab is closed; open a new one with netlab.Lab()")
        if self._proc.poll() is not None:
            # Its pid may belong to another process by now: never enter a namespace through it.
            self._reap()
            raise LabError("the lab process has ended, so no program can join the lab; open a new one with netlab.Lab()")
        nsenter = self.check_join()
        env = dict(kwargs.pop("env", None) or os.environ)
        env["PYTHONPATH"] = package_parent() + os.pathsep + env.get("PYTHONPATH", "")
        joined = [nsenter, f"--target={self.pid}", "--user", "--net", "--preserve-credentials", *command(argv)]
        kwargs.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen(joined, env=env, **kwargs)
        self._children = [p for p in self._children if p.poll() is None] + [proc]
        return proc

    def check_join(self) -> str:
        """Make sure a program may join this lab (`setns`, which some container profiles refuse); return nsenter's path.

        Tried once per lab, by joining it with `true` (3 ms). Raises LabUnavailable with one
        sentence when joining is refused, so that callers fall back to a recording or the host.
        """
        nsenter = program("nsenter", "to start programs in the lab")
        if self._join_refused is None and not self._joined:
            try:
                done = subprocess.run([nsenter, f"--target={self.pid}", "--user", "--net", "--preserve-credentials", "true"],
                                      stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=REQUEST_TIMEOUT)
            except subprocess.TimeoutExpired:
                raise LabError(f"nsenter did not join the lab within {REQUEST_TIMEOUT:g} s") from None
            if done.returncode == 0:
                self._joined = True
            elif self._proc.poll() is not None:
                self._reap()
                raise LabError("the lab process has ended, so no program can join the lab; open a new one with netlab.Lab()")
            elif done.returncode in _EXEC_FAILED:
                raise LabError(f"nsenter could not run a program in the lab: {last_line(done.stderr)}")
            else:
                self._join_refused = join_refusal_sentence(last_line(done.stderr))
        if self._join_refused is not None:
            raise LabUnavailable(self._join_refused)
        return nsenter

    def socket_states(self) -> list[SocketState]:
        """Return the lab's TCP sockets as its kernel sees them right now (`ss -tan`)."""
        return _parse_ss(self.run("ss", "-tanH"))

    def wait_until(self, done: Callable[[list[SocketState]], bool], timeout: float = 2.0) -> list[SocketState]:
        """Poll the lab's sockets (every 5 ms, up to `timeout` seconds) until `done(sockets)`; return the last list."""
        deadline = time.monotonic() + timeout
        while True:
            states = self.socket_states()
            if done(states) or time.monotonic() > deadline:
                return states
            time.sleep(0.005)

    def capture(self, iface: str = "lo", timeout: float = 5.0, filter: str | None = None):
        """Record packets on a lab interface from the `with` block's start to its end."""
        from netlab.core.capture import Capture

        return Capture(self, iface=iface, timeout=timeout, filter=filter)

    # -- life cycle -----------------------------------------------------------

    def close(self) -> None:
        """Stop the helper process; the lab network disappears with its last socket."""
        if self._closed:
            return
        self._closed = True
        try:
            self._chan.settimeout(2.0)
            _send_msg(self._chan, ("quit", ()))
        except OSError:
            pass
        self._reap()

    def _reap(self) -> str:
        """Make sure the helper (and any program started with `popen`) has exited; return the helper's stderr."""
        self._closed = True
        for child in getattr(self, "_children", []):
            if child.poll() is None:
                child.kill()
            child.wait(timeout=3.0)
        self._chan.close()
        try:
            _, err = self._proc.communicate(timeout=3.0)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            _, err = self._proc.communicate(timeout=3.0)
        return err.decode(errors="replace")

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<netlab.Lab netns={getattr(self, 'netns', '?')} {'closed' if self._closed else 'open'}>"


def lab_available() -> tuple[bool, str]:
    """Try to open a lab and join it; return (True, how) or (False, the one-sentence reason)."""
    try:
        with Lab() as lab:
            try:
                lab.check_join()
            except LabUnavailable as err:
                return True, f"live, except where programs must join the lab: {err}"
            return True, "live: experiments run in a private network namespace that netlab created"
    except LabUnavailable as err:
        return False, str(err)


def package_parent() -> str:
    """The folder that holds the netlab package: what a process started in the lab needs on PYTHONPATH."""
    # This file is netlab/core/lab.py: the folder above netlab/. (Two levels up named netlab/ itself,
    # which only an installed package's .pth made harmless: a program started with -S found nothing.)
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def read_line(stream: Any, timeout: float) -> bytes:
    """Read one line from a child's pipe within `timeout` seconds, without its newline (b'' if none came).

    The one way netlab waits for a program it started (the scripted peer, iperf3, load
    generators) to say something: a plain readline() would wait forever on a silent child.
    Bytes read past the newline are kept on the stream for the next call, so read a pipe
    either with this alone or, once done with it, with `communicate()` (which sees only the rest).
    """
    deadline = time.monotonic() + timeout
    fd = stream.fileno()
    data: bytes = getattr(stream, "_netlab_pending", b"")
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            stream._netlab_pending = data
            return b""
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        data += chunk
    line, _, rest = data.partition(b"\n")
    stream._netlab_pending = rest
    return line.strip()


def last_line(text: str) -> str:
    """The last non-blank line of a program's output (its error message, usually)."""
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def stop_program(proc: subprocess.Popen, timeout: float) -> tuple[bool, str]:
    """End a program of the lab that stops when its stdin closes: close it, kill it after `timeout` s.

    Returns (whether it had to be killed, the last line it wrote on stderr: why it failed, if it
    did). Such a program writes a line or two to its pipes, so they cannot have filled up.
    """
    killed = False
    try:
        proc.stdin.close()
    except OSError:
        pass
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
        killed = True
    said = ""
    if proc.stderr:
        try:
            said = last_line(proc.stderr.read().decode(errors="replace"))
        except (OSError, ValueError):
            pass
    for stream in (proc.stdout, proc.stderr):
        if stream:
            stream.close()
    return killed, said


def _split_addr(text: str) -> tuple[str, int] | None:
    host, _, port = text.rpartition(":")
    if port == "*" or not host:
        return None
    return host.strip("[]"), int(port)


def _parse_ss(text: str) -> list[SocketState]:
    states = []
    for line in text.splitlines():
        fields = line.split()
        if len(fields) < 5:
            continue
        local = _split_addr(fields[3])
        if local is None:
            continue
        states.append(SocketState(fields[0], local, _split_addr(fields[4])))
    return states
