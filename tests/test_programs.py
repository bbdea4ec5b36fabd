"""netlab finds the system programs it runs where the system keeps them, whatever the user's PATH.

Debian gives an ordinary user PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games,
without /usr/sbin and /sbin, where `tc`, `nft` and `sysctl` live: run by bare name, they were not
found and notebook 09 failed whole for such a user (issue 23). tests/test_ordinary_user.py runs
the lab's tests as such a user; these tests pin the lookup itself.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from netlab.core import programs
from netlab.core.errors import LabUnavailable
from netlab.core.programs import ProgramMissing

DEBIAN_USER_PATH = "/usr/local/bin:/usr/bin:/bin:/usr/local/games:/usr/games"


def one_sentence(text: str) -> bool:
    return "\n" not in text and text.endswith(".") and not re.search(r"[.!?]\s", text)


def test_with_an_ordinary_users_path_tc_is_found_in_sbin(monkeypatch):
    if not any(os.path.exists(f"{d}/tc") for d in ("/usr/sbin", "/sbin")):
        pytest.skip("iproute2's tc is not in /usr/sbin or /sbin here")
    monkeypatch.setenv("PATH", DEBIAN_USER_PATH)
    assert shutil.which("tc") is None  # what netlab used to do, and why it failed
    found = programs.program("tc")
    assert os.path.isabs(found) and Path(found).name == "tc"
    assert os.path.dirname(found) in ("/usr/sbin", "/sbin")


def test_a_program_on_path_comes_first(monkeypatch, tmp_path):
    mine = tmp_path / "tc"
    mine.write_text("#!/bin/sh\n")
    mine.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{DEBIAN_USER_PATH}")
    assert programs.program("tc") == str(mine)


def test_command_gives_the_absolute_path_and_keeps_the_arguments(monkeypatch):
    monkeypatch.setenv("PATH", DEBIAN_USER_PATH)
    argv = programs.command(["ip", "-o", "link"])
    assert os.path.isabs(argv[0]) and argv[1:] == ["-o", "link"]
    assert programs.command(["/bin/true", "x"]) == ["/bin/true", "x"]
    with pytest.raises(ValueError, match="program name"):
        programs.command([])


def test_a_missing_program_is_one_sentence_naming_its_package_and_a_lab_refusal(without_programs):
    without_programs("nft")
    with pytest.raises(ProgramMissing) as err:
        programs.program("nft", "to drop a datagram")
    assert isinstance(err.value, LabUnavailable) and err.value.name == "nft"
    said = str(err.value)
    assert one_sentence(said), said
    assert "`nft`" in said and "nftables" in said and "to drop a datagram" in said and "recorded" in said


def test_installed_but_not_found_is_told_apart_from_not_installed(monkeypatch, tmp_path):
    if programs._installed("iproute2") is False:
        pytest.skip("dpkg does not list iproute2 here")
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(programs, "SYSTEM_DIRS", ("/nonexistent",))
    said = str(pytest.raises(ProgramMissing, programs.program, "tc").value)
    assert one_sentence(said) and "iproute2 package is installed" in said and "/nonexistent" in said, said
    assert "has no `tc`" not in said
    missing = str(pytest.raises(ProgramMissing, programs.program, "netlab-no-such-program").value)
    assert one_sentence(missing) and "has no `netlab-no-such-program` program" in missing, missing


def test_iperf3_missing_means_no_comparison_not_an_error(without_programs):
    without_programs("iperf3")
    from netlab.lessons.bulk import experiments as bulk

    assert bulk.iperf3(1000) is None


@pytest.mark.lab
def test_the_rebooted_host_without_nft_shows_its_recording(without_programs):
    without_programs("nft")
    from netlab.lessons.failures import experiments as failures

    exp = failures.rebooted_host()
    assert exp.source == "recorded" and "`nft`" in exp.why and "nftables" in exp.why, exp.why
    assert one_sentence(exp.why)
