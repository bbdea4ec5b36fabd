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
from netlab.core.errors import NoHandshakeError, PcapError
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


@pytest.mark.slow
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


@pytest.mark.slow
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
    assert Conversation.from_packets(load_pcap(path), stream=1).segments[0].packet[TCP].sport == second[0][TCP].sport


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


# ---------------------------------------------------------------------------
# Captures from the wild (issue 16): each made here with scapy, each read by tshark alongside.
# Wireshark is the reference: netlab must show what it shows, field by field.

INNER_CLIENT, INNER_SERVER = ("10.1.0.1", 40000), ("10.1.0.2", 80)


def _inner_stream(ip=None) -> list:
    """A handshake, 13 bytes each way and a close, as bare IP/TCP packets (IPv4, or `ip`'s class)."""
    from scapy.layers.inet import IP
    from scapy.packet import Raw

    make = ip or IP
    c, s = (INNER_CLIENT, INNER_SERVER) if make is IP else (("fd00::1", 40000), ("fd00::2", 80))

    def seg(src, dst, flags, seq, ack=0, data=b"", **tcp):
        pkt = make(src=src[0], dst=dst[0]) / TCP(sport=src[1], dport=dst[1], flags=flags, seq=seq, ack=ack,
                                                   window=512, **tcp)
        return pkt / Raw(data) if data else pkt

    return [seg(c, s, "S", 1000, options=[("MSS", 1400), ("WScale", 7)]),
            seg(s, c, "SA", 5000, 1001, options=[("MSS", 1400), ("WScale", 6)]),
            seg(c, s, "A", 1001, 5001), seg(c, s, "PA", 1001, 5001, b"Hello, World!"),
            seg(s, c, "PA", 5001, 1014, b"Hello, World!"), seg(c, s, "FA", 1014, 5014),
            seg(s, c, "FA", 5014, 1015), seg(c, s, "A", 1015, 5015)]


def _timed(packets: list, start: float = 1_700_000_000.0) -> list:
    for number, pkt in enumerate(packets):
        pkt.time = start + number * 0.001
    return packets


def _encapsulate(how: str, inner):
    """`inner` (an IP or IPv6 packet) inside the tunnel `how`, in an Ethernet frame."""
    from scapy.contrib.geneve import GENEVE
    from scapy.contrib.gtp import GTP_U_Header
    from scapy.contrib.mpls import MPLS
    from scapy.layers.inet import GRE, IP, UDP
    from scapy.layers.l2 import Ether
    from scapy.layers.vxlan import VXLAN

    outer = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
    tunnel = IP(src="192.0.2.1", dst="192.0.2.2")
    return {
        "GRE": lambda: outer / tunnel / GRE() / inner,
        "VXLAN": lambda: outer / tunnel / UDP(sport=49152, dport=4789) / VXLAN(vni=42) / Ether() / inner,
        "Geneve": lambda: outer / tunnel / UDP(sport=49152, dport=6081) / GENEVE(proto=0x0800) / inner,
        "GTP-U": lambda: outer / tunnel / UDP(sport=2152, dport=2152) / GTP_U_Header(teid=7) / inner,
        "IP-in-IP": lambda: outer / tunnel / inner,
        "6in4": lambda: outer / tunnel / inner,
        "MPLS": lambda: outer / MPLS(label=100, s=1, ttl=64) / inner,
    }[how]()


def _tshark_segments(path, *extra: str) -> list[list[str]]:
    """tshark's view of every TCP segment: stream, innermost addresses and ports, flags, relative
    seq/ack, length, then `extra` fields (the last occurrence of each, the innermost header's)."""
    argv = [TSHARK, "-r", str(path), "-Y", "tcp", "-T", "fields", "-E", "occurrence=l"]
    # Wireshark's Source and Destination columns show the innermost network addresses.
    fields = ["tcp.stream", "_ws.col.Source", "tcp.srcport", "_ws.col.Destination", "tcp.dstport", "tcp.flags",
              "tcp.seq", "tcp.ack", "tcp.len", *extra]
    for f in fields:
        argv += ["-e", f]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    return [line.split("\t") for line in out.splitlines()]


def _netlab_rows(convs) -> list[tuple]:
    """netlab's segments as tshark prints them (stream, src, sport, dst, dport, flag bits, seq, ack, len)."""
    rows = []
    for conv in convs:
        for s in conv.segments:
            src, dst = (conv.client, conv.server) if s.direction == "C→S" else (conv.server, conv.client)
            rows.append((conv.stream_number, src[0], src[1], dst[0], dst[1], int(s.packet[TCP].flags),
                         s.seq, s.ack or 0, s.length))
    return sorted(rows)


def _tshark_rows(rows: list[list[str]]) -> list[tuple]:
    return sorted((int(r[0]), r[1], int(r[2]), r[3], int(r[4]), int(r[5], 16), int(r[6]), int(r[7] or 0), int(r[8]))
                  for r in rows)


TUNNELS = ["GRE", "VXLAN", "Geneve", "GTP-U", "IP-in-IP", "6in4", "MPLS"]


@needs_tshark
@pytest.mark.parametrize("tunnel", TUNNELS)
def test_a_stream_inside_a_tunnel_is_read_by_its_inner_headers_as_wireshark_does(tmp_path, tunnel):
    from scapy.layers.inet6 import IPv6

    inner = _inner_stream(IPv6 if tunnel == "6in4" else None)
    packets = _timed([_encapsulate(tunnel, p) for p in inner])
    path = save_pcap(packets, tmp_path / f"{tunnel}.pcap")
    convs = conversations(load_pcap(path))
    assert len(convs) == 1
    conv = convs[0]
    assert conv.flags() == ["SYN", "SYN-ACK", "ACK", "PSH-ACK", "PSH-ACK", "FIN-ACK", "FIN-ACK", "ACK"]
    assert (conv.client[1], conv.server[1]) == (40000, 80)
    assert not conv.client[0].startswith("192.0.2.")  # the inner addresses, not the tunnel's
    assert conv.data() == b"Hello, World!"
    assert conv.segments[4].window == 512 << 6  # window scaling read from the inner SYNs
    assert _netlab_rows(convs) == _tshark_rows(_tshark_segments(path))


def _truncated(pkt, snap: int):
    """`pkt` as a capture with snap length `snap` stores it: the first `snap` bytes, the real length kept."""
    from scapy.layers.l2 import Ether

    whole = bytes(pkt)
    cut = Ether(whole[:snap])
    cut.wirelen = len(whole)
    return cut


@needs_tshark
def test_a_frame_cut_by_the_snap_length_keeps_its_ip_length_and_is_marked(tmp_path):
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether
    from scapy.packet import Raw

    stream = _inner_stream()
    big = IP(src=INNER_CLIENT[0], dst=INNER_SERVER[0]) / TCP(sport=40000, dport=80, flags="PA", seq=1014, ack=5014,
                                                             window=512) / Raw(b"x" * 1000)
    frames = [Ether() / p for p in stream[:5]] + [Ether() / big]
    frames = _timed([_truncated(f, 96) for f in frames])  # tcpdump -s 96
    path = save_pcap(frames, tmp_path / "snap96.pcap")
    conv = Conversation.from_packets(load_pcap(path))
    cut = conv.segments[5]
    assert (cut.length, cut.truncated, len(cut.payload)) == (1000, True, 96 - 14 - 20 - 20)
    assert not any(s.truncated for s in conv.segments[:5])
    assert "captured 42 of 1000 bytes" in conv.table().splitlines()[2 + 5]
    assert _netlab_rows([conv]) == _tshark_rows(_tshark_segments(path))


def _ether(packets: list) -> list:
    from scapy.layers.l2 import Ether

    return _timed([Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02") / p for p in packets])


@needs_tshark
def test_streams_without_a_captured_handshake_are_read_with_wiresharks_relative_numbers(tmp_path):
    from scapy.layers.inet import IP

    whole = _inner_stream()
    late = whole[3:]  # the capture began after the handshake
    no_synack = [p.copy() for p in whole[:1] + whole[2:5]]  # the SYN-ACK was lost by the capture
    unanswered = [IP(src="10.1.0.9", dst="10.1.0.2") / TCP(sport=40009, dport=443, flags="S", seq=77)]
    for p in no_synack:  # another connection: the client's port 40001
        if p[TCP].sport == 40000:
            p[TCP].sport = 40001
        else:
            p[TCP].dport = 40001
    path = save_pcap(_ether(late + no_synack + unanswered), tmp_path / "partial.pcap")
    packets = load_pcap(path)

    assert len(conversations(packets)) == 2  # without partial=True, only streams with a SYN
    convs = conversations(packets, partial=True)
    assert [c.stream_number for c in convs] == [0, 1, 2]
    late_conv, no_synack_conv, unanswered_conv = convs
    assert late_conv.partial and (late_conv.client, late_conv.server) == (INNER_CLIENT, INNER_SERVER)
    assert late_conv.table().splitlines()[0].endswith(
        "(no handshake captured: ISN unknown, numbers relative to each side's first segment; "
        "window scaling unknown; client and server guessed from the ports)")
    assert {s.phase for s in late_conv.segments} == {"unknown"}
    assert late_conv.segments[0].window == 512  # unscaled: the scale was in the SYNs
    assert "no SYN-ACK captured" in no_synack_conv.table().splitlines()[0]
    assert no_synack_conv.phase("data")  # the client's ACK ended the handshake all the same
    assert "a SYN without an answer" in unanswered_conv.table().splitlines()[0]
    assert _netlab_rows(convs) == _tshark_rows(_tshark_segments(path))

    # What needs the handshake says that there is none.
    for needs_handshake in (late_conv.states, lambda: late_conv.phase("data")):
        with pytest.raises(NoHandshakeError, match="started after the connection was opened"):
            needs_handshake()
    with pytest.raises(NoHandshakeError):
        Conversation.from_packets(packets, stream=0)
    assert Conversation.from_packets(packets, stream=0, partial=True).table() == late_conv.table()


@needs_tshark
def test_ip_fragments_are_reassembled_and_a_fragmented_syn_keeps_its_options(tmp_path):
    from scapy.layers.inet import IP, fragment
    from scapy.layers.l2 import Ether

    stream = _inner_stream()
    for p in stream:
        p[IP].id = 1000 + stream.index(p)
    frames = []
    for number, pkt in enumerate(stream):
        pieces = fragment(pkt, fragsize=16) if number in (0, 3) else [pkt]  # the SYN and the first data
        frames += [Ether(bytes(Ether() / piece)) for piece in pieces]
    assert len(frames) > len(stream)
    path = save_pcap(_timed(frames), tmp_path / "fragments.pcap")
    conv = Conversation.from_packets(load_pcap(path))
    assert conv.flags() == ["SYN", "SYN-ACK", "ACK", "PSH-ACK", "PSH-ACK", "FIN-ACK", "FIN-ACK", "ACK"]
    assert conv.segments[0].options.startswith("MSS=1400 WScale=7")
    assert conv.data() == b"Hello, World!"
    rows = _tshark_segments(path, "tcp.options.wscale.shift")
    assert _netlab_rows([conv]) == _tshark_rows(rows)
    assert rows[0][-1] == "7"  # Wireshark read the reassembled SYN's options too


@needs_tshark
def test_accecn_bit_and_a_window_scale_above_14_as_wireshark_reads_them(tmp_path):
    stream = _inner_stream()
    stream[0][TCP].flags = 0x1C2  # AccECN's SYN: AE, CWR, ECE (RFC 9768)
    stream[1][TCP].flags = 0x112  # SYN-ACK with AE
    stream[0][TCP].options = [("MSS", 1400), ("WScale", 15)]  # RFC 7323 2.3: taken as 14
    stream[1][TCP].options = [("MSS", 1400), ("WScale", 20)]
    path = save_pcap(_ether(stream), tmp_path / "accecn.pcap")
    conv = Conversation.from_packets(load_pcap(path))
    assert conv.flags()[:2] == ["SYN-ECE-CWR-AE", "SYN-AE-ACK"]
    assert conv.window_shift == {"client": 14, "server": 14}
    rows = _tshark_segments(path, "tcp.flags.ae", "tcp.window_size")
    assert [r[-2] for r in rows[:2]] == ["1", "1"]
    assert [s.window for s in conv.segments] == [int(r[-1]) for r in rows]
    assert _netlab_rows([conv]) == _tshark_rows(rows)


@needs_tshark
def test_an_ip_total_length_of_0_falls_back_to_the_captured_bytes(tmp_path):
    # A capture taken on the sender before segmentation offload has IP total length 0.
    from scapy.layers.inet import IP
    from scapy.layers.l2 import Ether

    frames = []
    for pkt in _inner_stream():
        raw = bytearray(bytes(Ether() / pkt))
        if len(raw) > 60 and pkt[TCP].payload:
            raw[16:18] = b"\x00\x00"  # the IPv4 total length
        frames.append(Ether(bytes(raw)))
    path = save_pcap(_timed(frames), tmp_path / "tso.pcap")
    packets = load_pcap(path)
    assert sum(p[IP].len == 0 for p in packets) == 2
    conv = Conversation.from_packets(packets)
    assert [s.length for s in conv.segments] == [0, 0, 0, 13, 13, 0, 0, 0]
    assert _netlab_rows([conv]) == _tshark_rows(_tshark_segments(path))


def test_an_out_of_window_reset_changes_no_state():
    # An injected RST whose sequence number is far outside the receiver's window (RFC 9293
    # 3.10.7.4): the server does not accept it, so the connection goes on to its normal close.
    from scapy.layers.inet import IP

    stream = _inner_stream()
    forged = IP(src=INNER_CLIENT[0], dst=INNER_SERVER[0]) / TCP(sport=40000, dport=80, flags="R", seq=900_000)
    conv = Conversation(_ether(stream[:5] + [forged] + stream[5:]))
    assert conv.segments[5].flags == "RST"
    assert conv.states()["server"][-1][1] == "CLOSED" and "CLOSE-WAIT" in conv.state_table()
    # The same RST with the sequence number the server expects closes both sides there.
    good = forged.copy()
    good[TCP].seq = 1014
    conv = Conversation(_ether(stream[:5] + [good]))
    assert conv.states() == {"client": [(0, "CLOSED"), (1, "SYN-SENT"), (2, "ESTABLISHED"), (6, "CLOSED")],
                             "server": [(0, "LISTEN"), (1, "SYN-RECEIVED"), (3, "ESTABLISHED"), (6, "CLOSED")]}
    # In SYN-SENT a RST counts only if it acknowledges the SYN (RFC 9293 3.10.7.3).
    syn = stream[0]
    stray = IP(src=INNER_SERVER[0], dst=INNER_CLIENT[0]) / TCP(sport=80, dport=40000, flags="RA", seq=0, ack=555)
    assert Conversation(_ether([syn, stray])).states()["client"] == [(0, "CLOSED"), (1, "SYN-SENT")]


def test_a_link_type_scapy_cannot_read_is_named_without_scapys_warning(tmp_path, capfd):
    from scapy.layers.inet import IP
    from scapy.packet import Raw
    from scapy.utils import wrpcap

    path = tmp_path / "hdlc.pcap"
    pkt = IP(src="10.0.0.1", dst="10.0.0.2") / TCP(sport=40000, dport=80, flags="S")
    wrpcap(str(path), [Raw(b"\x0f\x00\x08\x00" + bytes(pkt))], linktype=104)  # Cisco HDLC
    capfd.readouterr()
    err = _load_error(path)
    assert "link type 104 (Cisco HDLC)" in str(err) and "cannot read" in str(err)
    out, errors = capfd.readouterr()
    assert "WARNING" not in out + errors and "unknown LL type" not in out + errors


def test_a_link_type_with_fcs_bits_is_read_by_its_lower_16_bits(tmp_path):
    path = save_pcap(recorded("handshake"), tmp_path / "fcs.pcap")
    data = bytearray(path.read_bytes())
    data[20:24] = struct.pack("<I", 1 | 1 << 26 | 2 << 28)  # Ethernet, frames end with a 4-byte FCS
    path.write_bytes(bytes(data))
    assert Conversation.from_packets(load_pcap(path)).flags() == HANDSHAKE_FLAGS


def test_splitting_into_streams_reads_each_packet_once(monkeypatch):
    # Linear time: however many streams, each packet is dissected for its headers once.
    import netlab.core.conversation as conversation

    calls = []
    real = conversation._read
    monkeypatch.setattr(conversation, "_read", lambda pkt: calls.append(pkt) or real(pkt))
    first, second = recorded("handshake"), recorded("handshake-slow-close")
    convs = conversations(first + second)
    assert len(convs) == 2 and len(calls) == len(first) + len(second)
