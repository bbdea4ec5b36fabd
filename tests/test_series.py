"""The series holds together: 00's table lists exactly the notebooks that exist, under their own
titles, and each notebook's **Next:** link leads to the following one (the last one's back to 00).

Like jakevdp's navigation script, but as a test: a notebook added, renamed or retitled without
updating the start page or the previous notebook's link fails here instead of drifting.
The end of the file tests the exercise checks of notebooks 00 to 02.
"""

import json
import re
from pathlib import Path

import pytest

NOTEBOOKS_DIR = Path(__file__).parent.parent / "notebooks"
START = NOTEBOOKS_DIR / "00-start-here.ipynb"
# The series as planned: number → title, read from README's table of notebooks (one row per notebook,
# the only list of them). A notebook's own first line must agree.
README_ROW = re.compile(r"^\| \[(\d\d) · ([^\]]+)\]\(notebooks/\1-[a-z0-9-]+\.ipynb\)", re.M)
SERIES = dict(README_ROW.findall((Path(__file__).parent.parent / "README.md").read_text()))
LINK = re.compile(r"\[(\d\d) · ([^\]]+)\]\(([^)\s]+)\)")


def _existing() -> list[Path]:
    return sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]-*.ipynb"))


def _cells(path: Path) -> list[dict]:
    return json.loads(path.read_text(encoding="utf-8"))["cells"]


def _title(path: Path) -> str:
    """The title from a notebook's first line, '# NN · Title'."""
    first = "".join(_cells(path)[0]["source"]).splitlines()[0]
    match = re.fullmatch(rf"# {path.name[:2]} · (.+)", first.strip())
    assert match, f"{path.name}: the first line is {first!r}, not '# {path.name[:2]} · Title'"
    return match.group(1)


def _table_links() -> list[tuple[str, str, str]]:
    """(number, title, target) for each row of 00's table of notebooks."""
    rows = []
    for cell in _cells(START):
        if cell["cell_type"] != "markdown":
            continue
        for line in "".join(cell["source"]).splitlines():
            if line.startswith("| [") and (match := LINK.match(line[2:])):
                rows.append(match.groups())
    return rows


def test_readmes_table_plans_the_series_from_00_without_a_gap():
    assert list(SERIES) == [f"{n:02d}" for n in range(len(SERIES))] and len(SERIES) >= 11


def test_every_notebook_is_a_planned_part_of_the_series_with_its_title():
    for path in _existing():
        number = path.name[:2]
        assert number in SERIES, f"{path.name} is not in the series (README's table of notebooks)"
        assert _title(path) == SERIES[number], f"{path.name}: title differs from the series plan"


def test_start_page_lists_every_notebook_in_order_under_its_own_title():
    rows = _table_links()
    assert [number for number, _, _ in rows] == sorted(SERIES), "00's table lists every notebook of the series, in order"
    for number, title, target in rows:
        assert title == SERIES[number], f"row {number}: {title!r}"
        assert re.fullmatch(rf"{number}-[a-z0-9-]+\.ipynb", target), f"row {number}: the link {target!r} is not relative"


@pytest.mark.parametrize("number", sorted(SERIES))
def test_start_page_links_to_a_notebook_that_exists_with_that_title(number):
    (row,) = [r for r in _table_links() if r[0] == number]
    _, title, target = row
    path = NOTEBOOKS_DIR / target
    assert path.is_file(), f"00 links to {target}, which does not exist (yet)"
    assert _title(path) == title


def test_start_page_lists_no_notebook_twice_and_every_existing_one():
    targets = [target for _, _, target in _table_links()]
    assert len(targets) == len(set(targets))
    missing = [p.name for p in _existing() if p.name not in targets]
    assert not missing, f"notebooks missing from 00's table: {missing}"


def _next_link(path: Path) -> tuple[str, str, str]:
    last = "".join(_cells(path)[-1]["source"])
    match = re.search(r"\*\*Next:\*\* " + LINK.pattern, last)
    assert match, f"{path.name}: the last cell has no '**Next:** [NN · Title](NN-file.ipynb)'"
    return match.groups()


@pytest.mark.parametrize("path", _existing(), ids=lambda p: p.name)
def test_next_link_points_to_the_following_notebook_by_its_exact_title(path):
    number, title, target = _next_link(path)
    following = f"{(int(path.name[:2]) + 1) % len(SERIES):02d}"  # the last leads back to 00
    assert number == following, f"{path.name}: **Next:** goes to {number}, not {following}"
    assert title == SERIES[following], f"{path.name}: **Next:** says {title!r}"
    target_path = NOTEBOOKS_DIR / target
    assert target_path.is_file(), f"{path.name}: **Next:** links to {target}, which does not exist (yet)"
    assert _title(target_path) == title


# ---------------------------------------------------------------------------
# The exercise checks of notebooks 00–02: a right answer passes, a wrong one says where to look
# without giving the answer away. Recorded captures, so no lab is needed.


@pytest.fixture(scope="module")
def recorded_handshake():
    import netlab

    return netlab.load_recorded("handshake")


@pytest.fixture(scope="module")
def data_packet(recorded_handshake):
    return recorded_handshake.conversation.phase("data")[0].packet


def test_reloaded_capture_check_compares_packets_byte_for_byte(recorded_handshake, tmp_path):
    import netlab

    packets = netlab.load_pcap(recorded_handshake.save(tmp_path / "h.pcap"))
    assert netlab.checks.reloaded_capture(recorded_handshake, packets)
    assert "did you load" in netlab.checks.reloaded_capture(recorded_handshake, packets[:-1]).message
    other = netlab.load_pcap(netlab.load_recorded("handshake-slow-close").save(tmp_path / "s.pcap"))[:10]
    assert "not the same bytes" in netlab.checks.reloaded_capture(recorded_handshake, other).message


def test_built_acknowledgement_check_compares_with_the_servers_own_segment_and_names_the_field(recorded_handshake):
    from scapy.layers.inet import IP, TCP

    import netlab

    packet = recorded_handshake.conversation.phase("data")[0].packet
    tcp = packet[TCP]
    end = tcp.seq + len(tcp.payload)

    def reply(**fields):
        layers = {"src": packet[IP].dst, "dst": packet[IP].src, "sport": tcp.dport, "dport": tcp.sport, "flags": "A",
                  "seq": tcp.ack, "ack": end, **fields}
        return IP(src=layers["src"], dst=layers["dst"]) / TCP(sport=layers["sport"], dport=layers["dport"],
                                                               flags=layers["flags"], seq=layers["seq"], ack=layers["ack"])

    assert netlab.checks.built_acknowledgement(recorded_handshake, reply())
    swapped = netlab.checks.built_acknowledgement(recorded_handshake, reply(seq=tcp.seq, ack=tcp.ack))
    assert not swapped and "seq:" in swapped.message and "ack:" in swapped.message
    assert str(end) not in swapped.message and str(tcp.ack) not in swapped.message
    assert "ports" in netlab.checks.built_acknowledgement(recorded_handshake, reply(sport=tcp.sport)).message
    assert "flags" in netlab.checks.built_acknowledgement(recorded_handshake, reply(flags="SA")).message
    assert "payload" in netlab.checks.built_acknowledgement(recorded_handshake, reply() / b"x").message
    assert "scapy's layers" in netlab.checks.built_acknowledgement(recorded_handshake, b"ack").message


# ---------------------------------------------------------------------------
# Notebook 01's helpers in netlab.draw: byte ranges from scapy's own dissection, and their picture


def test_header_ranges_cover_the_frame_back_to_back(data_packet):
    import netlab

    ranges = netlab.draw.header_ranges(data_packet)
    assert ranges == [("Ethernet", 0, 14), ("IP", 14, 34), ("TCP", 34, 66), ("payload", 66, 79)]
    assert ranges[-1][2] == len(bytes(data_packet))
    assert bytes(data_packet)[66:79] == b"Hello, World!"


def test_header_ranges_of_a_built_datagram_follow_its_layers():
    from scapy.layers.inet import IP, UDP

    import netlab

    assert netlab.draw.header_ranges(IP(dst="127.0.0.1") / UDP(dport=9) / b"ping") == [
        ("IP", 0, 20), ("UDP", 20, 28), ("payload", 28, 32)]


def test_encapsulation_draws_one_header_per_layer_to_scale(data_packet):
    import netlab

    fig = netlab.draw.encapsulation(data_packet)
    headers = {p.get_gid(): p.get_width() for p in fig.axes[0].patches if (p.get_gid() or "").startswith("header ")}
    assert list(headers) == ["header payload", "header TCP", "header IP", "header Ethernet"]
    assert abs(headers["header TCP"] / headers["header payload"] - 32 / 13) < 1e-9  # widths in proportion to bytes
