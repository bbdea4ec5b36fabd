"""Every notebook in a real JupyterLab, in headless Chromium: Run All Cells with outputs cleared, no
error, no cell left unrun; and the explorer clicked through, with the time a click takes to show.

One JupyterLab server for the session, on 127.0.0.1 with a random port and token, serving a copy
of notebooks/ (JupyterLab saves what it runs) plus tests/data/explorer.ipynb. Playwright for
Python drives Debian's Chromium (/usr/bin/chromium; ./run test installs it with apt): no browser
is downloaded. Where either is missing the tests are skipped, and the reason is printed.
"""

from __future__ import annotations

import statistics
import sys
import warnings
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
import labdriver  # noqa: E402  (tests/labdriver.py, shared with bench/series.py)

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parent.parent
DATA = Path(__file__).parent / "data"
NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"))
CLICK_BUDGET = 0.100  # seconds from a click on Next to the new segment on screen (issue 13)

_why = labdriver.unavailable()
if _why:
    warnings.warn(f"browser tests skipped: {_why}", stacklevel=1)
    pytest.skip(f"browser tests skipped: {_why}", allow_module_level=True)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    folder = tmp_path_factory.mktemp("notebooks")
    labdriver.copy_notebooks(ROOT / "notebooks", folder, extra=[DATA / "explorer.ipynb", DATA / "long_conversation.py"])
    with labdriver.JupyterLab(folder) as server:
        yield server


@pytest.fixture(scope="module")
def page(lab):
    with labdriver.browser() as chromium:
        page = chromium.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        yield page


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_runs_clean_in_jupyterlab(page, lab, name):
    run = labdriver.run_all(page, lab, name)
    lab.shut_down_kernels()
    print(f"{name}: {run.seconds:.1f} s in the browser")
    assert run.errors == [], f"{name}: error outputs: {run.errors}"
    assert run.unrun == [], f"{name}: code cells left unrun (index among code cells): {run.unrun}"


# The explorers of tests/data/explorer.ipynb, in order: a 1,001-segment conversation, a Run panel (03's close
# delay), a failing panel, and notebook 09's loss and queue panel.
_CURRENT = """(index) => {
    const root = document.querySelectorAll('.netlab-explorer')[index];
    const svg = root.querySelector('svg.netlab-ladder');
    const states = root.querySelector('.netlab-states');
    const highlighted = svg.querySelector('g.segment.current');
    return {current: Number(svg.dataset.current), highlighted: Number(highlighted.dataset.number),
            client: states.dataset.client, server: states.dataset.server};
}"""

# Click Next in explorer `index` and resolve with the milliseconds until the ladder shows the next segment.
_TIMED_NEXT = """(index) => new Promise((resolve, reject) => {
    const root = document.querySelectorAll('.netlab-explorer')[index];
    const before = root.querySelector('svg.netlab-ladder').dataset.current;
    const next = [...root.querySelectorAll('button')].find(b => b.textContent.trim() === 'Next');
    const start = performance.now();
    const done = () => {
        const svg = root.querySelector('svg.netlab-ladder');
        if (svg && svg.dataset.current !== before) {
            observer.disconnect();
            resolve(performance.now() - start);
            return true;
        }
        return false;
    };
    const observer = new MutationObserver(done);
    observer.observe(root, {subtree: true, childList: true, attributes: true, characterData: true});
    setTimeout(() => { observer.disconnect(); reject(new Error('no new segment within 5 s')); }, 5000);
    next.click();
})"""


@pytest.fixture(scope="module")
def explorers(page, lab):
    run = labdriver.run_all(page, lab, "explorer.ipynb")
    assert run.errors == [] and run.unrun == []
    page.locator(".netlab-explorer").nth(3).wait_for()
    yield page
    lab.shut_down_kernels()


def test_next_moves_the_highlighted_segment_and_the_states(explorers):
    page = explorers
    explorer = page.locator(".netlab-explorer").first
    assert page.evaluate(_CURRENT, 0) == {"current": 1, "highlighted": 1, "client": "SYN-SENT", "server": "SYN-RECEIVED"}
    explorer.get_by_role("button", name="Next").click()  # the accessible name a screen reader announces
    page.wait_for_function("() => document.querySelector('.netlab-explorer svg.netlab-ladder').dataset.current === '2'")
    explorer.get_by_role("button", name="Next").click()
    page.wait_for_function("() => document.querySelector('.netlab-explorer svg.netlab-ladder').dataset.current === '3'")
    assert page.evaluate(_CURRENT, 0) == {"current": 3, "highlighted": 3, "client": "ESTABLISHED",
                                          "server": "ESTABLISHED"}
    explorer.get_by_role("button", name="Previous").click()
    page.wait_for_function("() => document.querySelector('.netlab-explorer svg.netlab-ladder').dataset.current === '2'")
    assert page.evaluate(_CURRENT, 0)["server"] == "SYN-RECEIVED"


def test_the_slider_steps_with_the_arrow_keys(explorers):
    page = explorers
    before = page.evaluate(_CURRENT, 0)["current"]
    page.locator(".netlab-explorer").first.get_by_role("slider").first.focus()
    page.keyboard.press("ArrowRight")
    page.wait_for_function(f"() => document.querySelector('.netlab-explorer svg.netlab-ladder').dataset.current === "
                           f"'{before + 1}'")


def test_a_click_on_next_shows_the_next_of_1000_segments_within_100_ms(explorers):
    page = explorers
    start = page.evaluate(_CURRENT, 0)["current"]
    times = [page.evaluate(_TIMED_NEXT, 0) / 1000 for _ in range(40)]
    after = page.evaluate(_CURRENT, 0)
    assert after["current"] == after["highlighted"] == start + 40
    median, p90, slowest = statistics.median(times), statistics.quantiles(times, n=10)[-1], max(times)
    print(f"click on Next to new segment shown: median {median * 1000:.0f} ms, 90th percentile {p90 * 1000:.0f} ms, "
          f"slowest {slowest * 1000:.0f} ms of {len(times)}, on 1,001 segments")
    assert median <= CLICK_BUDGET, f"median {median * 1000:.0f} ms"
    # The slow tenth of the clicks depends on the machine: each click is answered by the kernel's
    # Python, which shares 2 cores with whatever else runs. Idle, the 90th percentile was 69-90 ms;
    # beside a second full test run it reached 115 ms (median 68 ms). Twice the budget for the slow
    # tenth still catches an explorer that got slower, without failing on a busy machine.
    assert p90 <= 2 * CLICK_BUDGET, f"90th percentile {p90 * 1000:.0f} ms"


@pytest.mark.parametrize(("index", "parameter", "value"), [(1, "close_delay", "0.3"), (3, "queue", "20")],
                         ids=["03-close-delay", "09-loss-and-queue"])
def test_run_re_runs_the_experiment_and_updates_the_explorer(explorers, index, parameter, value):
    page = explorers
    panel = page.locator(".netlab-explorer").nth(index)
    status = panel.locator(".netlab-status")
    assert "✔" in status.inner_text() and "live" in status.inner_text()
    panel.get_by_role("button", name="Next").click()
    page.wait_for_function(f"() => document.querySelectorAll('.netlab-explorer')[{index}]"
                           ".querySelector('svg.netlab-ladder').dataset.current === '2'")
    control = panel.get_by_label(parameter)
    control.fill(value)
    control.press("Enter")
    assert status.inner_text().startswith("✔ run 1:")
    panel.get_by_role("button", name="Run").click()
    page.wait_for_function(f"() => document.querySelectorAll('.netlab-explorer')[{index}]"
                           ".querySelector('.netlab-status').textContent.includes('✔ run 2:')", timeout=60_000)
    assert page.evaluate(_CURRENT, index)["current"] == 1  # a new run starts at its first segment


def test_a_failed_run_shows_its_error_in_the_panel(explorers):
    page = explorers
    status = page.locator(".netlab-explorer").nth(2).locator(".netlab-status")
    assert status.inner_text() == "✘ run 1 failed: ValueError: window must be 1..65535 bytes, not 0"


def test_a_failed_run_of_09s_panel_shows_its_error_in_the_panel(explorers):
    page = explorers
    panel = page.locator(".netlab-explorer").nth(3)
    status = panel.locator(".netlab-status")
    queue = panel.get_by_label("queue")
    queue.fill("1")  # the bottleneck holds 2 to 2000 packets
    queue.press("Enter")
    panel.get_by_role("button", name="Run").click()
    page.wait_for_function("() => document.querySelectorAll('.netlab-explorer')[3]"
                           ".querySelector('.netlab-status').textContent.includes('failed')", timeout=60_000)
    assert "ValueError: queue must be a whole number from 2 to 2000, not 1" in status.inner_text()
