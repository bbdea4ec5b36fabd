"""netlab.explore: stepping through a conversation, the static view where widgets cannot run, the Run panel."""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path

import pytest

import netlab
from netlab.core import explore as ex

sys.path.insert(0, str(Path(__file__).parent / "data"))
import long_conversation  # noqa: E402  (tests/data is not a package)


@pytest.fixture(scope="module")
def handshake():
    return netlab.load_recorded("handshake").conversation


@pytest.fixture(scope="module")
def long():
    return netlab.Conversation(long_conversation.packets(497), source="made")


@pytest.mark.slow
def test_each_step_shows_the_state_walk_of_the_conversation(handshake):
    steps = ex.steps(handshake)
    assert len(steps) == len(handshake.segments)
    for side, walk in handshake.states().items():
        for number, state in walk[1:]:
            assert getattr(steps[number - 1], f"{side}_state") == state
    assert (steps[-1].client_state, steps[-1].server_state) == ("TIME-WAIT", "CLOSED")


def test_in_flight_counts_what_is_sent_and_not_yet_acknowledged(handshake):
    steps = {s.number: s for s in ex.steps(handshake)}
    data = handshake.phase("data")[0]
    assert steps[1].in_flight == {"C→S": 1, "S→C": 0}  # the SYN uses one sequence number
    assert steps[data.number].in_flight["C→S"] == data.length
    acked = next(s for s in handshake.segments if s.number > data.number and s.ack == data.seq + data.length)
    assert steps[acked.number].in_flight["C→S"] == 0
    assert steps[len(steps)].window == {"client": handshake.segments[-1].window,
                                        "server": [s for s in handshake.segments if s.direction == "S→C"][-1].window}


@pytest.mark.slow
def test_next_and_previous_move_the_highlighted_arrow_and_the_states(handshake):
    explorer = netlab.explore(handshake)
    assert explorer.current == 1
    assert 'data-current="1"' in explorer._view.value
    assert 'data-client="SYN-SENT"' in explorer._view.value
    explorer.next()
    explorer.next()
    assert explorer.current == 3
    assert re.search(r'<g class="segment current" data-number="3">', explorer._view.value)
    assert 'data-client="ESTABLISHED" data-server="ESTABLISHED"' in explorer._view.value
    explorer.previous()
    assert explorer.current == 2
    explorer.go(99)
    assert explorer.current == len(handshake.segments)
    assert explorer._next.disabled and not explorer._previous.disabled


def test_the_details_show_the_layers_and_header_fields(handshake):
    explorer = netlab.explore(handshake)
    explorer.go(handshake.phase("data")[0].number)
    details = explorer._view.value
    for name, start, end in netlab.draw.header_ranges(handshake.phase("data")[0].packet):
        if name != "padding":
            assert f"{name}: bytes {start}–{end - 1} ({end - start})" in details
    assert "<code>sport</code>=" in details and "<code>ttl</code>=" in details
    assert "b&#x27;Hello, World!&#x27;" in details


@pytest.mark.slow
def test_the_ladder_window_stays_small_on_a_long_conversation(long):
    svg = ex.ladder_svg(long, 500)
    assert len(long.segments) == 1001
    assert svg.count('<g class="segment') == ex.WINDOW_ROWS
    assert 'data-first="495" data-last="505"' in svg
    assert "494 earlier segments" in svg and "496 later segments" in svg


def test_a_step_on_1000_segments_takes_under_100_ms(long):
    explorer = netlab.explore(long)
    times = []
    for _ in range(100):
        start = time.perf_counter()
        explorer.next()
        times.append(time.perf_counter() - start)
    assert explorer.current == 101
    assert max(times) < 0.1, f"slowest step {max(times) * 1000:.1f} ms"


def test_the_static_view_is_a_png_a_line_that_never_changes_and_a_table_without_times_or_ports(handshake):
    bundle = netlab.explore(handshake)._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["image/png"]
    assert bundle["text/plain"] == ("Explorer: TCP stream 0 (recorded capture); in JupyterLab, Previous, Next and the "
                                    "slider step through its segments")
    text = netlab.explore(handshake).text()
    assert str(handshake.client[1]) not in text and " ms" not in text
    lines = text.splitlines()
    assert len(lines) == 2 + len(handshake.segments)
    assert "SYN seq=0" in lines[2] and "SYN-SENT" in lines[2]


def test_the_static_view_of_a_long_conversation_says_how_much_it_leaves_out(long):
    text = netlab.explore(long).text()
    assert text.splitlines()[-1] == f"… and {1001 - ex.STATIC_ROWS} more segments"


def test_run_shows_the_new_conversation():
    names = {0.0: "handshake", 0.5: "handshake-slow-close"}
    explorer = netlab.explore(lambda close_delay: netlab.load_recorded(names[close_delay]), close_delay=0.0)
    panel = explorer.controls
    assert panel.values() == {"close_delay": 0.0}
    first = explorer.conversation
    assert "✔ run 1: 10 segments; recorded" in panel._status.value
    explorer.go(5)
    panel.controls["close_delay"].value = 0.5
    panel._run.click()
    assert explorer.conversation is not first and explorer.current == 1
    assert "✔ run 2: 11 segments" in panel._status.value
    assert panel.error is None


def test_a_result_in_hand_is_shown_without_running_the_experiment_again(handshake):
    calls = []
    explorer = netlab.explore(lambda close_delay: calls.append(close_delay), netlab.load_recorded("handshake"),
                              close_delay=0.0)
    assert calls == [] and len(explorer.conversation.segments) == 10
    assert "✔ run 1: 10 segments; recorded" in explorer.controls._status.value
    with pytest.raises(TypeError, match="takes no parameters, got a second argument"):
        netlab.explore(handshake, handshake)


def test_a_failed_run_says_why_in_the_panel_and_raises_nothing():
    def experiment(window: int):
        raise ValueError(f"window must be 1..65535 bytes, not {window}")

    explorer = netlab.explore(experiment, window=0)
    panel = explorer.controls
    assert isinstance(panel.error, ValueError)
    assert "✘ run 1 failed: ValueError: window must be 1..65535 bytes, not 0" in panel._status.value
    assert explorer.current == 0 and "no conversation" in explorer._view.value
    assert explorer.text() == "Explorer: no conversation yet"
    assert not panel._run.disabled  # ready for another try


def test_a_run_that_returns_no_conversation_is_named():
    explorer = netlab.explore(lambda n: n * 2, n=1)
    assert "TypeError: the experiment returned int, which has no conversation to explore" in explorer.controls._status.value


def test_controls_follow_the_values_given():
    panel = netlab.explore(lambda a, b, c, d, e: netlab.load_recorded("handshake"), a=1, b=0.5, c=True, d="x",
                           e=(1, 10)).controls
    kinds = {name: type(control).__name__ for name, control in panel.controls.items()}
    assert kinds == {"a": "IntText", "b": "FloatText", "c": "Checkbox", "d": "Text", "e": "IntSlider"}
    with pytest.raises(TypeError, match="no control for None"):
        netlab.explore(lambda x: None, x=None)


def test_explore_refuses_parameters_for_a_conversation(handshake):
    with pytest.raises(TypeError, match="takes no parameters, got window"):
        netlab.explore(handshake, window=3)
