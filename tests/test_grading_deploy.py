"""Grading beyond one machine (#28 item 8): the Kubernetes Indexed Job and the grader's seccomp profile.

The Job is checked against Kubernetes' own schemas (kubernetes-validate) and against what
`netlab grade` accepts; the grader's profile (deploy/seccomp/generate.py's GRADER_RULES) is
installed with libseccomp (pyseccomp) in front of a real sandbox, which must then be made with a
live lab inside, and the notebook profile must refuse it. A cluster was not run here (README).
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from netlab.classroom import sandbox

pytestmark = pytest.mark.grading

ROOT = Path(__file__).resolve().parent.parent
JOB = ROOT / "deploy" / "grading" / "job.yaml"
SECCOMP = ROOT / "deploy" / "seccomp"

# Install an OCI-format profile (the file containerd reads) with libseccomp, then exec the program.
LOAD_PROFILE = """
import errno, json, os, sys
import pyseccomp
profile = json.load(open(sys.argv[1]))
ops = {"SCMP_CMP_EQ": pyseccomp.EQ, "SCMP_CMP_NE": pyseccomp.NE, "SCMP_CMP_MASKED_EQ": pyseccomp.MASKED_EQ,
       "SCMP_CMP_GE": pyseccomp.GE, "SCMP_CMP_GT": pyseccomp.GT, "SCMP_CMP_LE": pyseccomp.LE, "SCMP_CMP_LT": pyseccomp.LT}
default = pyseccomp.ERRNO(profile.get("defaultErrnoRet", errno.EPERM))
f = pyseccomp.SyscallFilter(default)
for rule in profile["syscalls"]:
    action = pyseccomp.ALLOW if rule["action"] == "SCMP_ACT_ALLOW" else pyseccomp.ERRNO(rule.get("errnoRet", errno.EPERM))
    args = [pyseccomp.Arg(a["index"], ops[a["op"]], a["value"], a.get("valueTwo", 0)) for a in rule.get("args", [])]
    for name in rule["names"]:
        try:
            f.add_rule(action, name, *args)
        except (RuntimeError, ValueError, OSError):  # a call this kernel or libseccomp does not know
            pass
f.load()
os.execv(sys.argv[2], sys.argv[2:])
"""


def _documents() -> list[dict]:
    return [d for d in yaml.safe_load_all(JOB.read_text()) if d]


def test_the_job_is_valid_kubernetes():
    kubernetes_validate = pytest.importorskip("kubernetes_validate", reason="kubernetes-validate (the test extra)")
    for document in _documents():
        kubernetes_validate.validate(document, kubernetes_validate.latest_version(), strict=True)


def test_the_job_grades_one_shard_per_index_with_the_grader_profile():
    job = next(d for d in _documents() if d["kind"] == "Job")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] >= 1
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["seccompProfile"] == {"type": "Localhost",
                                                         "localhostProfile": "profiles/netlab-grader.json"}
    container = pod["containers"][0]
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    script = container["command"][-1]
    assert "--shard" in script and "JOB_COMPLETION_INDEX" in script and str(spec["completions"]) in script
    # What the Job runs is a command line `netlab grade` accepts (parsed here with one shard's numbers).
    words = shlex.split(script.replace("$((JOB_COMPLETION_INDEX + 1))", "1").replace("$JOB_COMPLETION_INDEX", "0"))
    grade = words[words.index("netlab") + 1:]
    from netlab.__main__ import build_parser

    args = build_parser().parse_args([w for w in grade if "*" not in w] + ["/submissions/x"])
    assert args.shard == (1, spec["completions"]) and not args.unsandboxed


@pytest.mark.skipif(sandbox.problem() is not None, reason=f"no sandbox here: {sandbox.problem()}")
@pytest.mark.parametrize(("profile", "made"), [("netlab-grader", True), ("netlab", False)])
def test_the_sandbox_is_made_under_the_grader_profile_and_not_under_the_notebooks(profile, made):
    pytest.importorskip("pyseccomp", reason="pyseccomp (the test extra) installs the profile")
    machine = os.uname().machine
    path = SECCOMP / f"{profile}.oci-{machine}.json"
    if not path.exists():
        pytest.skip(f"no profile for {machine}")
    probe = sandbox.command([programs_unshare(), "-Urn", "--", programs_ip(), "link", "set", "lo", "up"])
    done = subprocess.run([sys.executable, "-c", LOAD_PROFILE, str(path), *probe], capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode == 0) == made, done.stderr[-1000:]


def programs_unshare() -> str:
    from netlab.core import programs

    return programs.program("unshare")


def programs_ip() -> str:
    from netlab.core import programs

    return programs.program("ip")


def test_the_grader_profile_is_the_notebook_profile_plus_the_grader_rules():
    import importlib.util

    spec = importlib.util.spec_from_file_location("generate", SECCOMP / "generate.py")
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    grader = json.loads((SECCOMP / "netlab-grader.json").read_text())
    notebook = json.loads((SECCOMP / "netlab.json").read_text())
    assert grader["syscalls"] == notebook["syscalls"] + generate.GRADER_RULES
    assert all(rule["comment"].startswith("netlab grader:") for rule in generate.GRADER_RULES)
