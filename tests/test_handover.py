"""An answer as data (#26 item 2): what a check cell hands over, read back in another process.

The codec (`netlab.core.handover`) and the split of every check into an answer and a verdict
(`netlab.core.checking`): the data is JSON, a verdict decided from it in a fresh interpreter is
the one the student saw, and what is not an answer (a look-alike, a class of no one's) is refused
with one sentence, never run.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
import textwrap
from types import SimpleNamespace

import pytest

import netlab
from netlab import checks
from netlab.core import checking, handover
from netlab.core.handover import HandoverError


def _round_trip(value, functions=False):
    return handover.decode(json.loads(json.dumps(handover.encode(value))), functions=functions)


def test_plain_values_survive_json_unchanged():
    value = {"n": 3, "big": 2**70, "x": 0.5, "nan": float("inf"), "s": "é", "b": b"\x00\xff", "t": (1, 2),
             "set": {1, 2}, "none": None, "ellipsis": ..., 7: [True, False]}
    assert _round_trip(value) == value


def test_a_capture_travels_with_its_packets_and_comes_back_a_capture():
    exp = netlab.load_recorded("handshake")
    back = _round_trip(exp)
    assert type(back) is type(exp) and back.source == "recorded"
    assert [bytes(p) for p in back.packets] == [bytes(p) for p in exp.packets]
    assert back.conversation.server == exp.conversation.server
    assert handover.captures(handover.encode(exp))[0]["id"] == handover.capture_id(exp.packets)


def test_a_look_alike_is_refused_naming_what_it_is():
    fake = SimpleNamespace(conversation=SimpleNamespace(server=("127.0.0.1", 1)))
    with pytest.raises(HandoverError, match="SimpleNamespace"):
        handover.encode(fake)
    feedback = checks.server_port(fake, 1)
    assert not feedback and "SimpleNamespace" in feedback.message


def test_data_naming_a_class_outside_netlab_and_scapy_is_refused_not_run():
    for data in ({"object": "os:system", "fields": {}}, {"object": "subprocess:Popen", "fields": {"args": "true"}},
                 {"exception": "os:system", "args": ["true"]}, {"packet": "builtins:eval", "bytes": ""}):
        with pytest.raises(HandoverError):
            handover.decode(data)


def test_a_function_travels_as_its_source_and_is_rebuilt_only_when_asked():
    def double(x):
        return 2 * x

    data = handover.encode(double)
    assert "return 2 * x" in data["function"]["source"]
    with pytest.raises(HandoverError, match="sandboxed verifier"):
        handover.decode(data)
    rebuilt = handover.decode(data, functions=True)
    assert rebuilt(21) == 42
    # A verdict that reads the student's source (notebook 11's do) reads it from the rebuilt function too.
    assert inspect.getsource(rebuilt) == data["function"]["source"]


def test_a_library_function_travels_by_its_name():
    from scapy.utils import checksum

    assert handover.encode(checksum) == {"function": {"imported": "scapy.utils:checksum"}}


def test_the_verdict_from_the_data_alone_in_another_process_is_the_students():
    source = textwrap.dedent("""
        def internet_checksum(data):
            if len(data) % 2:
                data += b"\\0"
            total = sum(int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2))
            while total > 0xFFFF:
                total = (total & 0xFFFF) + (total >> 16)
            return ~total & 0xFFFF
    """)
    space: dict = {}
    exec(compile(source, "<cell>", "exec"), space)  # as a notebook cell defines it
    import linecache

    linecache.cache["<cell>"] = (len(source), None, source.splitlines(True), "<cell>")
    packet = netlab.load_recorded("handshake").packets[3]
    mine = checks.internet_checksum(space["internet_checksum"], packet)
    answer = checking.hand_over(checks.internet_checksum, (space["internet_checksum"], packet), {})
    done = subprocess.run([sys.executable, "-c", "import json, sys; from netlab.core.checking import verify; "
                           "fb = verify(json.load(sys.stdin)); print(json.dumps([fb.ok, fb.message]))"],
                          input=json.dumps(answer), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [mine.ok, mine.message] and mine.ok


def test_an_answer_naming_no_exercise_check_gets_a_cross_not_a_call():
    for name in ("os:system", "netlab.core.checking:verify", "netlab.lessons.handshake.experiments:handshake"):
        feedback = checking.verify({"check": name, "args": [], "kwargs": {"dict": []}})
        assert not feedback and "cannot be read" in feedback.message


def test_outside_any_kernel_a_check_returns_its_cross():
    # A script or a test reads the Feedback; only a kernel without an interactive frontend fails closed.
    assert checking.interactive() and not checking.must_raise()
    assert not checks.segments_for_write(8760, 1)
