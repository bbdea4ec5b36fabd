"""The lab's own tests, as a student on Debian runs them: an ordinary uid, Debian's PATH, a fresh HOME.

CI runs as root, whose PATH holds /usr/sbin and /sbin. A student's does not: Debian gives an
ordinary user PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games, so `tc`, `nft` and
`sysctl` run by bare name were not found, and notebook 09 failed whole for such a user while every
root run passed (issue 23). Here root runs the test files of the lab, the scripted peer, the
bottleneck (congestion) and its delay line, the routed topologies (below; routes, with BIRD and ping;
names, with NSD, Unbound, dnsmasq and conntrack) and the program lookup as uid 65534
(`netlab.classroom.ordinary_user`: setpriv, no new user needed), with that PATH and an empty HOME, in a
child pytest, and asserts that it passes.

Where root runs the whole suite, those files run only here, once (tests/conftest.py deselects
them from root's own run): the rest of the suite uses the lab as root all along.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sysconfig
import tempfile
from pathlib import Path

import pytest
from conftest import AS_ORDINARY_USER

from netlab.classroom import ordinary_user

pytestmark = [pytest.mark.lab, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
# Fifty handshakes in a row test the lab's life cycle, which the other tests here cover too: 9 s saved.
DESELECT = "not fifty_live_handshakes"


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can become another uid; an ordinary user's run already is this test")
def test_the_labs_tests_pass_for_an_ordinary_user_with_debians_path():
    if shutil.which("setpriv") is None or ordinary_user.python() is None:
        pytest.skip("setpriv or a Python the ordinary user can run is missing here")
    scratch = Path(tempfile.mkdtemp(prefix="netlab-ordinary-user-"))
    try:
        scratch.chmod(0o755)
        home = scratch / "home"
        home.mkdir()
        os.chown(home, ordinary_user.UID, ordinary_user.UID)
        project = ROOT
        if not (ordinary_user.can_read(ROOT / "netlab") and ordinary_user.can_read(ROOT / "tests")):
            project = scratch / "project"  # a clone under /root, say: copy what the child needs
            for part in ("netlab", "tests", "pyproject.toml"):
                (shutil.copytree if (ROOT / part).is_dir() else shutil.copy2)(ROOT / part, project / part)
        env = ordinary_user.environment(home, project)
        packages = Path(sysconfig.get_paths()["purelib"])
        if not ordinary_user.can_read(packages):
            env["PYTHONPATH"] = f"{project}{os.pathsep}{shutil.copytree(packages, scratch / 'site-packages', symlinks=True)}"
        # -o addopts= : these files alone, without the notebooks' nbval options.
        argv = ordinary_user.as_uid([ordinary_user.python(), "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                                     "--rootdir", str(project), "-k", DESELECT, *AS_ORDINARY_USER], env)
        done = subprocess.run(argv, cwd=project, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert done.returncode == 0, f"as uid {ordinary_user.UID} with PATH={ordinary_user.DEBIAN_USER_PATH}: {summary}\n" \
                                 f"{done.stdout[-6000:]}"
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 100 and "failed" not in summary, summary
