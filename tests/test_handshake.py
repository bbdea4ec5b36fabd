"""Notebook 03's timers, live in the lab and recorded: Nagle's algorithm with the delayed ACK, and a
server restarted while its old connection sits in TIME-WAIT."""

from __future__ import annotations

import pytest

import netlab


@pytest.mark.slow
@pytest.mark.parametrize("recorded", [False, True])
def test_write_write_read_stalls_for_a_delayed_ack_and_tcp_nodelay_removes_it(recorded, monkeypatch):
    if recorded:
        monkeypatch.setenv("NETLAB_RECORDED", "1")
    stalled, fast = netlab.nagle(), netlab.nagle(nodelay=True)
    # Linux's delayed-ACK timeout is 40 ms at least, 200 ms at most.
    assert 30 <= stalled.result["median ms"] <= 200
    assert fast.result["median ms"] < 5
    segs = stalled.conversation.segments
    head = [i for i, s in enumerate(segs) if s.direction == "C→S" and s.payload == b"GET /"][2]
    lone_ack, body = segs[head + 1], segs[head + 2]
    assert (lone_ack.direction, lone_ack.flags, body.payload) == ("S→C", "ACK", b" HTTP\n")
    assert (lone_ack.time - segs[head].time) * 1000 >= 30


@pytest.mark.parametrize("recorded", [False, True])
def test_a_restarted_server_cannot_bind_its_port_during_time_wait_unless_it_reuses_the_address(recorded, monkeypatch):
    if recorded:
        monkeypatch.setenv("NETLAB_RECORDED", "1")
    refused, reused = netlab.restart_server(), netlab.restart_server(reuse_address=True)
    assert "Address already in use" in refused.result["second bind"]
    assert reused.result["second bind"].startswith("bound")
    for exp in (refused, reused):
        [waiting] = [s for s in exp.kernel_states if s.state == "TIME-WAIT"]
        assert waiting.local == exp.conversation.server  # the server closed first: its port is held
        assert exp.conversation.closed_first == "server"


def test_the_timer_experiments_refuse_bad_arguments_naming_them():
    with pytest.raises(TypeError, match="nodelay"):
        netlab.nagle(nodelay="yes")
    with pytest.raises(ValueError, match="requests"):
        netlab.nagle(requests=0)
    with pytest.raises(TypeError, match="reuse_address"):
        netlab.restart_server(reuse_address=1)
