"""pcap files in and out: what netlab writes, Wireshark reads; what is broken, netlab names.

A file that is not a complete capture must give a `PcapError` saying what is wrong (truncated,
and where; empty; not a capture; missing), never a traceback from deep inside scapy.
"""

from __future__ import annotations

import shutil
import struct
import subprocess

import pytest
from scapy.layers.inet import TCP

from netlab.core.conversation import Conversation, conversations
from netlab.core.errors import PcapError
from netlab.core.pcapfiles import DATA, load_pcap, save_pcap
from netlab.core.pcapfiles import recorded_packets as recorded

HANDSHAKE = DATA / "handshake.pcap"
HANDSHAKE_FLAGS = ["SYN", "SYN-ACK", "ACK", "PSH-ACK", "ACK", "PSH-ACK", "ACK", "FIN-ACK", "FIN-ACK", "ACK"]
PCAP_HEADER = 24  # bytes: magic, version, thiszone, sigfigs, snaplen, linktype
RECORD_HEADER = 16  # bytes: seconds, microseconds, captured length, original length


def _load_error(path) -> PcapError:
    with pytest.raises(PcapError) as info:
        load_pcap(path)
    # Our own message, not a chained scapy traceback.
    assert info.value.__cause__ is None
    return info.value


def _record_offsets(data: bytes) -> list[int]:
    """Where each packet record of a little-endian pcap starts (walked independently of netlab)."""
    offsets, offset = [], PCAP_HEADER
    while offset < len(data):
        offsets.append(offset)
        (caplen,) = struct.unpack_from("<I", data, offset + 8)
        offset += RECORD_HEADER + caplen
    assert offset == len(data)
    return offsets


# ---------------------------------------------------------------------------
# Round trips


def test_save_and_load_keep_packets_and_timestamps(tmp_path):
    packets = recorded("handshake")
    path = save_pcap(packets, tmp_path / "sub" / "again.pcap")  # creates the folder too
    assert path == tmp_path / "sub" / "again.pcap"
    again = load_pcap(path)
    assert [bytes(p) for p in again] == [bytes(p) for p in packets]
    # pcap keeps microseconds.
    assert [float(p.time) for p in again] == pytest.approx([float(p.time) for p in packets], abs=1e-6)
    assert Conversation.from_packets(again).table() == Conversation.from_packets(packets).table()


def test_saved_file_header_is_what_wireshark_expects(tmp_path):
    path = save_pcap(recorded("handshake"), tmp_path / "h.pcap")
    data = path.read_bytes()
    magic, major, minor, _zone, _sigfigs, snaplen, linktype = struct.unpack("<IHHiIII", data[:PCAP_HEADER])
    assert magic == 0xA1B2C3D4  # classic pcap, microsecond timestamps
    assert (major, minor) == (2, 4)
    assert linktype == 1  # LINKTYPE_ETHERNET
    assert snaplen >= max(len(bytes(p)) for p in recorded("handshake"))
    assert len(_record_offsets(data)) == 10


def test_conversation_save_writes_a_pcap_that_loads_back(tmp_path):
    conv = Conversation.from_packets(recorded("handshake-slow-close"))
    path = conv.save(tmp_path / "slow.pcap")
    assert Conversation.from_packets(load_pcap(path)).flags() == conv.flags()


def _wrpcapng():
    try:
        from scapy.utils import wrpcapng  # scapy >= 2.5.0
    except ImportError:
        pytest.skip("this scapy cannot write pcapng")
    return wrpcapng


def test_pcapng_files_read_too(tmp_path):
    wrpcapng = _wrpcapng()
    packets = recorded("handshake")
    path = tmp_path / "h.pcapng"
    wrpcapng(str(path), packets)
    assert path.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a"  # a pcapng Section Header Block
    again = load_pcap(path)
    assert [bytes(p) for p in again] == [bytes(p) for p in packets]
    assert [float(p.time) for p in again] == pytest.approx([float(p.time) for p in packets], abs=1e-6)


def test_every_shipped_recording_loads_completely():
    for path in sorted(DATA.glob("*.pcap")):
        data = path.read_bytes()
        assert len(load_pcap(path)) == len(_record_offsets(data)), path.name


# ---------------------------------------------------------------------------
# Broken files


def test_file_cut_in_the_middle_of_a_packet(tmp_path):
    data = HANDSHAKE.read_bytes()
    fourth = _record_offsets(data)[3]
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[: fourth + RECORD_HEADER + 10])  # packet 4's header and 10 of its bytes
    err = _load_error(path)
    assert "truncated" in str(err) and "packet 4" in str(err)


def test_file_cut_in_the_last_byte(tmp_path):
    path = tmp_path / "cut.pcap"
    path.write_bytes(HANDSHAKE.read_bytes()[:-1])
    err = _load_error(path)
    assert "truncated" in str(err) and "packet 10" in str(err) and "missing 1 " in str(err)


def test_file_cut_in_a_record_header(tmp_path):
    data = HANDSHAKE.read_bytes()
    second = _record_offsets(data)[1]
    path = tmp_path / "cut.pcap"
    path.write_bytes(data[: second + 7])  # 7 of the 16 bytes of packet 2's record header
    err = _load_error(path)
    assert "truncated" in str(err) and "packet 2" in str(err)


@pytest.mark.parametrize("size", [4, 10, 23])
def test_file_with_only_part_of_the_file_header(tmp_path, size):
    path = tmp_path / "cut.pcap"
    path.write_bytes(HANDSHAKE.read_bytes()[:size])
    err = _load_error(path)
    assert "truncated" in str(err) and "header" in str(err)


@pytest.mark.parametrize("size", [1, 3])
def test_file_shorter_than_a_magic_number_is_an_error(tmp_path, size):
    path = tmp_path / "cut.pcap"
    path.write_bytes(HANDSHAKE.read_bytes()[:size])
    _load_error(path)


def test_truncated_pcapng(tmp_path):
    wrpcapng = _wrpcapng()
    whole = tmp_path / "h.pcapng"
    wrpcapng(str(whole), recorded("handshake"))
    data = whole.read_bytes()
    cut = tmp_path / "cut.pcapng"
    cut.write_bytes(data[:-3])  # inside the last packet's block
    err = _load_error(cut)
    assert "truncated pcapng" in str(err) and "block" in str(err)
    # Cut inside a block's 8-byte header (type, length): section header is 28+ bytes.
    (shb_length,) = struct.unpack_from("<I", data, 4)
    cut.write_bytes(data[: shb_length + 5])
    assert "truncated pcapng" in str(_load_error(cut))


def test_empty_file(tmp_path):
    path = tmp_path / "empty.pcap"
    path.write_bytes(b"")
    assert "empty" in str(_load_error(path))


def test_text_file_is_not_a_pcap(tmp_path):
    path = tmp_path / "notes.pcap"
    path.write_text("GET / HTTP/1.1\r\nHost: example\r\n\r\n")
    assert "not a pcap" in str(_load_error(path))


def test_missing_file(tmp_path):
    err = _load_error(tmp_path / "nowhere.pcap")
    assert "nowhere.pcap" in str(err) and "no such file" in str(err)


# ---------------------------------------------------------------------------
# In Wireshark too: tshark reads what netlab writes, and sees the same conversation

TSHARK = shutil.which("tshark")
needs_tshark = pytest.mark.skipif(TSHARK is None, reason="tshark is not installed (apt-get install tshark)")


def _tshark(path, *fields: str) -> list[list[str]]:
    argv = [TSHARK, "-r", str(path), "-Y", "tcp", "-T", "fields"]
    for f in fields:
        argv += ["-e", f]
    # tshark warns on stderr when run as root; the fields are on stdout.
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def _tshark_flag_words(hex_flags: str) -> str:
    bits = int(hex_flags, 16)
    names = [name for bit, name in ((0x02, "SYN"), (0x01, "FIN"), (0x04, "RST"), (0x08, "PSH")) if bits & bit]
    if bits & 0x10:
        names.append("ACK")
    return "-".join(names)


@needs_tshark
@pytest.mark.parametrize("which", ["shipped", "saved by netlab"])
def test_tshark_reads_the_handshake_with_the_same_flags(tmp_path, which):
    path = HANDSHAKE if which == "shipped" else save_pcap(load_pcap(HANDSHAKE), tmp_path / "saved.pcap")
    rows = _tshark(path, "tcp.flags", "tcp.seq", "tcp.ack", "tcp.len")
    flags = [_tshark_flag_words(row[0]) for row in rows]
    assert flags[:3] == ["SYN", "SYN-ACK", "ACK"]
    assert any("FIN" in f for f in flags) and flags[-1] == "ACK"
    assert flags == HANDSHAKE_FLAGS
    # Wireshark's relative sequence numbers are netlab's.
    conv = Conversation.from_packets(load_pcap(path))
    assert [int(r[1]) for r in rows] == [s.seq for s in conv.segments]
    assert [int(r[2]) for r in rows[1:]] == [s.ack for s in conv.segments[1:]]
    assert [int(r[3]) for r in rows] == [s.length for s in conv.segments]


@needs_tshark
def test_tshark_numbers_streams_as_netlab_does(tmp_path):
    # Two recordings merged by time, shifted so that their packets interleave.
    first, second = recorded("handshake"), recorded("handshake-slow-close")
    shift = float(first[0].time) - float(second[0].time) + 0.000005
    for p in second:
        p.time = float(p.time) + shift
    merged = sorted(first + second, key=lambda p: float(p.time))
    path = save_pcap(merged, tmp_path / "two.pcap")
    rows = _tshark(path, "tcp.stream", "tcp.srcport", "tcp.dstport")
    convs = conversations(load_pcap(path))
    assert len(convs) == 2
    for conv in convs:
        ports = {conv.client[1], conv.server[1]}
        assert {int(r[0]) for r in rows if {int(r[1]), int(r[2])} == ports} == {conv.stream_number}
    assert Conversation.from_packets(load_pcap(path), stream=1).segments[0].packet[TCP].sport == 46822


def test_record_claiming_an_impossible_length_is_not_a_valid_pcap(tmp_path):
    path = tmp_path / "garbage-length.pcap"
    save_pcap(recorded("handshake"), path)
    data = bytearray(path.read_bytes())
    data[PCAP_HEADER + 8:PCAP_HEADER + 12] = b"\xff\xff\xff\xff"  # packet 1's captured length
    path.write_bytes(bytes(data))
    err = _load_error(path)
    assert "not a valid pcap: packet 1 claims 4294967295 bytes" in str(err)


@pytest.mark.parametrize("link", ["linux-cooked", "linux-cooked-v2", "raw-ip"])
def test_captures_from_other_link_types_give_the_same_conversation(tmp_path, link):
    # `tcpdump -i any` writes Linux "cooked" headers (SLL, SLL2) instead of Ethernet; some
    # tools write bare IP. The conversation is read from the IP and TCP layers all the same.
    from scapy.layers.inet import IP
    from scapy.layers.l2 import CookedLinux, CookedLinuxV2

    wrap = {
        "linux-cooked": lambda ip: CookedLinux(proto=0x0800) / ip,
        "linux-cooked-v2": lambda ip: CookedLinuxV2(proto=0x0800) / ip,
        "raw-ip": lambda ip: ip,
    }[link]
    original = Conversation.from_packets(recorded("handshake"))
    packets = []
    for pkt in original.packets:
        framed = wrap(pkt[IP].copy())
        framed.time = pkt.time
        packets.append(framed)
    path = tmp_path / f"{link}.pcap"
    save_pcap(packets, path)
    again = Conversation.from_packets(load_pcap(path))
    assert again.flags() == original.flags()
    assert [(s.seq, s.ack, s.length) for s in again.segments] == [(s.seq, s.ack, s.length) for s in original.segments]
