"""netlab.draw.ladder, state_diagram, time_sequence and window_plot, checked on conversations
built from scapy packets or recorded with netlab (no network needed)."""

import subprocess
import sys

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.text import Annotation
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

import netlab
import netlab.core.conversation
from netlab.core.conversation import TRANSITIONS, Conversation
from netlab.core.draw import PHASE_COLOURS, SIDE_COLOURS, TIME_SEQUENCE_COLOURS, ladder, state_diagram, time_sequence, window_plot
from netlab.core.pcapfiles import recorded_packets

CLIENT = ("10.0.0.1", 40000)
SERVER = ("10.0.0.2", 8080)


def tcp_segment(sender: str, flags: str, seq: int, ack: int = 0, payload: bytes = b"", time: float = 0.0):
    """One Ethernet/IP/TCP frame from "client" or "server", dissected as if read from a pcap."""
    src, dst = (CLIENT, SERVER) if sender == "client" else (SERVER, CLIENT)
    pkt = Ether() / IP(src=src[0], dst=dst[0]) / TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq, ack=ack)
    if payload:
        pkt = pkt / Raw(payload)
    pkt = Ether(bytes(pkt))
    pkt.time = time
    return pkt


def make_conversation(messages=(), *, refused=False, source="recorded", isns=(1000, 5000)) -> Conversation:
    """A conversation as a capture would hold it: handshake, each message and its ACK, a 3-segment close.

    `messages` are ("client" | "server", payload) pairs; with `refused`, the server answers the
    SYN with RST-ACK, as a kernel does when nothing listens on the port.
    """
    packets = []
    next_seq = {"client": isns[0], "server": isns[1]}

    def send(sender, flags, payload=b""):
        receiver = "server" if sender == "client" else "client"
        ack = next_seq[receiver] if "A" in flags else 0
        packets.append(tcp_segment(sender, flags, next_seq[sender], ack, payload, time=1000 + len(packets) / 1e4))
        # SYN and FIN each take one sequence number, like a byte of data.
        next_seq[sender] = (next_seq[sender] + len(payload) + ("S" in flags) + ("F" in flags)) % 2**32

    send("client", "S")
    if refused:
        next_seq["server"] = 0
        send("server", "RA")
    else:
        send("server", "SA")
        send("client", "A")
        for sender, payload in messages:
            send(sender, "PA", payload)
            send("server" if sender == "client" else "client", "A")
        send("client", "FA")
        send("server", "FA")
        send("client", "A")
    return Conversation.from_packets(packets, source=source)


@pytest.fixture
def hello():
    """Hello World both ways: 10 segments, as in the lab's first capture."""
    return make_conversation([("client", b"Hello, World!"), ("server", b"Hello, World!")])


def arrows(fig: Figure) -> list[Annotation]:
    (ax,) = fig.axes
    return [a for a in ax.texts if isinstance(a, Annotation) and (a.get_gid() or "").startswith("segment ")]


def texts_by_gid(fig: Figure, prefix: str) -> dict[str, str]:
    (ax,) = fig.axes
    return {t.get_gid(): t.get_text() for t in ax.texts if (t.get_gid() or "").startswith(prefix)}


def all_texts(fig: Figure) -> list[str]:
    (ax,) = fig.axes
    return [t.get_text() for t in ax.texts] + [ax.get_title()]


def test_returns_a_figure_and_leaves_no_pyplot_figure_open(hello):
    fig = ladder(hello)
    assert isinstance(fig, Figure)
    assert plt.get_fignums() == []


def test_one_arrow_per_segment_going_down_the_page_in_time_order(hello):
    drawn = arrows(ladder(hello))
    assert [a.get_gid() for a in drawn] == [f"segment {s.number}" for s in hello.segments]
    departures = [a.xyann[1] for a in drawn]  # y grows down the page (inverted axis)
    assert departures == sorted(departures)
    gaps = {round(b - a, 6) for a, b in zip(departures, departures[1:])}
    assert len(gaps) == 1, "arrows are evenly spaced, not proportional to time"


def test_arrows_point_from_sender_to_receiver_and_slope_down(hello):
    for arrow, segment in zip(arrows(ladder(hello)), hello.segments):
        (x0, y0), (x1, y1) = arrow.xyann, arrow.xy
        assert (x0 < x1) == (segment.direction == "C→S"), segment.label
        assert y1 > y0, "the arrow reaches the receiver a little later (lower) than it left"


def test_labels_show_flags_and_relative_numbers_of_each_segment(hello):
    labels = texts_by_gid(ladder(hello), "label ")
    assert labels == {f"label {s.number}": s.label for s in hello.segments}
    assert labels["label 1"] == "SYN seq=0"
    assert labels["label 2"] == "SYN-ACK seq=0 ack=1"
    assert labels["label 4"] == "PSH-ACK seq=1 ack=1 len=13"
    assert labels["label 9"] == "FIN-ACK seq=14 ack=15"


def test_segment_numbers_in_the_margin(hello):
    numbers = texts_by_gid(ladder(hello), "number ")
    assert numbers == {f"number {s.number}": str(s.number) for s in hello.segments}


def test_lifelines_headed_client_and_server_with_address_and_port(hello):
    texts = all_texts(ladder(hello))
    for header in ("client", "server", "10.0.0.1:40000", "10.0.0.2:8080"):
        assert header in texts


def test_client_lifeline_on_the_left(hello):
    (ax,) = ladder(hello).axes
    position = {t.get_text(): t.get_position()[0] for t in ax.texts}
    assert position["client"] < position["server"]
    assert position["10.0.0.1:40000"] < position["10.0.0.2:8080"]


def test_arrows_coloured_by_phase(hello):
    for arrow, segment in zip(arrows(ladder(hello)), hello.segments):
        assert to_hex(arrow.arrow_patch.get_edgecolor()) == PHASE_COLOURS[segment.phase].lower()


def test_every_phase_named_in_the_margin(hello):
    texts = all_texts(ladder(hello))
    assert {"handshake", "data", "teardown"} <= set(texts)
    assert "reset" not in texts


def test_states_written_where_each_side_changes(hello):
    states = texts_by_gid(ladder(hello), "state ")
    expected = {f"state {side} {number}": state for side, walk in hello.states().items() for number, state in walk}
    assert states == expected
    assert states["state client 1"] == "SYN-SENT"
    assert states["state client 8"] == "FIN-WAIT-1"
    assert states["state server 8"] == "CLOSE-WAIT"


@pytest.fixture
def simultaneous_close() -> Conversation:
    """Both sides send FIN from ESTABLISHED before either FIN arrives, and both pass CLOSING."""
    return Conversation.from_packets([
        tcp_segment("client", "S", 100, time=1.0),
        tcp_segment("server", "SA", 500, 101, time=1.1),
        tcp_segment("client", "A", 101, 501, time=1.2),
        tcp_segment("client", "FA", 101, 501, time=1.3),
        tcp_segment("server", "FA", 501, 101, time=1.4),
        tcp_segment("client", "A", 102, 502, time=1.5),
        tcp_segment("server", "A", 502, 102, time=1.6),
    ])


def test_states_keep_their_order_on_a_lifeline_in_a_simultaneous_close(simultaneous_close):
    # Both FINs are on the wire before either arrives: the server enters FIN-WAIT-1 (sending
    # segment 5) before the client's FIN (segment 4) takes it to CLOSING.
    conv = simultaneous_close
    (ax,) = ladder(conv).axes
    server = [(t.get_text(), t.get_position()[1]) for t in ax.texts if (t.get_gid() or "").startswith("state server")]
    assert [name for name, _ in server] == [state for _, state in conv.states()["server"]]
    heights = [y for _, y in server]
    assert heights == sorted(heights), "a side's states go down its lifeline in the order it went through them"


@pytest.mark.parametrize("source, words", [
    ("recorded", "(recorded capture)"),
    ("live", "(live capture)"),
    ("handshake.pcap", "handshake.pcap"),
])
def test_title_names_the_source(source, words):
    conv = make_conversation([("client", b"hi")], source=source)
    title = ladder(conv).axes[0].get_title()
    assert title.startswith("TCP stream 0")
    assert words in title


def test_title_given_replaces_the_default(hello):
    assert ladder(hello, title="Your first handshake").axes[0].get_title() == "Your first handshake"


def test_refused_connection_draws_syn_and_rst():
    conv = make_conversation(refused=True)
    fig = ladder(conv)
    assert [a.get_gid() for a in arrows(fig)] == ["segment 1", "segment 2"]
    assert texts_by_gid(fig, "label ") == {"label 1": "SYN seq=0", "label 2": "RST-ACK seq=0 ack=1"}
    assert "reset" in all_texts(fig)
    assert to_hex(arrows(fig)[1].arrow_patch.get_edgecolor()) == PHASE_COLOURS["reset"].lower()


def test_figure_grows_with_the_segment_count_at_notebook_width(hello):
    long = make_conversation([("client", b"message %d" % i) for i in range(12)])
    assert len(long.segments) == 30
    short_fig, long_fig = ladder(hello), ladder(long)
    for fig in (short_fig, long_fig):
        assert 8 <= fig.get_figwidth() <= 9
    assert long_fig.get_figheight() > short_fig.get_figheight() * 2


def test_labels_stay_clear_of_neighbouring_labels_and_arrows_at_thirty_segments():
    messages = [("client" if i % 2 else "server", b"x" * (1448 if i % 3 else 7)) for i in range(12)]
    conv = make_conversation(messages, isns=(2**32 - 100, 7))  # numbers wrap: long labels
    fig = ladder(conv)
    fig.draw_without_rendering()
    (ax,) = fig.axes
    labels = [t for t in ax.texts if (t.get_gid() or "").startswith("label ")]
    drawn = arrows(fig)
    assert len(labels) == len(drawn) == 30
    boxes = [t.get_window_extent() for t in labels]
    arrow_boxes = [a.arrow_patch.get_window_extent() for a in drawn]
    for i, box in enumerate(boxes):
        for j in (i - 1, i + 1):
            if 0 <= j < len(boxes):
                assert not box.overlaps(boxes[j]), (labels[i].get_text(), labels[j].get_text())
                assert not box.overlaps(arrow_boxes[j]), (labels[i].get_text(), drawn[j].get_gid())


def test_no_text_smaller_than_9_points(hello):
    (ax,) = ladder(hello).axes
    assert min(t.get_fontsize() for t in ax.texts) >= 9


def test_draws_into_given_axes_and_returns_its_figure(hello):
    fig = Figure(figsize=(8.6, 6))
    ax = fig.add_subplot()
    assert ladder(hello, ax=ax) is fig
    assert len(arrows(fig)) == len(hello.segments)
    assert plt.get_fignums() == []


def test_shows_as_one_png_in_jupyter_without_pyplot(hello):
    formatters = pytest.importorskip("IPython.core.formatters")
    data, _ = formatters.DisplayFormatter().format(ladder(hello))
    assert data["image/png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert data["text/plain"].startswith("<Figure size 860x")


@pytest.mark.slow
def test_importing_draw_changes_no_matplotlib_setting_and_loads_no_pyplot():
    code = (
        "import sys, matplotlib\n"
        # Reading rcParams['backend'] would itself load pyplot to resolve it: leave it out.
        "settings = lambda: {k: matplotlib.rcParams[k] for k in matplotlib.rcParams if k != 'backend'}\n"
        "before = settings()\n"
        "import netlab.core.draw\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
        "assert settings() == before, 'rcParams changed on import'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr


# -- state_diagram: the RFC 9293 state machine, drawn from conversation.TRANSITIONS ------------

TABLE_STATES = {state for state, _ in TRANSITIONS} | set(TRANSITIONS.values())


def by_gid(fig: Figure, prefix: str) -> dict:
    """The texts and patches (boxes, arrows) whose gid starts with `prefix`, by gid."""
    (ax,) = fig.axes
    return {a.get_gid(): a for a in [*ax.texts, *ax.patches] if (a.get_gid() or "").startswith(prefix)}


def highlighted_states(fig: Figure, side: str) -> set[str]:
    """The states whose box carries `side`'s outline, in `side`'s colour."""
    rings = by_gid(fig, f"{side} box ")
    assert {to_hex(r.get_edgecolor()) for r in rings.values()} <= {SIDE_COLOURS[side].lower()}
    return {gid.removeprefix(f"{side} box ").removesuffix(" again") for gid in rings}


def highlighted_transitions(fig: Figure, side: str) -> set[tuple[str, str]]:
    """The table entries drawn over in `side`'s colour, as (state, event)."""
    arrows = by_gid(fig, f"{side} transition ")
    assert {to_hex(a.get_edgecolor()) for a in arrows.values()} <= {SIDE_COLOURS[side].lower()}
    return {tuple(gid.removeprefix(f"{side} transition ").split(" | ")) for gid in arrows}


def numbers_beside(fig: Figure, side: str) -> dict[str, str]:
    """`side`'s segment numbers, by the label they are written beside."""
    return {gid.removeprefix(f"{side} numbers "): t.get_text() for gid, t in by_gid(fig, f"{side} numbers ").items()}


def walk_transitions(walk: list[tuple[int, str]]) -> set[tuple[str, str]]:
    """The table entries that lead from each state of a walk to the next."""
    steps = set(zip([state for _, state in walk], [state for _, state in walk[1:]]))
    return {key for key, nxt in TRANSITIONS.items() if (key[0], nxt) in steps}


@pytest.fixture(scope="module")
def recorded():
    """The conversations netlab ships, by name: what a notebook shows where the lab is refused."""
    return {name: netlab.load_recorded(name).conversation for name in ("handshake", "handshake-slow-close", "refused")}


def test_state_diagram_draws_one_named_box_per_state_in_the_table():
    fig = state_diagram()
    names = {t.get_text() for t in by_gid(fig, "state ").values()}
    assert names == TABLE_STATES
    for state in TABLE_STATES:
        assert by_gid(fig, f"box {state}"), state


def test_every_state_in_the_table_has_a_place_in_the_diagram():
    from netlab.core.draw import _STATE_AT

    assert TABLE_STATES <= set(_STATE_AT), "add the new state's position to _STATE_AT in netlab/draw.py"


def test_state_diagram_draws_one_arrow_per_transition_labelled_with_its_event():
    fig = state_diagram()
    arrows = by_gid(fig, "transition ")
    labels = {gid.removeprefix("event "): t.get_text() for gid, t in by_gid(fig, "event ").items()}
    expected = {f"{state} | {event}" for state, event in TRANSITIONS}
    assert {gid.removeprefix("transition ") for gid in arrows} == expected
    assert labels == {f"{state} | {event}": event for state, event in TRANSITIONS}
    assert labels["SYN-SENT | recv SYN-ACK"] == "recv SYN-ACK"
    assert labels["FIN-WAIT-1 | recv ACK of FIN"] == "recv ACK of FIN"


def test_state_diagram_reads_the_table_so_a_transition_added_there_appears(monkeypatch):
    # RFC 9293's passive OPEN and the 2MSL timeout, which the lessons' table leaves out.
    more = {**TRANSITIONS, ("CLOSED", "passive open"): "LISTEN", ("TIME-WAIT", "timeout 2MSL"): "CLOSED"}
    monkeypatch.setattr(netlab.core.conversation, "TRANSITIONS", more)
    fig = state_diagram()
    assert len(by_gid(fig, "transition ")) == len(TRANSITIONS) + 2
    assert by_gid(fig, "event CLOSED | passive open")["event CLOSED | passive open"].get_text() == "passive open"
    assert "transition TIME-WAIT | timeout 2MSL" in by_gid(fig, "transition ")


def test_state_diagram_names_a_state_it_has_no_place_for(monkeypatch):
    monkeypatch.setattr(netlab.core.conversation, "TRANSITIONS", {**TRANSITIONS, ("LISTEN", "send SYN"): "SYN-SENT-AGAIN"})
    with pytest.raises(ValueError, match="SYN-SENT-AGAIN.*_STATE_AT"):
        state_diagram()


def test_state_diagram_without_a_conversation_highlights_nothing_and_has_no_legend():
    fig = state_diagram()
    assert not by_gid(fig, "client ") and not by_gid(fig, "server ")
    assert fig.axes[0].get_legend() is None
    assert fig.axes[0].get_title() == "TCP states (RFC 9293)"


@pytest.mark.slow
def test_state_diagram_highlights_exactly_the_states_each_side_went_through(recorded):
    conv = recorded["handshake"]
    fig = state_diagram(conv)
    for side, walk in conv.states().items():
        assert highlighted_states(fig, side) == {state for _, state in walk}, side
    assert highlighted_states(fig, "client") == {"CLOSED", "SYN-SENT", "ESTABLISHED", "FIN-WAIT-1", "TIME-WAIT"}
    assert highlighted_states(fig, "server") == {"LISTEN", "SYN-RECEIVED", "ESTABLISHED", "CLOSE-WAIT", "LAST-ACK",
                                                 "CLOSED"}


def test_state_diagram_highlights_exactly_the_transitions_each_side_took(recorded):
    conv = recorded["handshake"]
    fig = state_diagram(conv)
    for side, walk in conv.states().items():
        assert highlighted_transitions(fig, side) == walk_transitions(walk), side
    assert ("FIN-WAIT-1", "recv FIN+ACK of FIN") in highlighted_transitions(fig, "client")
    assert ("LAST-ACK", "recv ACK of FIN") in highlighted_transitions(fig, "server")


def test_state_diagram_writes_the_segment_that_caused_each_step(recorded):
    fig = state_diagram(recorded["handshake"])
    assert numbers_beside(fig, "client") == {
        "event CLOSED | send SYN": "#1", "event SYN-SENT | recv SYN-ACK": "#2",
        "event ESTABLISHED | send FIN": "#8", "event FIN-WAIT-1 | recv FIN+ACK of FIN": "#9",
    }
    assert numbers_beside(fig, "server") == {
        "event LISTEN | recv SYN": "#1", "event SYN-RECEIVED | recv ACK": "#3", "event ESTABLISHED | recv FIN": "#8",
        "event CLOSE-WAIT | send FIN": "#9", "event LAST-ACK | recv ACK of FIN": "#10",
    }
    for side in ("client", "server"):
        for number in by_gid(fig, f"{side} numbers ").values():
            assert to_hex(number.get_color()) == SIDE_COLOURS[side].lower()


def test_state_diagram_greys_the_states_and_transitions_neither_side_took(recorded):
    fig = state_diagram(recorded["handshake"])
    grey = {to_hex(by_gid(fig, f"box {state}")[f"box {state}"].get_edgecolor()) for state in ("CLOSING", "FIN-WAIT-2")}
    assert len(grey) == 1 and grey.isdisjoint({c.lower() for c in SIDE_COLOURS.values()})
    arrow = by_gid(fig, "transition FIN-WAIT-1 | recv FIN")["transition FIN-WAIT-1 | recv FIN"]
    assert to_hex(arrow.get_edgecolor()) in grey
    assert "client transition FIN-WAIT-1 | recv FIN" not in by_gid(fig, "client ")


def test_state_diagram_shows_both_colours_on_a_state_both_sides_visited(recorded):
    fig = state_diagram(recorded["handshake"])
    rings = {to_hex(r.get_edgecolor()) for r in by_gid(fig, "").values()
             if (r.get_gid() or "").endswith("box ESTABLISHED")}
    assert rings == {SIDE_COLOURS["client"].lower(), SIDE_COLOURS["server"].lower()}


def test_state_diagram_four_segment_close_passes_through_fin_wait_2(recorded):
    conv = recorded["handshake-slow-close"]
    fig = state_diagram(conv)
    assert "FIN-WAIT-2" in highlighted_states(fig, "client")
    assert highlighted_transitions(fig, "client") >= {("FIN-WAIT-1", "recv ACK of FIN"), ("FIN-WAIT-2", "recv FIN")}
    assert numbers_beside(fig, "client")["event FIN-WAIT-1 | recv ACK of FIN"] == "#9"
    assert numbers_beside(fig, "client")["event FIN-WAIT-2 | recv FIN"] == "#10"
    assert not by_gid(fig, "client step") and not by_gid(fig, "server step")


def test_state_diagram_refused_connection_goes_back_to_closed_on_the_reset(recorded):
    fig = state_diagram(recorded["refused"])
    assert highlighted_states(fig, "client") == {"CLOSED", "SYN-SENT"}
    assert highlighted_states(fig, "server") == {"CLOSED"}, "nothing listened: the server side stays CLOSED"
    assert highlighted_transitions(fig, "client") == {("CLOSED", "send SYN"), ("SYN-SENT", "recv RST")}
    assert numbers_beside(fig, "client")["event SYN-SENT | recv RST"] == "#2"
    assert not by_gid(fig, "client box CLOSED again"), "the client returns to the CLOSED box it started from"


def test_state_diagram_draws_a_reset_outside_the_table_as_a_dashed_arrow_in_each_sides_colour():
    # The client aborts an established connection: both sides go from ESTABLISHED to CLOSED,
    # a step TRANSITIONS does not hold.
    conv = Conversation.from_packets([
        tcp_segment("client", "S", 100, time=1.0),
        tcp_segment("server", "SA", 500, 101, time=1.1),
        tcp_segment("client", "A", 101, 501, time=1.2),
        tcp_segment("client", "RA", 101, 501, time=1.3),
    ])
    assert ("ESTABLISHED", "CLOSED") not in {(state, nxt) for (state, _), nxt in TRANSITIONS.items()}
    fig = state_diagram(conv)
    for side, event in (("client", "send RST"), ("server", "recv RST")):
        (arrow,) = [a for gid, a in by_gid(fig, f"{side} step ").items() if "label" not in gid]
        assert arrow.get_linestyle() == "--"
        assert to_hex(arrow.get_edgecolor()) == SIDE_COLOURS[side].lower()
        label = f"{side} step label ESTABLISHED -> CLOSED"
        assert by_gid(fig, label)[label].get_text() == event
        assert numbers_beside(fig, side)[label] == "#4"
        assert "CLOSED" in highlighted_states(fig, side)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "a step not in the table" in legend


def test_state_diagram_gives_both_sides_a_track_on_a_transition_both_took(simultaneous_close):
    # A simultaneous close: both sides send FIN from ESTABLISHED and go through CLOSING.
    conv = simultaneous_close
    fig = state_diagram(conv)
    shared = highlighted_transitions(fig, "client") & highlighted_transitions(fig, "server")
    assert shared == {("ESTABLISHED", "send FIN"), ("FIN-WAIT-1", "recv FIN"), ("CLOSING", "recv ACK of FIN")}
    assert numbers_beside(fig, "client")["event FIN-WAIT-1 | recv FIN"] == "#5"
    assert numbers_beside(fig, "server")["event FIN-WAIT-1 | recv FIN"] == "#4"


@pytest.mark.parametrize("source, words", [
    ("recorded", "(recorded capture)"),
    ("live", "(live capture)"),
    ("handshake.pcap", "handshake.pcap"),
])
def test_state_diagram_title_names_the_stream_and_source(source, words):
    title = state_diagram(make_conversation(source=source)).axes[0].get_title()
    assert title.startswith("TCP states in stream 0")
    assert words in title


def test_state_diagram_title_given_replaces_the_default(hello):
    assert state_diagram(hello, title="Where each side went").axes[0].get_title() == "Where each side went"


def test_state_diagram_legend_names_client_and_server_in_their_colours(hello):
    legend = state_diagram(hello).axes[0].get_legend()
    entries = {t.get_text(): to_hex(h.get_color()) for t, h in zip(legend.get_texts(), legend.legend_handles)}
    assert entries["client"] == SIDE_COLOURS["client"].lower()
    assert entries["server"] == SIDE_COLOURS["server"].lower()


def test_state_diagram_says_the_resets_it_leaves_out():
    (note,) = by_gid(state_diagram(), "note resets").values()
    assert "RST" in note.get_text() and "CLOSED" in note.get_text()
    # The states a RST does not close are read from the table: exactly those are named.
    from netlab.core.conversation import RESETTABLE as _RESETTABLE
    from netlab.core.conversation import TRANSITIONS

    spared = {state for pair in TRANSITIONS.items() for state in (pair[0][0], pair[1])} - _RESETTABLE
    named = {state for state in spared | _RESETTABLE if state in note.get_text()}
    assert named == spared | {"CLOSED"}


@pytest.mark.slow
def test_state_diagram_labels_stay_clear_of_boxes_and_of_each_other(recorded):
    for conv in (None, *recorded.values()):
        fig = state_diagram(conv)
        fig.draw_without_rendering()
        (ax,) = fig.axes
        words = [t for t in ax.texts if t.get_gid() and not t.get_gid().startswith("state ")]
        extents = {t.get_gid(): (t.get_bbox_patch() or t).get_window_extent() for t in words}
        boxes = {p.get_gid(): p.get_window_extent() for p in ax.patches if " box " in f" {p.get_gid()}"}
        names = list(extents)
        for i, a in enumerate(names):
            for b in names[i + 1:]:
                assert not extents[a].overlaps(extents[b]), (a, b)
            for box, extent in boxes.items():
                assert not extents[a].overlaps(extent), (a, box)
            assert fig.bbox.x0 <= extents[a].x0 and extents[a].x1 <= fig.bbox.x1, a


def test_state_diagram_no_text_smaller_than_9_points(hello):
    (ax,) = state_diagram(hello).axes
    assert min(t.get_fontsize() for t in ax.texts) >= 9
    assert min(t.get_fontsize() for t in ax.get_legend().get_texts()) >= 9


def test_state_diagram_fits_a_notebook_column(hello):
    fig = state_diagram(hello)
    assert 8 <= fig.get_figwidth() <= 9
    assert 7 <= fig.get_figheight() <= 8.5


def test_state_diagram_leaves_no_pyplot_figure_open(hello):
    assert isinstance(state_diagram(hello), Figure)
    assert isinstance(state_diagram(), Figure)
    assert plt.get_fignums() == []


def test_state_diagram_draws_into_given_axes_and_returns_its_figure(hello):
    fig = Figure(figsize=(8.6, 8))
    ax = fig.add_subplot()
    assert state_diagram(hello, ax=ax) is fig
    assert len(by_gid(fig, "transition ")) == len(TRANSITIONS)
    assert plt.get_fignums() == []


@pytest.mark.slow
def test_state_diagram_shows_as_one_png_in_jupyter_without_pyplot(hello):
    formatters = pytest.importorskip("IPython.core.formatters")
    data, _ = formatters.DisplayFormatter().format(state_diagram(hello))
    assert data["image/png"][:8] == b"\x89PNG\r\n\x1a\n"
    assert data["text/plain"].startswith("<Figure size 860x")


# ---------------------------------------------------------------------------
# time_sequence and window_plot


def lines_by_gid(fig: Figure, prefix: str) -> dict[str, Line2D]:
    (ax,) = fig.axes
    return {line.get_gid(): line for line in ax.lines if (line.get_gid() or "").startswith(prefix)}


@pytest.fixture(scope="module")
def blocked_send() -> Conversation:
    """A real capture: a receiver that stops reading, its window falls to 0, the sender probes."""
    return Conversation.from_packets(recorded_packets("errors-blocked-send"), source="recorded")


@pytest.fixture(scope="module")
def fast_retransmit() -> Conversation:
    """Five 100-byte segments, the 2nd lost; three duplicate ACKs, the 2nd sent again, all acked."""
    ci, si = 1000, 5000
    packets = [tcp_segment("client", "S", ci, time=0.0), tcp_segment("server", "SA", si, ci + 1, time=0.001),
               tcp_segment("client", "A", ci + 1, si + 1, time=0.002)]
    for k in (0, 2, 3, 4):
        packets.append(tcp_segment("client", "PA", ci + 1 + 100 * k, si + 1, b"x" * 100, time=0.01 + k / 100))
        packets.append(tcp_segment("server", "A", si + 1, ci + 101, time=0.011 + k / 100))
    packets.append(tcp_segment("client", "PA", ci + 101, si + 1, b"x" * 100, time=0.1))
    packets.append(tcp_segment("server", "A", si + 1, ci + 501, time=0.101))
    packets.append(tcp_segment("client", "FA", ci + 501, si + 1, time=0.2))
    return Conversation.from_packets(packets, source="recorded")


def bars_by_kind(fig: Figure) -> dict[str, list[tuple[float, float, float]]]:
    """The bars drawn, by kind ("data", "retransmission"): (time, first byte, byte after) each, in drawing order."""
    (ax,) = fig.axes
    found = {}
    for collection in ax.collections:
        gid = collection.get_gid() or ""
        if gid.endswith(" bars"):
            found[gid.removesuffix(" bars")] = [(a[0], a[1], b[1]) for a, b in collection.get_segments()]
    return found


def test_time_sequence_draws_one_bar_per_data_segment_over_its_bytes(fast_retransmit):
    fig = time_sequence(fast_retransmit)
    bars = bars_by_kind(fig)
    data = [s for s in fast_retransmit.segments if s.direction == "C→S" and s.length]
    drawn = sorted(bars["data"] + bars["retransmission"])
    # a vertical bar at the segment's time, in ms, over its bytes
    assert drawn == sorted((s.time * 1000, s.seq, s.seq + s.length) for s in data)
    (caps,) = lines_by_gid(fig, "data caps").values()
    assert len(caps.get_xdata()) == 2 * len(bars["data"]), "a cap at each end of each bar"
    assert plt.get_fignums() == []


def test_time_sequence_marks_each_retransmission_in_its_own_colour(fast_retransmit):
    fig = time_sequence(fast_retransmit)
    (marks,) = lines_by_gid(fig, "retransmissions").values()
    (resent,) = fast_retransmit.retransmissions()
    assert list(marks.get_xdata()) == [resent.time * 1000]
    bars = bars_by_kind(fig)
    assert bars["retransmission"] == [(resent.time * 1000, resent.seq, resent.seq + resent.length)]
    first_sent = [s for s in fast_retransmit.segments if s.length and not s.retransmission]
    assert bars["data"] == [(s.time * 1000, s.seq, s.seq + s.length) for s in first_sent]
    (ax,) = fig.axes
    colour = {c.get_gid(): to_hex(c.get_color()[0]) for c in ax.collections}
    assert colour == {"data bars": TIME_SEQUENCE_COLOURS["data"].lower(),
                      "retransmission bars": TIME_SEQUENCE_COLOURS["retransmission"].lower()}
    assert "retransmission" in [t.get_text() for t in ax.get_legend().get_texts()]


def test_time_sequence_ack_line_steps_through_the_other_sides_acks(fast_retransmit):
    fig = time_sequence(fast_retransmit)
    (ack_line,) = lines_by_gid(fig, "ack line").values()
    (window_line,) = lines_by_gid(fig, "window line").values()
    answers = [s for s in fast_retransmit.segments if s.direction == "S→C" and s.ack is not None]
    assert list(ack_line.get_ydata()) == [s.ack for s in answers]
    assert list(window_line.get_ydata()) == [s.ack + s.window for s in answers]
    assert ack_line.get_drawstyle() == "steps-post"
    (dups,) = lines_by_gid(fig, "dup acks").values()
    assert list(dups.get_ydata()) == [s.ack for s in fast_retransmit.dup_acks()] and len(dups.get_ydata()) == 3


def test_time_sequence_marks_syn_and_fin(fast_retransmit):
    fig = time_sequence(fast_retransmit)
    (syns,) = lines_by_gid(fig, "SYNs").values()
    assert list(syns.get_xdata()) == [fast_retransmit.segments[0].time * 1000]
    fin = [s for s in fast_retransmit.segments if s.has("FIN")][0]
    (fins,) = lines_by_gid(fig, "FINs").values()
    assert list(fins.get_data()[1]) == [fin.seq + fin.length], "a FIN's number follows its data"
    (ax,) = fig.axes
    labels = sorted(t.get_gid() for t in ax.texts if "label" in (t.get_gid() or ""))
    assert labels == [f"fin label {fin.number}", "syn label 1"]


def test_time_sequence_of_the_other_direction_uses_the_clients_acks(blocked_send):
    fig = time_sequence(blocked_send, "S→C")
    (ack_line,) = lines_by_gid(fig, "ack line").values()
    assert list(ack_line.get_ydata()) == [s.ack for s in blocked_send.segments if s.direction == "C→S" and s.ack is not None]
    assert bars_by_kind(fig) == {}, "the server sent no data in this capture"


def test_time_sequence_window_line_meets_the_ack_line_at_a_zero_window(blocked_send):
    fig = time_sequence(blocked_send)
    (ack_line,) = lines_by_gid(fig, "ack line").values()
    (window_line,) = lines_by_gid(fig, "window line").values()
    gaps = [w - a for a, w in zip(ack_line.get_ydata(), window_line.get_ydata())]
    assert 0 in gaps and gaps.count(0) == len(blocked_send.zero_windows())
    (probes,) = lines_by_gid(fig, "window probes").values()
    assert len(probes.get_xdata()) == len(blocked_send.window_probes()) >= 1


def test_time_sequence_in_seconds_for_a_long_conversation():
    conv = Conversation.from_packets(recorded_packets("errors-connect-timeout"), source="recorded")
    fig = time_sequence(conv)
    (ax,) = fig.axes
    assert ax.get_xlabel() == "time (s)"
    (marks,) = lines_by_gid(fig, "retransmissions").values()
    assert len(marks.get_xdata()) == len(conv.retransmissions()) >= 2


def test_time_sequence_refuses_an_unknown_direction(hello):
    with pytest.raises(ValueError, match="direction must be"):
        time_sequence(hello, "client")


def test_window_plot_reaches_zero_where_the_capture_has_a_zero_window(blocked_send):
    fig = window_plot(blocked_send)
    lines = lines_by_gid(fig, "window ")
    server, client = lines["window server"], lines["window client"]
    assert min(server.get_ydata()) == 0 and min(client.get_ydata()) > 0
    assert list(server.get_ydata()) == [s.window for s in blocked_send.segments if s.direction == "S→C"]
    zero = lines_by_gid(fig, "zero window ")
    assert sorted(zero) == sorted(f"zero window {s.number}" for s in blocked_send.zero_windows())
    assert to_hex(server.get_color()) == SIDE_COLOURS["server"].lower()


def test_window_plot_leaves_resets_out(recorded):
    fig = window_plot(recorded["refused"])
    assert lines_by_gid(fig, "zero window ") == {}
    assert list(lines_by_gid(fig, "window ")) == ["window client"]


@pytest.mark.parametrize("draw", [time_sequence, window_plot])
def test_time_plots_fit_a_notebook_column_and_show_in_jupyter(blocked_send, draw):
    fig = draw(blocked_send)
    assert fig.get_size_inches()[0] <= 8.6
    assert fig._repr_png_().startswith(b"\x89PNG")
    assert plt.get_fignums() == []
    texts = [t for t in fig.findobj(lambda a: hasattr(a, "get_fontsize") and hasattr(a, "get_text")) if t.get_text()]
    assert min(t.get_fontsize() for t in texts) >= 9


@pytest.mark.parametrize("draw", [time_sequence, window_plot])
def test_time_plots_draw_into_given_axes(blocked_send, draw):
    outer = Figure()
    ax = outer.add_subplot()
    assert draw(blocked_send, ax=ax) is outer
    assert ax.lines


def test_time_sequence_legend_names_only_what_is_drawn():
    conv = Conversation.from_packets(recorded_packets("errors-connect-timeout"), source="recorded")
    (ax,) = time_sequence(conv).axes
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["retransmission", "SYN / FIN"]
