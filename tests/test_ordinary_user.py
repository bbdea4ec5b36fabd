"""The lab's own tests once more, as a student on Debian runs them: an ordinary uid, Debian's PATH, a fresh HOME.

CI runs as root, whose PATH holds /usr/sbin and /sbin. A student's does not: Debian gives an
ordinary user PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games, so `tc`, `nft` and
`sysctl` run by bare name were not found, and notebook 09 failed whole for such a user while every
root run passed (issue 23). Here root runs the test files of the lab, the scripted peer, the
bottleneck (congestion), the routed topology (below) and the program lookup again as uid 65534
(`setpriv`, no new user needed), with that PATH and an empty HOME, in a child pytest, and
asserts that it passes.

The child needs a Python the uid can run: root's may live under /root (mode 700), so Debian's
/usr/bin/python3 of the same minor version serves, with this environment's packages added by
PYTHONPATH (so that the programs the lab starts find them too) where the uid can read them, or
copied where it cannot.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

import pytest

pytestmark = [pytest.mark.lab, pytest.mark.slow]

ROOT = Path(__file__).resolve().parent.parent
UID = 65534  # nobody: an ordinary uid that exists everywhere
DEBIAN_USER_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games"  # /etc/login.defs, ENV_PATH
# What runs in the lab, and what found its programs by bare name before issue 23.
FILES = ["tests/test_lab.py", "tests/test_peer.py", "tests/test_congestion.py", "tests/test_below.py",
         "tests/test_programs.py"]
# Fifty handshakes in a row test the lab's life cycle, which the other tests here cover too: 9 s saved.
DESELECT = "not fifty_live_handshakes"

def _as_uid(*argv: str, env: dict[str, str], cwd: Path, timeout: float) -> subprocess.CompletedProcess:
    assignments = [f"{k}={v}" for k, v in env.items()]
    return subprocess.run(["setpriv", f"--reuid={UID}", f"--regid={UID}", "--clear-groups", "--",
                           "env", "-i", *assignments, *argv],
                          cwd=cwd, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)


def _readable(path: Path) -> bool:
    """True when the ordinary uid may read `path` (and pass through every folder above it)."""
    done = _as_uid("/usr/bin/test", "-r", str(path), "-a", "-x", str(path), env={}, cwd=Path("/"), timeout=10)
    return done.returncode == 0


def _python() -> str:
    """A Python 3 of this one's minor version that the uid can run (the packages' compiled parts need it)."""
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for candidate in (os.path.realpath(sys.executable), f"/usr/bin/python{version}"):
        if os.path.exists(candidate):
            done = _as_uid(candidate, "-c", "import sys; print(sys.version)", env={}, cwd=Path("/"), timeout=30)
            if done.returncode == 0 and done.stdout.startswith(version):
                return candidate
    pytest.skip(f"uid {UID} can run no Python {version} here (root's lives where it cannot read)")


@pytest.mark.skipif(os.geteuid() != 0, reason="only root can become another uid; an ordinary user's run already is this test")
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="setpriv (util-linux) is not installed")
def test_the_labs_tests_pass_for_an_ordinary_user_with_debians_path():
    python = _python()
    packages = Path(sysconfig.get_paths()["purelib"])
    scratch = Path(tempfile.mkdtemp(prefix="netlab-ordinary-user-"))
    try:
        scratch.chmod(0o755)
        home = scratch / "home"
        home.mkdir()
        os.chown(home, UID, UID)
        project = ROOT
        if not (_readable(ROOT / "netlab") and _readable(ROOT / "tests")):
            project = scratch / "project"  # a clone under /root, say: copy what the child needs
            for part in ("netlab", "tests", "notebooks/sanitize.cfg", "pyproject.toml"):
                copy = shutil.copytree if (ROOT / part).is_dir() else shutil.copy2
                (project / part).parent.mkdir(parents=True, exist_ok=True)
                copy(ROOT / part, project / part)
        if not _readable(packages):
            packages = Path(shutil.copytree(packages, scratch / "site-packages", symlinks=True))
        env = {"PATH": DEBIAN_USER_PATH, "HOME": str(home), "LANG": "C.UTF-8",
               "PYTHONPATH": f"{project}{os.pathsep}{packages}", "PYTHONDONTWRITEBYTECODE": "1"}
        # -o addopts= : the child runs these files alone, without the notebooks' nbval options.
        done = _as_uid(python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "addopts=",
                       "--rootdir", str(project), "-k", DESELECT, *FILES, env=env, cwd=project, timeout=600)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr
    assert done.returncode == 0, f"as uid {UID} with PATH={DEBIAN_USER_PATH}: {summary}\n{done.stdout[-6000:]}"
    passed = re.search(r"(\d+) passed", summary)
    assert passed and int(passed.group(1)) >= 100 and "failed" not in summary, summary
