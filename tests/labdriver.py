"""A real JupyterLab in headless Chromium, for tests/test_browser.py and bench/series.py (named
labdriver, not jupyterlab: tests/ is on sys.path under pytest, and that name would hide the real package).

`JupyterLab(folder)` starts one server on 127.0.0.1 (a port the kernel picks, a random token,
its settings, workspaces and runtime files in a temporary folder, the news and update checks
off), and stops it on exit. `browser()` drives Debian's Chromium through Playwright for Python
(never a browser Playwright downloads). `run_all(page, lab, name)` opens a notebook in its own
workspace (so the tabs of the last one are not restored), clears its outputs, runs all cells,
saves it, and reads the saved file back: which cells ran, which outputs are errors, how long it
took. Work on a copy of the notebooks: JupyterLab saves what it runs.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")  # Debian's package (./run test installs it with apt)
# Chromium in a container, as CI runs it: no sandbox (it needs user namespaces of its own), no GPU,
# and nothing fetched from the network in the background.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
                 "--disable-component-update", "--disable-default-apps", "--disable-extensions", "--disable-sync",
                 "--no-first-run", "--metrics-recording-only", "--mute-audio"]
START_TIMEOUT = 60.0  # seconds for the server to write its address
PAGE_TIMEOUT = 60_000  # ms for JupyterLab to show a notebook


def unavailable() -> str | None:
    """Why the browser tests cannot run here (one line), or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install -e '.[test]')"
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM} (Debian's chromium package; ./run test installs it with apt)"
    return None


class JupyterLab:
    """One JupyterLab server on 127.0.0.1 serving `folder`, stopped by `close()` or at the end of `with`."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.token = secrets.token_hex(16)
        self._home = Path(tempfile.mkdtemp(prefix="netlab-jupyterlab-"))
        settings = self._home / "settings" / "@jupyterlab" / "apputils-extension"
        settings.mkdir(parents=True)
        # No "Would you like to receive official Jupyter news?" toast over the notebook, no update check.
        (settings / "notification.jupyterlab-settings").write_text(json.dumps({"fetchNews": "false",
                                                                                "checkForUpdates": False}))
        # Every cell in the page, not only those scrolled into view, so the test can read every prompt.
        notebook = self._home / "settings" / "@jupyterlab" / "notebook-extension"
        notebook.mkdir(parents=True)
        # recordTiming: each cell's start and end in its metadata, for bench/series.py's slowest cells.
        (notebook / "tracker.jupyterlab-settings").write_text(json.dumps({"windowingMode": "none", "recordTiming": True}))
        env = dict(os.environ, JUPYTERLAB_SETTINGS_DIR=str(self._home / "settings"),
                   JUPYTERLAB_WORKSPACES_DIR=str(self._home / "workspaces"),
                   JUPYTER_RUNTIME_DIR=str(self._home / "runtime"))
        env.pop("NETLAB_RECORDED", None)  # live, as a student's notebook runs
        command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
                   "--ServerApp.port=0", "--ServerApp.port_retries=0", f"--IdentityProvider.token={self.token}",
                   f"--ServerApp.root_dir={self.folder}", "--ServerApp.open_browser=False"]
        if os.geteuid() == 0:
            command.append("--ServerApp.allow_root=True")
        self._log = open(self._home / "server.log", "wb")  # noqa: SIM115  (closed in close())
        self.process = subprocess.Popen(command, stdout=self._log, stderr=subprocess.STDOUT, env=env,
                                        start_new_session=True)
        try:
            self.url = self._wait_for_address()
        except BaseException:
            self.close()
            raise

    def _wait_for_address(self) -> str:
        """The server's base URL, read from the file it writes once it listens."""
        deadline = time.monotonic() + START_TIMEOUT
        runtime = self._home / "runtime"
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"JupyterLab exited with {self.process.returncode}: {self.log()[-2000:]}")
            for info in runtime.glob("jpserver-*.json") if runtime.exists() else []:
                try:
                    data = json.loads(info.read_text())
                except (OSError, ValueError):
                    continue  # being written
                return f"http://127.0.0.1:{data['port']}"
            time.sleep(0.1)
        raise TimeoutError(f"JupyterLab did not start within {START_TIMEOUT:.0f} s: {self.log()[-2000:]}")

    def log(self) -> str:
        return (self._home / "server.log").read_text(errors="replace")

    def open_url(self, name: str) -> str:
        """The address of notebook `name` (relative to the folder) in a workspace of its own, reset."""
        workspace = Path(name).stem.replace(".", "-")
        return f"{self.url}/lab/workspaces/{workspace}/tree/{name}?reset&token={self.token}"

    def api(self, path: str) -> Any:
        """GET the server's REST API at `path` (e.g. "/api/sessions"), parsed from JSON."""
        import urllib.request

        request = urllib.request.Request(self.url + path, headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())

    def kernel_ready(self, name: str) -> bool:
        """True when notebook `name` has a kernel that is idle and connected to the page."""
        for session in self.api("/api/sessions"):
            kernel = session.get("kernel") or {}
            if session.get("path") == name and kernel.get("execution_state") == "idle" and kernel.get("connections"):
                return True
        return False

    def shut_down_kernels(self) -> None:
        """End every session and its kernel: a finished notebook's kernel would hold memory and the lab's helper."""
        import urllib.request

        for session in self.api("/api/sessions"):
            request = urllib.request.Request(f"{self.url}/api/sessions/{session['id']}", method="DELETE",
                                             headers={"Authorization": f"token {self.token}"})
            with urllib.request.urlopen(request, timeout=30):
                pass

    def close(self) -> None:
        """Stop the server (and its kernels) and remove its temporary folder."""
        if self.process.poll() is None:
            self.process.terminate()  # the server shuts its kernels down on SIGTERM
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, 9)
                self.process.wait(timeout=10)
        self._log.close()
        shutil.rmtree(self._home, ignore_errors=True)

    def __enter__(self) -> JupyterLab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def browser() -> Iterator[Any]:
    """A headless Chromium (Debian's) driven by Playwright; yields the Browser."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Run:
    """A notebook run with Run All Cells: seconds from the click to the last cell done, and the saved notebook."""

    name: str
    seconds: float
    notebook: dict = field(repr=False)

    @property
    def code_cells(self) -> list[dict]:
        return [c for c in self.notebook["cells"] if c["cell_type"] == "code" and "".join(c["source"]).strip()]

    @property
    def unrun(self) -> list[int]:
        """Indexes (among the code cells, from 0) of the cells that did not run."""
        return [i for i, c in enumerate(self.code_cells) if c.get("execution_count") is None]

    def cell_seconds(self) -> list[tuple[float, str]]:
        """(seconds, first line of source) for each code cell that recorded its timing, slowest first."""
        from datetime import datetime

        timed = []
        for cell in self.code_cells:
            execution = cell.get("metadata", {}).get("execution", {})
            start, end = execution.get("iopub.execute_input"), execution.get("shell.execute_reply")
            if start and end:
                seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
                first = next((line for line in "".join(cell["source"]).splitlines()
                              if line.strip() and not line.startswith("#")), "")
                timed.append((seconds, first.strip()))
        return sorted(timed, reverse=True)

    @property
    def errors(self) -> list[str]:
        """Each error output as 'cell N: Name: message'."""
        return [f"cell {i}: {o.get('ename')}: {o.get('evalue')}" for i, c in enumerate(self.code_cells)
                for o in c.get("outputs", []) if o.get("output_type") == "error"]


def open_notebook(page: Any, lab: JupyterLab, name: str) -> None:
    """Open `name` in its own workspace and wait until its kernel is idle, dismissing a Select Kernel dialog."""
    page.goto(lab.open_url(name))
    page.wait_for_selector(".jp-NotebookPanel .jp-Cell", timeout=PAGE_TIMEOUT)
    deadline = time.monotonic() + PAGE_TIMEOUT / 1000
    while time.monotonic() < deadline:
        dialog = page.locator(".jp-Dialog")
        if dialog.count():  # "Select Kernel" on a fresh server: keep the notebook's own kernel
            dialog.get_by_role("button", name="Select").click()
        # The page's own kernel indicator says "idle" before a kernel exists: ask the server.
        if lab.kernel_ready(name) and page.locator(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator"
                                                   "[data-status='idle']").count():
            return
        time.sleep(0.1)
    raise TimeoutError(f"{name}: the kernel was not idle within {PAGE_TIMEOUT // 1000} s")


def command(page: Any, menu: str, item: str) -> None:
    """Click menu `menu`, then its item `item` (JupyterLab's menu bar)."""
    page.locator(".lm-MenuBar-itemLabel", has_text=menu).first.click()
    page.locator(".lm-Menu-itemLabel", has_text=item).first.click()


_PROMPTS = "() => [...document.querySelectorAll('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell " \
           ".jp-InputArea-prompt')].map(e => e.textContent.trim())"


def run_all(page: Any, lab: JupyterLab, name: str, timeout: float = 300.0) -> Run:
    """Open `name`, clear its outputs, Run All Cells, wait for the last cell, save it, and read the saved file."""
    open_notebook(page, lab, name)
    command(page, "Edit", "Clear Outputs of All Cells")
    start = time.perf_counter()
    command(page, "Run", "Run All Cells")
    deadline = time.monotonic() + timeout
    seen_running = False
    while True:
        prompts = page.evaluate(_PROMPTS)
        running = any("*" in p for p in prompts)
        seen_running = seen_running or running or all(p not in ("[ ]:", "") for p in prompts)
        if seen_running and not running:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}: Run All Cells had not finished after {timeout:.0f} s")
        time.sleep(0.05)
    seconds = time.perf_counter() - start
    path = lab.folder / name
    before = path.stat().st_mtime_ns
    command(page, "File", "Save Notebook")
    deadline = time.monotonic() + 30
    while path.stat().st_mtime_ns == before:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{name}: JupyterLab did not save the notebook within 30 s")
        time.sleep(0.05)
    time.sleep(0.2)  # the file is written in one go, but give the write a moment to end
    return Run(name, seconds, json.loads(path.read_text()))


def copy_notebooks(source: Path, target: Path, extra: list[Path] = ()) -> list[str]:
    """Copy the series' notebooks (and what they read beside them) into `target`; return the notebooks' names."""
    names = []
    for item in sorted(source.iterdir()):
        if item.is_dir():
            shutil.copytree(item, target / item.name)
        else:
            shutil.copy2(item, target / item.name)
            if item.suffix == ".ipynb":
                names.append(item.name)
    for item in extra:
        shutil.copy2(item, target / item.name)
    return names
