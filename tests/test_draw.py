"""netlab.draw.ladder, checked on conversations built from scapy packets (no network needed)."""

import subprocess
import sys

import matplotlib.pyplot as plt
import pytest
from matplotlib.colors import to_hex
from matplotlib.figure import Figure
from matplotlib.text import Annotation
from scapy.layers.inet import IP, TCP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from netlab.conversation import Conversation
from netlab.draw import PHASE_COLOURS, ladder

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


def test_states_keep_their_order_on_a_lifeline_in_a_simultaneous_close():
    # Both FINs are on the wire before either arrives: the server enters FIN-WAIT-1 (sending
    # segment 5) before the client's FIN (segment 4) takes it to CLOSING.
    conv = Conversation.from_packets([
        tcp_segment("client", "S", 100, time=1.0),
        tcp_segment("server", "SA", 500, 101, time=1.1),
        tcp_segment("client", "A", 101, 501, time=1.2),
        tcp_segment("client", "FA", 101, 501, time=1.3),
        tcp_segment("server", "FA", 501, 101, time=1.4),
        tcp_segment("client", "A", 102, 502, time=1.5),
        tcp_segment("server", "A", 502, 102, time=1.6),
    ])
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


def test_importing_draw_changes_no_matplotlib_setting_and_loads_no_pyplot():
    code = (
        "import sys, matplotlib\n"
        # Reading rcParams['backend'] would itself load pyplot to resolve it: leave it out.
        "settings = lambda: {k: matplotlib.rcParams[k] for k in matplotlib.rcParams if k != 'backend'}\n"
        "before = settings()\n"
        "import netlab.draw\n"
        "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'\n"
        "assert settings() == before, 'rcParams changed on import'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
