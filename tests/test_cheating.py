"""A class that may cheat (#28): each kind of cheating is a fake submission, graded twice.

Once by the grader as it was before the sandbox (the package at BASE, run from a virtual env of
its own, the way an instructor ran it: one grading user, one HOME), where each gets a point it
should not have; and once by today's `netlab.classroom.grading`, where none gets a point and the
honest classmate keeps every point. Two small instructor notebooks keep this quick: 98-sample (two
answers that are numbers) and 97-capture (an answer read from the student's own live capture).
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
import venv
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from test_classroom import sample  # 98-sample: two exercises whose answers are numbers

import netlab
from netlab.classroom import edition, grading, sandbox

pytestmark = pytest.mark.grading

ROOT = Path(__file__).resolve().parent.parent
BASE = "7e3f051"  # main before #28: the grader that trusted the kernel's verdicts

needs_sandbox = pytest.mark.skipif(sandbox.problem() is not None, reason=f"no sandbox here: {sandbox.problem()}")

# A netlab.checks that passes everything: what a cheat puts in sys.modules, beside the notebook, or in HOME.
FAKE_CHECKS = '''
import sys, types
from IPython.display import display

class _Checks(types.ModuleType):
    grade_id = None

    def set_grade_id(self, grade_id):
        self.grade_id = grade_id

    def __getattr__(self, name):
        def check(*args, **kwargs):
            display({"text/plain": "✔ fine", "application/vnd.netlab.check+json":
                     {"grade_id": self.grade_id, "passed": True, "feedback": "fine"}}, raw=True)
        return check

checks = _Checks("netlab.checks")
sys.modules["netlab.checks"] = checks
'''


def _notebook(cells: list, stem: str) -> dict:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return edition.mark(json.loads(nbformat.writes(nb)), stem)


def _capture() -> dict:
    return _notebook([
        new_code_cell("import netlab\n\nexp = netlab.handshake()"),
        new_markdown_cell("## Exercises\n\nWhich port did the server listen on, in your capture?"),
        new_code_cell("port = exp.conversation.server[1]", metadata={"tags": ["solution"]}),
        new_code_cell("netlab.checks.server_port(exp, port)"),
    ], "97-capture")


def _with(nb: dict, answer: str, *, before: str = "") -> dict:
    """`nb` with every answer cell set to `answer`, and a cell of `before` run first of all."""
    nb = json.loads(json.dumps(nb))
    for cell in nb["cells"]:
        if cell.get("metadata", {}).get("nbgrader", {}).get("solution"):
            cell["source"] = answer
    if before:
        nb["cells"].insert(0, new_code_cell(before))
    return nb


WRONG = "answer = 1"
NEXT = "n = globals().get('n', -1) + 1  # which exercise this answer cell is: 0, then 1\n"


def _kinds(root: Path, csv_path: Path) -> dict[str, dict]:
    """Each kind of cheating, by student name: {"notebooks": {stem: nb}, "files", "links", "fifo", "old"}.

    "old": "point" where the grader before #28 is shown to give it a point, "runs" where it only
    runs there (it cheats for a classmate), None where it is not run there (it would harm this
    machine, or hang that grader, or it cheats only the new design).
    """
    numbers, capture = sample(), _capture()
    recorded_port = netlab.load_recorded("handshake").conversation.server[1]
    honest = root / "zz-honest" / "98-sample.ipynb"
    bomb = sandbox.LIMITS.processes + 100
    outliver = (f"import time; time.sleep(2); open({str(csv_path)!r}, 'a')"
                ".write('outlives-kernel,98-sample,98-ex1,true,forged\\n')")
    return {
        "replaced-verdict": {"old": "point", "notebooks": {"98-sample": _with(numbers, WRONG, before=(
            "import netlab.core.checking as c\nc._verdict = lambda *a, **k: c.Feedback(True, 'fine')"))}},
        "fake-module": {"old": "point", "notebooks": {"98-sample": _with(numbers, WRONG, before=FAKE_CHECKS + (
            "import netlab\nnetlab.checks = checks"))}},
        "post-run-hook": {"old": "point", "notebooks": {"98-sample": _with(numbers, WRONG, before=(
            "from IPython.display import display\n"
            "get_ipython().events.register('post_run_cell', lambda result: display({'text/plain': '✔', "
            "'application/vnd.netlab.check+json': {'grade_id': None, 'passed': True, 'feedback': 'fine'}}, raw=True))"))}},
        "replaced-check": {"old": "point", "notebooks": {"98-sample": _with(numbers, WRONG, before=(
            "import netlab, netlab.checks\n"
            "netlab.checks.segments_for_write = lambda *a, **k: netlab.checks.Feedback(True, 'fine')"))}},
        "shadow-package": {"old": "point", "notebooks": {"98-sample": _with(numbers, WRONG)},
                           "files": {"netlab/__init__.py": FAKE_CHECKS}},
        "forged-capture": {"old": "point", "notebooks": {"97-capture": _with(capture, (
            "from types import SimpleNamespace\n"
            "exp = SimpleNamespace(live=True, conversation=SimpleNamespace(server=('127.0.0.1', 1), "
            "client=('127.0.0.1', 2)))\nport = 1"))}},
        "recorded-mode": {"old": "point", "notebooks": {"97-capture": _with(
            capture, f"port = {recorded_port}", before="import os\nos.environ['NETLAB_RECORDED'] = '1'")}},
        "walks-the-disk": {"old": "point", "notebooks": {"98-sample": _with(numbers, NEXT + (
            "import glob, json\n"
            f"for path in glob.glob({str(root.parent) + '/**/instructor/98-sample.ipynb'!r}, recursive=True):\n"
            "    cells = [''.join(c['source']) for c in json.load(open(path))['cells']]\n"
            "    exec([c for c in cells if c.startswith('### BEGIN')][n])\n"))}},
        "reads-grader-proc": {"old": "point", "notebooks": {"98-sample": _with(numbers, NEXT + (
            "import glob, json\n"
            "for cmd in glob.glob('/proc/[0-9]*/cmdline'):\n"
            "    try:\n        words = open(cmd, 'rb').read().split(b'\\0')\n    except OSError:\n        continue\n"
            "    if b'--source' in words:\n"
            "        folder = words[words.index(b'--source') + 1].decode()\n"
            "        cells = [''.join(c['source']) for c in json.load(open(folder + '/98-sample.ipynb'))['cells']]\n"
            "        exec([c for c in cells if c.startswith('### BEGIN')][n])\n"
            "        break\n"))}},
        "outlives-kernel": {"old": "point", "notebooks": {"98-sample": _with(numbers, WRONG, before=(
            "import subprocess, sys\n"
            f"subprocess.Popen([sys.executable, '-c', {outliver!r}], start_new_session=True)"))}},
        "aa-home-startup": {"old": "runs", "notebooks": {"98-sample": _with(numbers, WRONG, before=(
            "import pathlib\nstartup = pathlib.Path.home() / '.ipython/profile_default/startup'\n"
            "startup.mkdir(parents=True, exist_ok=True)\n"
            f"(startup / '00-pass.py').write_text({FAKE_CHECKS + 'import netlab; netlab.checks = checks'!r})"))}},
        "zy-friend-of-home-startup": {"old": "point", "notebooks": {"98-sample": _with(numbers, WRONG)}},
        "link-to-classmate": {"old": "point", "links": {"98-sample.ipynb": honest}},
        "fork-bomb": {"old": None, "notebooks": {"98-sample": _with(numbers, NEXT + (
            f"import os, time\npids = []\ntry:\n    while len(pids) < {bomb}:\n        pid = os.fork()\n"
            "        if pid == 0:\n            time.sleep(3)\n            os._exit(0)\n        pids.append(pid)\n"
            "except OSError:\n    pass\n"
            f"answer = [6, 35][n] if len(pids) == {bomb} else 1\n"))}},
        "eats-memory": {"old": None, "notebooks": {"98-sample": _with(numbers, NEXT + (
            "try:\n    hoard = bytearray(9 * 2**30)\n    answer = [6, 35][n]\nexcept MemoryError:\n    answer = 1\n"))}},
        "fills-the-disk": {"old": None, "notebooks": {"98-sample": _with(numbers, NEXT + (
            "import os\ntry:\n    with open(os.path.expanduser('~/big'), 'wb') as f:\n        f.write(bytes(100 * 2**20))\n"
            "    answer = [6, 35][n]\nexcept OSError:\n    answer = 1\n"))}},
        "forges-literals": {"old": None, "notebooks": {"98-sample": _with(numbers, WRONG, before=(
            "import netlab.core.checking as c\nhand_over = c.hand_over\n"
            "c.hand_over = lambda check, args, kwargs: hand_over(check, (1460, 1), kwargs)"))}},
        "named-pipe": {"old": None, "notebooks": {"98-sample": numbers}, "fifo": "pipe"},
    }


def _write(root: Path, kinds: dict[str, dict]) -> list[Path]:
    folders = []
    for student, kind in kinds.items():
        folder = root / student
        folder.mkdir(parents=True)
        for stem, nb in kind.get("notebooks", {}).items():
            edition.write_notebook(nb, folder / f"{stem}.ipynb")
        for rel, text in kind.get("files", {}).items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_text(text)
        for rel, target in kind.get("links", {}).items():
            (folder / rel).symlink_to(target)
        if "fifo" in kind:
            os.mkfifo(folder / kind["fifo"])
        folders.append(folder)
    return folders


@pytest.fixture(scope="module")
def old_grader(tmp_path_factory) -> Path:
    """A Python whose `netlab` is the package at BASE (its own virtual env; libraries from this one's)."""
    root = tmp_path_factory.mktemp("old-grader")
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", BASE, "netlab"], capture_output=True, timeout=60)
    if archive.returncode != 0:
        pytest.skip(f"the grader before #28 ({BASE}) is not in this clone's history (a shallow clone?)")
    subprocess.run(["tar", "-x", "-C", str(root)], input=archive.stdout, check=True, timeout=60)
    venv.create(root / "venv", with_pip=False)
    site = next((root / "venv").glob("lib/python*/site-packages"))
    here = next(p for p in sys.path if p.endswith("site-packages") and Path(p, "nbclient").exists())
    (site / "old-netlab.pth").write_text(f"{root}\n{here}\n")  # a .pth line is a path, not a site: no editable finder
    return root / "venv" / "bin" / "python"


def _rows(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


@needs_sandbox
def test_each_kind_of_cheating_gets_a_point_from_the_old_grader_and_none_now(tmp_path, old_grader):
    reference = tmp_path / "instructor"
    edition.write_notebook(sample(), reference / "98-sample.ipynb")
    edition.write_notebook(_capture(), reference / "97-capture.ipynb")
    submissions = tmp_path / "submissions"
    grades = tmp_path / "grades.csv"
    kinds = _kinds(submissions, grades)
    honest = {"zz-honest": {"old": "runs", "notebooks": {"98-sample": sample(), "97-capture": _capture()}}}
    assert len(kinds) >= 12
    folders = _write(submissions, {**kinds, **honest})

    # Before: the grader as it was, one HOME for the whole class (the grading user's).
    old_folders = [f for f in folders if kinds.get(f.name, {"old": "point"})["old"]]
    home = tmp_path / "home"
    home.mkdir()
    done = subprocess.run([str(old_grader), "-m", "netlab", "grade", *map(str, old_folders), "--source", str(reference),
                           "--out", str(grades), "--workers", "2"], capture_output=True, text=True, timeout=900,
                          env={**os.environ, "HOME": str(home)}, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    time.sleep(3)  # what outlived its kernel has written by now
    before = _rows(grades)
    cheated = {r["student"] for r in before if r["passed"] == "true"}
    assert {s for s, k in kinds.items() if k["old"] == "point"} <= cheated, sorted(
        {s for s, k in kinds.items() if k["old"] == "point"} - cheated)

    # Now: a sandbox per submission, a verifier outside it.
    started = time.monotonic()
    rows = grading.grade(folders, reference, workers=2)
    grading.write_csv(rows, grades)
    took = time.monotonic() - started
    time.sleep(3)
    after = _rows(grades)
    assert after == [dict(zip(grading.COLUMNS, r.csv())) for r in rows], "the CSV changed after grading"
    points = {r.student for r in rows if r.passed} - {"zz-honest"}
    assert not points, [r for r in rows if r.passed and r.student != "zz-honest"]
    mine = [r for r in rows if r.student == "zz-honest"]
    assert len(mine) == 3 and all(r.passed and r.note == "" for r in mine), mine
    by_student = {r.student: r for r in rows}
    assert by_student["recorded-mode"].note == "recorded", by_student["recorded-mode"]
    assert by_student["forges-literals"].note == "tampered"
    assert by_student["post-run-hook"].note == "tampered"
    for star in ("link-to-classmate", "named-pipe"):
        assert by_student[star].exercise == "*", by_student[star]
    print(f"graded {len(folders)} submissions in sandboxes in {took:.0f} s")


@needs_sandbox
def test_the_sandbox_shows_nothing_of_the_grader_and_bounds_what_it_uses(tmp_path):
    import netlab as package

    probe = (
        "import os, resource, json\n"
        f"print(json.dumps({{'pids': sorted(int(p) for p in os.listdir('/proc') if p.isdigit()),"
        f" 'tmp': os.listdir('/tmp'), 'home': os.listdir(os.path.expanduser('~')),"
        f" 'package_writable': os.access({str(Path(package.__file__).parent)!r}, os.W_OK),"
        f" 'grader_tree': os.path.exists({str(tmp_path)!r}),"
        f" 'nproc': resource.getrlimit(resource.RLIMIT_NPROC)[0], 'uid': os.getuid()}}))\n")
    done = subprocess.run(sandbox.command([sys.executable, "-I", "-c", probe]), capture_output=True, text=True,
                          timeout=60, preexec_fn=sandbox.set_limits)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    assert seen["pids"][:2] == [1, 2] and len(seen["pids"]) <= 3, seen["pids"]  # bwrap's init, this program
    assert seen["tmp"] == [] and seen["home"] == []
    assert not seen["package_writable"] and not seen["grader_tree"]
    assert seen["nproc"] == sandbox.LIMITS.processes and seen["uid"] != 0


def _nbgrader_style(nb: dict, folder: Path, python: str) -> list[bool]:
    """Run `nb` headless as nbgrader's autograde does (NETLAB_GRADING=1): a check cell without an error is a point."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager
    from nbclient import NotebookClient

    spec = folder / "kernels" / "py"
    spec.mkdir(parents=True)
    (spec / "kernel.json").write_text(json.dumps({"argv": [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
                                                  "display_name": "py", "language": "python"}))
    node = nbformat.reads(json.dumps(nb), as_version=4)
    km = KernelManager(kernel_name="py", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(folder / "kernels")]))
    client = NotebookClient(node, km=km, timeout=120, allow_errors=True, resources={"metadata": {"path": str(folder)}})
    os.environ["NETLAB_GRADING"] = "1"
    try:
        client.execute()
    finally:
        os.environ.pop("NETLAB_GRADING")
    graded = [c for c in node.cells if c.get("metadata", {}).get("nbgrader", {}).get("grade")]
    return [not any(o["output_type"] == "error" for o in c.outputs) for c in graded]


def test_unsetting_the_grading_switch_under_nbgrader_no_longer_gives_points(tmp_path, old_grader):
    cheat = _with(sample(), WRONG, before="import os\nos.environ.pop('NETLAB_GRADING', None)")
    assert _nbgrader_style(cheat, tmp_path / "old", str(old_grader)) == [True, True]  # before #28: two points
    assert _nbgrader_style(cheat, tmp_path / "new", sys.executable) == [False, False]  # a headless kernel fails closed


@needs_sandbox
@pytest.mark.lab
def test_a_notebooks_own_resolver_runs_live_in_the_sandbox():
    # Notebooks 10 and 12 bind the lab's resolv.conf over /etc's in their resolver's mount namespace;
    # a sandbox without an /etc/resolv.conf to cover made notebook 12's first exercise ungradable.
    done = subprocess.run(sandbox.command([sys.executable, "-I", "-m", "netlab", "names"]), capture_output=True,
                          text=True, timeout=120, preexec_fn=sandbox.set_limits)
    assert done.returncode == 0, done.stderr
    assert "live" in done.stdout and "198.51.100.80" in done.stdout, done.stdout
