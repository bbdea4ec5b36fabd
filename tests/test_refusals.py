"""Every way a machine refuses the lab ends in the recording, labelled, with one sentence of why.

Each refusal is made for real in a child process, whose own refusals end with it:
- user namespaces turned off: `user.max_user_namespaces = 0`, set inside a user namespace we own
  (its limit applies to the namespaces made below it), where unshare fails with ENOSPC;
- the same, with unshare's messages in German (Debian's `util-linux-locales`);
- a container's seccomp profile answering unshare() with EPERM or ENOSYS, and one that allows
  unshare() but refuses setns(), which programs joining the lab (`Lab.popen`: the scripted peer,
  iperf3, load generators) need; the filter (pyseccomp) is installed before the child runs Python;
- no `unshare` tool at all.
In each, `python -m netlab handshake` exits 0 showing the recorded capture and `netlab.mode()` returns
the sentence: no traceback, no exit status 2.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Each refusal is made for real with namespaces and seccomp filters.
pytestmark = pytest.mark.lab

ROOT = Path(__file__).resolve().parent.parent
README_HINT = "see README, 'Running a class on JupyterHub'"

# Run in the child before Python starts netlab: a seccomp filter answering one system call with one errno.
SECCOMP = """
import errno, os, sys
import pyseccomp
call, code = sys.argv[1], getattr(errno, sys.argv[2])
f = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
f.add_rule(pyseccomp.ERRNO(code), call)
f.load()
os.execv(sys.argv[3], sys.argv[3:])
"""

MODE = "import netlab; print(netlab.mode())"


def one_sentence(text: str) -> bool:
    """A message a student reads at once: one line, one sentence, ending with a full stop."""
    return "\n" not in text and text.endswith(".") and not re.search(r"[.!?]\s", text)


def run(argv: list[str], env: dict[str, str] | None = None, timeout: float = 90) -> subprocess.CompletedProcess:
    full = {k: v for k, v in os.environ.items() if k != "NETLAB_RECORDED"}
    full["PYTHONPATH"] = str(ROOT)
    full.update(env or {})
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=full, cwd=ROOT)


def no_user_namespaces(*argv: str) -> list[str]:
    """`argv`, run where user namespaces are turned off (user.max_user_namespaces = 0)."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare tool here")
    probe = run(["unshare", "-Ur", "sh", "-c", "echo 0 > /proc/sys/user/max_user_namespaces"])
    if probe.returncode != 0:
        pytest.skip(f"cannot lower user.max_user_namespaces in a user namespace here: {probe.stderr.strip()}")
    return ["unshare", "-Ur", "sh", "-c", 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"', "sh", *argv]


def under_seccomp(call: str, errno_name: str, *argv: str) -> list[str]:
    """`argv`, run under a seccomp filter that answers system call `call` with `errno_name`."""
    pytest.importorskip("pyseccomp", reason="pyseccomp (the test extra) installs the seccomp filters")
    return [sys.executable, "-c", SECCOMP, call, errno_name, *argv]


def assert_recorded_handshake(result: subprocess.CompletedProcess, *words: str) -> str:
    """`python -m netlab handshake` fell back: exit 0, the recording, and first one sentence naming `words`."""
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    why = result.stdout.splitlines()[0]
    assert one_sentence(why) and "recorded captures instead" in why, why
    for word in words:
        assert word in why, why
    assert "TCP stream 0, recorded" in result.stdout and "TCP stream 0, live" not in result.stdout
    return why


def assert_mode(result: subprocess.CompletedProcess, why: str) -> None:
    """netlab.mode() printed the same sentence, and nothing went to stderr."""
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert result.stdout.strip() == why


def handshake(tmp_path: Path) -> list[str]:
    return [sys.executable, "-m", "netlab", "handshake", "--out", str(tmp_path)]


def test_user_namespaces_turned_off(tmp_path):
    why = assert_recorded_handshake(run(no_user_namespaces(*handshake(tmp_path))), "user.max_user_namespaces is 0")
    assert (tmp_path / "handshake.pcap").is_file()
    assert_mode(run(no_user_namespaces(sys.executable, "-c", MODE)), why)


def test_a_translated_unshare_is_still_a_refusal(tmp_path):
    german = {"LANGUAGE": "de", "LANG": "C.UTF-8"}
    said = run(no_user_namespaces("unshare", "-Urn", "true"), env=german).stderr
    if "fehlgeschlagen" not in said:
        pytest.skip(f"unshare does not speak German here (Debian's util-linux-locales is missing): {said.strip()}")
    why = assert_recorded_handshake(run(no_user_namespaces(*handshake(tmp_path)), env=german), "user.max_user_namespaces")
    assert_mode(run(no_user_namespaces(sys.executable, "-c", MODE), env=german), why)


@pytest.mark.parametrize("errno_name", ["EPERM", "ENOSYS"])
def test_seccomp_refuses_unshare(errno_name, tmp_path):
    why = assert_recorded_handshake(run(under_seccomp("unshare", errno_name, *handshake(tmp_path))),
                                    "seccomp", errno_name, README_HINT)
    assert_mode(run(under_seccomp("unshare", errno_name, sys.executable, "-c", MODE)), why)


# Where netlab looks for its programs (netlab.core.programs) is emptied before it starts: PATH
# alone would not do, since the lookup goes on in /usr/sbin, /usr/bin and the other system folders.
NOWHERE = "import netlab.core.programs as p; p.SYSTEM_DIRS = (); "


def test_without_unshare(tmp_path):
    empty = tmp_path / "bin"
    empty.mkdir()
    cli = [sys.executable, "-c", NOWHERE + "import runpy; runpy.run_module('netlab', run_name='__main__', alter_sys=True)",
           *handshake(tmp_path)[3:]]
    why = assert_recorded_handshake(run(cli, env={"PATH": str(empty)}), "unshare", "util-linux")
    assert_mode(run([sys.executable, "-c", NOWHERE + MODE], env={"PATH": str(empty)}), why)


def test_seccomp_refuses_setns_retransmit_shows_the_recording():
    if shutil.which("nsenter") is None:
        pytest.skip("no nsenter tool here")
    result = run(under_seccomp("setns", "EPERM", sys.executable, "-m", "netlab", "retransmit", "--count", "2"), timeout=60)
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr + result.stdout and result.stderr == "", result.stderr
    first = result.stdout.splitlines()[0]
    if first.startswith("recorded: This system refuses to create"):
        pytest.skip(f"this machine refuses the lab itself: {first}")
    assert first.startswith("recorded: This system lets netlab create a private network but refuses programs joining it")
    assert "seccomp" in first and README_HINT in first
    assert "--count applies to live runs" in first and "Script(" not in result.stdout and "your script" not in result.stdout
    assert result.stdout.count("retransmission ") == 4


def test_seccomp_refuses_setns_load_runs_on_the_host():
    """Where programs cannot join the lab, what runs servers under load (lab_or_host) uses the host's loopback."""
    if shutil.which("nsenter") is None:
        pytest.skip("no nsenter tool here")
    code = ("from netlab.core.experiment import lab_or_host\n"
            "with lab_or_host() as (lab, where, why):\n"
            "    print(where, lab is None)\n"
            "    print(why)\n")
    result = run(under_seccomp("setns", "EPERM", sys.executable, "-c", code), timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    where, why = result.stdout.splitlines()
    if "refuses to create" in why:
        pytest.skip(f"this machine refuses the lab itself: {why}")
    assert where == "host True"
    assert why.startswith("host loopback: This system lets netlab create a private network but refuses programs joining it")
    mode = run(under_seccomp("setns", "EPERM", sys.executable, "-c", MODE))
    assert mode.returncode == 0 and mode.stderr == "", mode.stderr
    sentence = mode.stdout.strip()
    assert sentence.startswith("live, except where programs must join the lab: ") and one_sentence(sentence), sentence
    assert "seccomp" in sentence and README_HINT in sentence

def test_a_lab_that_joins_says_so_once():
    """Where setns is allowed, the first popen checks it (one nsenter of `true`), later ones do not."""
    import netlab
    from netlab.core.errors import LabUnavailable

    try:
        lab = netlab.Lab()
    except LabUnavailable as err:
        pytest.skip(f"this machine refuses the lab: {err}")
    with lab:
        assert lab.check_join() == lab.check_join()
        with lab.popen(["true"]) as proc:
            assert proc.wait(timeout=10) == 0


# A profile that lets the lab be made but no namespace inside it: unshare allowed with flags exactly
# CLONE_NEWUSER|CLONE_NEWNET (the profile netlab shipped before issue 24), or one refusing unshare(CLONE_NEWNS) alone.
INNER = """
import errno, os, sys
import pyseccomp
op = {"only-the-lab": pyseccomp.NE, "no-mount-namespace": pyseccomp.EQ}[sys.argv[1]]
flags = {"only-the-lab": 0x50000000, "no-mount-namespace": 0x20000}[sys.argv[1]]
f = pyseccomp.SyscallFilter(pyseccomp.ALLOW)
f.add_rule(pyseccomp.ERRNO(errno.EPERM), "unshare", pyseccomp.Arg(0, op, flags))
f.load()
os.execv(sys.argv[2], sys.argv[2:])
"""
INNER_SECONDS = 5.0  # python, the lab's start and the recording: at once, never the 15 s the receiver once waited


def under_inner_refusal(kind: str, *argv: str) -> list[str]:
    pytest.importorskip("pyseccomp", reason="pyseccomp (the test extra) installs the seccomp filters")
    return [sys.executable, "-c", INNER, kind, *argv]


def assert_inner_refusal(result: subprocess.CompletedProcess, seconds: float, what: str, call: str) -> str:
    assert result.returncode == 0 and result.stderr == "", result.stderr
    why = result.stdout.splitlines()[0].removeprefix("recorded: ")
    if why.startswith("This system refuses to create"):
        pytest.skip(f"this machine refuses the lab itself: {why}")
    assert one_sentence(why), why
    assert why.startswith(f"This system lets netlab create a private network but refuses {what} inside it"), why
    assert f"seccomp filter, a container's security profile, forbids {call}: EPERM" in why, why
    assert why.endswith(f"so netlab shows recorded captures instead; {README_HINT}."), why
    assert seconds < INNER_SECONDS, f"{seconds:.1f} s"
    return why


def timed(argv: list[str]) -> tuple[subprocess.CompletedProcess, float]:
    start = time.monotonic()
    result = run(argv, timeout=60)
    return result, time.monotonic() - start


def test_a_refused_receiver_namespace_shows_the_recording_at_once():
    """Notebook 09: the bottleneck's receiver cannot make its network namespace; the recording, not a 15 s wait."""
    result, seconds = timed(under_inner_refusal("only-the-lab", sys.executable, "-m", "netlab", "cwnd"))
    assert_inner_refusal(result, seconds, "a network namespace for the bottleneck's receiver", "unshare(CLONE_NEWNET)")
    assert "round  1: cwnd" in result.stdout


def test_refused_router_namespaces_show_the_recording_at_once():
    """Notebook 10: the topology's agent cannot make the router's namespace; LabUnavailable, not TopologyError."""
    result, seconds = timed(under_inner_refusal("only-the-lab", sys.executable, "-m", "netlab", "traceroute"))
    assert_inner_refusal(result, seconds, "network namespaces for the router and the server", "unshare(CLONE_NEWNET)")
    assert "ICMP time exceeded" in result.stdout


def test_refused_router_namespaces_of_three_routers_show_the_recording_at_once():
    """Notebook 11: the same refusal for a plan of three routers; the routes subcommand shows its recording."""
    result, seconds = timed(under_inner_refusal("only-the-lab", sys.executable, "-m", "netlab", "routes"))
    assert_inner_refusal(result, seconds, "network namespaces for the r1, r2, r3 and the server", "unshare(CLONE_NEWNET)")
    assert "the request crossed c-r1 → r1-r2 → r2-s" in result.stdout


def test_a_refused_mount_namespace_shows_the_dns_recording_and_keeps_the_path_live():
    """Notebook 10's resolver: its mount namespace refused, the lookup shows its recording; a kept path stays live."""
    code = ("from netlab.lessons.below.experiments import LabPath, resolve\n"
            "exp = resolve()\n"
            "print(exp.why)\n"
            "with LabPath() as path:\n"
            "    kept = resolve(path)\n"
            "    print(exp.source, kept.source, kept.why == exp.why, path.live, exp.result['peer'])\n")
    result, seconds = timed(under_inner_refusal("no-mount-namespace", sys.executable, "-c", code))
    assert_inner_refusal(result, seconds, "a mount namespace for the resolver's own files", "unshare(CLONE_NEWNS)")
    assert result.stdout.splitlines()[1] == "recorded recorded True True ['10.2.0.2', 80]"
