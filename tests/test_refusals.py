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
from pathlib import Path

import pytest

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
