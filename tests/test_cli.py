"""`python -m netlab` as a student runs it: a subprocess, its output, its exit status.

Errors a student can cause (a broken or wrong file, a stream that is not there) end with exit
status 2 and one line "netlab: error: ..." on stderr, never a traceback.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Ether
from scapy.packet import Raw

from netlab.core.conversation import Conversation
from netlab.core.pcapfiles import DATA, load_pcap, save_pcap
from netlab.core.pcapfiles import recorded_packets as recorded

# Each test starts `python -m netlab` (scapy's import alone takes about a second).
pytestmark = pytest.mark.slow

HANDSHAKE = DATA / "handshake.pcap"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def netlab_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 90) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.pop("NETLAB_RECORDED", None)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "netlab", *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env=full_env, cwd=Path(__file__).resolve().parent.parent)


def needs_draw() -> None:
    pytest.importorskip("netlab.core.draw", reason="netlab.draw (the ladder diagrams) is not there yet")


def assert_png(path: Path) -> None:
    assert path.is_file(), path
    assert path.read_bytes()[:8] == PNG_MAGIC


def assert_clean_error(result: subprocess.CompletedProcess, *words: str) -> str:
    assert result.returncode == 2, result
    assert "Traceback" not in result.stderr and "Traceback" not in result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("netlab: error: ")
    for word in words:
        assert word in lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def two_streams(tmp_path_factory) -> Path:
    """The two handshake recordings merged by time, shifted so that their packets interleave."""
    first, second = recorded("handshake"), recorded("handshake-slow-close")
    shift = float(first[0].time) - float(second[0].time) + 0.000005
    for p in second:
        p.time = float(p.time) + shift
    merged = sorted(first + second, key=lambda p: float(p.time))
    assert [p.sport for p in merged[:2]] == [first[0].sport, second[0].sport]  # both SYNs before any answer
    return save_pcap(merged, tmp_path_factory.mktemp("two") / "two.pcap")


def test_help_lists_the_commands():
    result = netlab_cli("--help")
    assert result.returncode == 0
    for command in ("handshake", "show", "refused"):
        assert command in result.stdout


def test_show_prints_the_table_of_a_recording():
    result = netlab_cli("show", HANDSHAKE)
    assert result.returncode == 0, result.stderr
    expected = Conversation.from_packets(load_pcap(HANDSHAKE), source="handshake.pcap").table()
    assert expected in result.stdout
    assert "handshake.pcap" in result.stdout.splitlines()[0]
    assert result.stdout.count("C→S") + result.stdout.count("S→C") == 10


def _client_and_segments(name: str) -> tuple[int, int]:
    """A recording's client port (its SYN's) and its number of segments, read from the recording itself."""
    packets = recorded(name)
    return packets[0].sport, len(Conversation.from_packets(packets).segments)


def test_show_prints_every_stream_of_a_file(two_streams):
    result = netlab_cli("show", two_streams)
    assert result.returncode == 0, result.stderr
    (port0, count0), (port1, count1) = _client_and_segments("handshake"), _client_and_segments("handshake-slow-close")
    assert "TCP stream 0" in result.stdout and f"client 127.0.0.1:{port0}" in result.stdout
    assert "TCP stream 1" in result.stdout and f"client 127.0.0.1:{port1}" in result.stdout
    assert result.stdout.count("C→S") + result.stdout.count("S→C") == count0 + count1


def test_show_one_stream(two_streams):
    result = netlab_cli("show", two_streams, "--stream", "1")
    assert result.returncode == 0, result.stderr
    port1, count1 = _client_and_segments("handshake-slow-close")
    assert "TCP stream 1" in result.stdout and f"client 127.0.0.1:{port1}" in result.stdout
    assert "TCP stream 0" not in result.stdout
    assert result.stdout.count("C→S") + result.stdout.count("S→C") == count1


def test_show_draws_the_ladder_to_a_png(tmp_path):
    needs_draw()
    out = tmp_path / "ladder.png"
    result = netlab_cli("show", HANDSHAKE, "--png", out)
    assert result.returncode == 0, result.stderr
    assert_png(out)
    assert str(out) in result.stdout


def test_show_draws_one_png_per_stream(tmp_path, two_streams):
    needs_draw()
    out = tmp_path / "ladder.png"
    result = netlab_cli("show", two_streams, "--png", out)
    assert result.returncode == 0, result.stderr
    assert_png(tmp_path / "ladder-stream0.png")
    assert_png(tmp_path / "ladder-stream1.png")
    assert not out.exists()


# ---------------------------------------------------------------------------
# Files that cannot be shown


def test_show_truncated_file(tmp_path):
    path = tmp_path / "cut.pcap"
    path.write_bytes(HANDSHAKE.read_bytes()[:-5])
    assert_clean_error(netlab_cli("show", path), "truncated", "packet 10")


def test_show_a_file_that_is_not_a_pcap(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("these are my notes, not a capture\n")
    assert_clean_error(netlab_cli("show", path), "not a pcap")


def test_show_a_missing_file(tmp_path):
    assert_clean_error(netlab_cli("show", tmp_path / "nowhere.pcap"), "no such file")


def test_show_a_capture_without_tcp(tmp_path):
    dns = [Ether() / IP(src="10.0.0.1", dst="10.0.0.2") / UDP(sport=5353, dport=53) / Raw(b"query")]
    path = save_pcap(dns, tmp_path / "udp.pcap")
    assert_clean_error(netlab_cli("show", path), "no TCP")


def test_show_a_capture_started_mid_connection_lists_it_labelled(tmp_path):
    packets = recorded("handshake")
    path = save_pcap(packets[3:], tmp_path / "late.pcap")  # from the first data segment on
    for argv in (["show", path], ["show", path, "--stream", "0"]):
        result = netlab_cli(*argv)
        assert result.returncode == 0, result.stderr
        first = result.stdout.splitlines()[0]
        assert "TCP stream 0" in first and "no handshake captured" in first and "ISN unknown" in first
        assert "window scaling unknown" in first
        assert result.stdout.count("C→S") + result.stdout.count("S→C") == len(packets) - 3
        # Wireshark's relative numbers: each side's first segment is seq 1.
        assert result.stdout.splitlines()[2].split()[3:7] == ["PSH-ACK", "1", "1", "13"]


def test_show_a_stream_that_does_not_exist(two_streams):
    assert_clean_error(netlab_cli("show", two_streams, "--stream", "5"), "no TCP stream 5")


# ---------------------------------------------------------------------------
# The experiments


def _assert_handshake_files(out: Path) -> list[str]:
    flags = Conversation.from_packets(load_pcap(out / "handshake.pcap")).flags()
    assert flags[:3] == ["SYN", "SYN-ACK", "ACK"]
    assert "FIN-ACK" in flags and flags[-1] == "ACK"
    if importlib.util.find_spec("netlab.core.draw") is not None:
        assert_png(out / "handshake.png")
    return flags


def test_handshake_live_writes_the_capture(tmp_path):
    result = netlab_cli("handshake", "--out", tmp_path)
    if result.returncode == 0 and "TCP stream 0, recorded" in result.stdout:
        # netlab fell back to the recording: its first line says why the lab was refused.
        pytest.skip(f"this machine refuses the lab: {result.stdout.splitlines()[0]}")
    assert result.returncode == 0, result.stderr
    assert "live" in result.stdout.splitlines()[0]
    assert "TCP stream 0, live" in result.stdout
    flags = _assert_handshake_files(tmp_path)
    assert "PSH-ACK" in flags  # the message and its echo
    assert f"wrote {tmp_path / 'handshake.pcap'}" in result.stdout


def test_handshake_recorded_when_asked_still_writes_the_files(tmp_path):
    result = netlab_cli("handshake", "--out", tmp_path, env={"NETLAB_RECORDED": "1"})
    assert result.returncode == 0, result.stderr
    assert "NETLAB_RECORDED" in result.stdout.splitlines()[0]  # it says why it is not live
    assert "TCP stream 0, recorded" in result.stdout and "TCP stream 0, live" not in result.stdout
    assert _assert_handshake_files(tmp_path) == recorded_flags("handshake")
    assert [bytes(p) for p in load_pcap(tmp_path / "handshake.pcap")] == [bytes(p) for p in recorded("handshake")]


def test_refused_recorded_shows_the_reset(tmp_path):
    result = netlab_cli("refused", "--out", tmp_path, env={"NETLAB_RECORDED": "1"})
    assert result.returncode == 0, result.stderr
    assert "RST-ACK" in result.stdout and "ConnectionRefusedError" in result.stdout
    assert Conversation.from_packets(load_pcap(tmp_path / "refused.pcap")).flags() == ["SYN", "RST-ACK"]


def recorded_flags(name: str) -> list[str]:
    return Conversation.from_packets(recorded(name)).flags()


# ---------------------------------------------------------------------------
# One error policy: every subcommand, given bad input, ends in one line "netlab: error: ..."


def _subcommands() -> set[str]:
    from netlab.__main__ import build_parser

    (action,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return set(action.choices)


@pytest.fixture(scope="module")
def a_file(tmp_path_factory) -> Path:
    """A regular file: a path under it can be no folder."""
    path = tmp_path_factory.mktemp("bad") / "a-file"
    path.write_text("not a folder\n")
    return path


@pytest.fixture(scope="module")
def busy_port():
    """A port that a socket on 127.0.0.1 is listening on for the whole module."""
    with socket.create_server(("127.0.0.1", 0)) as sock:
        yield sock.getsockname()[1]


RECORDED = {"NETLAB_RECORDED": "1"}  # no lab: quick, and where the lab matters, its absence is the bad input

# Each subcommand's bad input: (arguments, environment), where "{file}" is a regular file, "{notes}"
# a text file that is no pcap, "{busy}" a port in use. A new subcommand needs its cases here.
BAD_INPUT: dict[str, list[tuple[list[str], dict[str, str]]]] = {
    "handshake": [(["--out", "{file}/out"], RECORDED), (["--out", "{file}"], RECORDED),
                  (["--close-delay", "-1"], RECORDED), (["--close-delay", "nan"], RECORDED),
                  (["--close-delay", "soon"], RECORDED)],
    "refused": [(["--out", "{file}/out"], RECORDED)],
    "show": [([], {}), (["{file}/nowhere.pcap"], {}), (["{notes}"], {}), ([str(HANDSHAKE), "--stream", "7"], {}),
             ([str(HANDSHAKE), "--stream", "-1"], {}), ([str(HANDSHAKE), "--stream", "first"], {}),
             ([str(HANDSHAKE), "--png", "{file}/ladder.png"], {})],
    "http-server": [(["--port", "99999"], {}), (["--port", "-1"], {}), (["--port", "eighty"], {}),
                    (["--port", "{busy}"], {})],
    "retransmit": [(["--count", "0"], RECORDED), (["--count", "9"], RECORDED), (["--count", "two"], RECORDED)],
    "record": [([], RECORDED), (["--out", "{file}/data"], RECORDED)],
    "cwnd": [(["--loss", "0"], RECORDED), (["--cc", "no-such-algorithm"], RECORDED)],
    "traceroute": [(["--max-hops", "0"], RECORDED), (["--max-hops", "many"], RECORDED)],
    "routes": [(["nowhere"], RECORDED), (["server", "site"], RECORDED)],
    "names": [(["bad name!"], RECORDED), (["nowhere"], RECORDED)],
    "mark-exercises": [(["{file}/nowhere.ipynb"], {}), (["{notes}"], {})],
    "student-edition": [(["{file}/out"], {})],
    "grade": [(["{file}/nowhere"], {}), (["{file}", "--workers", "many"], {}), (["{file}", "--workers", "-3"], {}),
              (["{file}", "--cell-timeout", "-1"], {}), (["{file}", "--notebook-timeout", "0"], {})],
}
CASES = [pytest.param(command, args, env, id=f"{command} {' '.join(args)}".strip())
         for command, cases in BAD_INPUT.items() for args, env in cases]


def test_every_subcommand_has_bad_input_cases():
    missing = _subcommands() - set(BAD_INPUT)
    assert not missing, f"give each subcommand of `python -m netlab` its bad-input cases in BAD_INPUT: {sorted(missing)}"


@pytest.mark.parametrize(("command", "args", "env"), CASES)
def test_bad_input_is_one_line_of_error(command, args, env, a_file, busy_port, tmp_path):
    if command not in _subcommands():
        pytest.skip(f"this checkout has no subcommand {command!r}")
    notes = tmp_path / "notes.txt"
    notes.write_text("these are my notes, not a capture\n")
    argv = [a.format(file=a_file, notes=notes, busy=busy_port) for a in args]
    result = netlab_cli(command, *argv, env=env, timeout=60)
    assert result.returncode != 0, result
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("netlab: error: "), result.stderr


@pytest.mark.parametrize("argv", [[], ["no-such-command"]], ids=["no command", "unknown command"])
def test_a_missing_or_unknown_subcommand_is_one_line_of_error(argv):
    result = netlab_cli(*argv)
    assert result.returncode == 2
    assert result.stderr.startswith("netlab: error: ") and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_retransmit_recorded_speaks_of_the_recording_not_a_script():
    result = netlab_cli("retransmit", "--count", "2", env=RECORDED)
    assert result.returncode == 0, result.stderr
    first = result.stdout.splitlines()[0]
    assert first.startswith("recorded: NETLAB_RECORDED is set"), first
    assert "The recording holds 4 retransmissions; --count applies to live runs." in first
    assert "Script(" not in result.stdout and "your script" not in result.stdout
    assert result.stdout.count("retransmission ") == 4


# ---------------------------------------------------------------------------
# show on captures from the wild (issue 16): long streams drawn a window at a time


def _png_size(path: Path) -> tuple[int, int]:
    """(width, height) in pixels, from the PNG's IHDR chunk."""
    data = path.read_bytes()
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.fixture(scope="module")
def long_stream(tmp_path_factory) -> Path:
    """One connection of 206 segments: handshake, 100 data segments each acknowledged, close."""
    from scapy.layers.inet import TCP

    c, s = ("10.0.0.1", 40000), ("10.0.0.2", 80)

    def seg(src, dst, flags, seq, ack, data=b"", t=0.0):
        pkt = Ether() / IP(src=src[0], dst=dst[0]) / TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq, ack=ack)
        pkt = pkt / Raw(data) if data else pkt
        pkt.time = 1_700_000_000 + t
        return pkt

    packets = [seg(c, s, "S", 0, 0), seg(s, c, "SA", 0, 1, t=0.001), seg(c, s, "A", 1, 1, t=0.002)]
    for k in range(100):
        packets += [seg(c, s, "PA", 1 + 10 * k, 1, b"x" * 10, t=0.01 * (k + 1)),
                    seg(s, c, "A", 1, 11 + 10 * k, t=0.01 * (k + 1) + 0.001)]
    packets += [seg(c, s, "FA", 1001, 1, t=1.02), seg(s, c, "FA", 1, 1002, t=1.021), seg(c, s, "A", 1002, 2, t=1.022)]
    return save_pcap(packets, tmp_path_factory.mktemp("long") / "long.pcap")


def test_show_draws_the_first_60_segments_of_a_long_stream_and_says_so(tmp_path, long_stream):
    needs_draw()
    result = netlab_cli("show", long_stream, "--png", tmp_path / "ladder.png")
    assert result.returncode == 0, result.stderr
    assert f"wrote {tmp_path / 'ladder.png'}: segments 1–60 of 206" in result.stdout
    assert "--segments A:B or --time T0:T1" in result.stdout
    width, height = _png_size(tmp_path / "ladder.png")
    assert height <= 4000 and width < height


@pytest.mark.parametrize(("window", "shown"), [
    (["--segments", "100:120"], "segments 100–120 of 206"),
    (["--segments", "150:"], "segments 150–206 of 206"),
    (["--segments", "1:1000"], "segments 1–75 of 206"),  # at most 75 in one picture
    (["--time", "0.495:0.6005"], "segments 102–122 of 206"),  # data at 0.50 to 0.60 s, each ACK 1 ms later
])
def test_show_draws_the_window_asked_for(tmp_path, long_stream, window, shown):
    needs_draw()
    result = netlab_cli("show", long_stream, "--png", tmp_path / "w.png", *window)
    assert result.returncode == 0, result.stderr
    assert shown in result.stdout
    assert _png_size(tmp_path / "w.png")[1] <= 4000


def test_show_png_without_an_extension_writes_a_png_and_says_which(tmp_path):
    needs_draw()
    result = netlab_cli("show", HANDSHAKE, "--png", tmp_path / "ladder")
    assert result.returncode == 0, result.stderr
    assert_png(tmp_path / "ladder.png")
    assert f"wrote {tmp_path / 'ladder.png'}\n" in result.stdout
    assert not (tmp_path / "ladder").exists()


def test_show_an_empty_or_wrong_window(tmp_path, long_stream):
    line = assert_clean_error(netlab_cli("show", long_stream, "--png", tmp_path / "w.png", "--time", "50:60"),
                              "no segment of TCP stream 0 in that window")
    assert "segments 1–206" in line
    result = netlab_cli("show", long_stream, "--png", tmp_path / "w.png", "--segments", "20")
    assert result.returncode == 2 and "not a range A:B" in result.stderr and "Traceback" not in result.stderr


def test_show_names_a_link_type_it_cannot_read_in_one_line(tmp_path):
    from scapy.layers.inet import TCP
    from scapy.utils import wrpcap

    path = tmp_path / "hdlc.pcap"
    pkt = IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=80, flags="S")
    wrpcap(str(path), [Raw(b"\x0f\x00\x08\x00" + bytes(pkt))], linktype=104)  # Cisco HDLC
    assert_clean_error(netlab_cli("show", path), "link type 104 (Cisco HDLC)")  # and no scapy WARNING line
