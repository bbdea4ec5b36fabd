#!/usr/bin/env python3
"""Write netlab's seccomp profiles from Docker's default profile plus the rules netlab needs.

One source, several files, so they cannot drift (README, "Running a class on JupyterHub"):

- `docker-default.json` is Docker's default profile as moby ships it (Apache-2.0, see NOTICE).
- `NETLAB_RULES` below are the only additions: one rule per system call netlab makes that
  Docker's default allows only with CAP_SYS_ADMIN, each with the exact flags netlab uses and its
  reason in its comment (tests/test_container.py collects those calls from netlab's source and
  checks that this list names each of them, and nothing else). No `clone` rule: netlab makes every
  namespace with unshare(), and `clone` with namespace flags stays refused.
- `netlab.json`: Docker's format (for Docker, podman and DockerSpawner).
- `netlab.oci-x86_64.json`, `netlab.oci-aarch64.json`: the OCI runtime format containerd reads
  from the kubelet's seccomp folder on Kubernetes. Docker's `archMap`, `includes` and `excludes`
  are resolved the way moby resolves them (profiles/seccomp/seccomp_linux.go) for one machine
  architecture, a kernel of 4.8 or later and the default capabilities of Docker and containerd.
- `../jupyterhub/seccomp-installer.yaml`: a ConfigMap holding both OCI files and a DaemonSet that
  copies the node's one into the kubelet's seccomp folder.
- `netlab-grader.json` and `netlab-grader.oci-*.json`: the grader's profile (deploy/grading/job.yaml):
  netlab's rules plus `GRADER_RULES`, what bubblewrap needs to make a sandbox per submission.

Run `python3 deploy/seccomp/generate.py` after changing a rule or updating docker-default.json;
`--check` exits 1 when a written file differs from what would be written (tests/test_container.py).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DOCKER_DEFAULT = HERE / "docker-default.json"
DOCKER_PROFILE = HERE / "netlab.json"
INSTALLER = HERE.parent / "jupyterhub" / "seccomp-installer.yaml"

# Namespace flags from <linux/sched.h>, mount flags from <linux/mount.h>.
CLONE_NEWNS = 0x00020000
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000


def _exactly(call: str, index: int, value: int, comment: str) -> dict[str, Any]:
    """A rule allowing `call` only when its argument `index` equals `value`."""
    return {"names": [call], "action": "SCMP_ACT_ALLOW", "args": [{"index": index, "value": value, "op": "SCMP_CMP_EQ"}],
            "comment": f"netlab: {comment}"}


# Why each is acceptable: a new network or mount namespace alone (and a mount) needs CAP_SYS_ADMIN
# over the namespace it is made from, which a student's process holds only inside a user namespace
# it made itself (rule 1); there it reaches nothing but that namespace's own network and mounts.
NETLAB_RULES: list[dict[str, Any]] = [
    _exactly("unshare", 0, CLONE_NEWUSER | CLONE_NEWNET,
             "the lab: `unshare --user --map-root-user --net` (core/lab.py) and the grader's `unshare -Urn` "
             "(classroom/grading.py) make a user and a network namespace in one call, "
             "unshare(CLONE_NEWUSER|CLONE_NEWNET); any other combination stays refused"),
    _exactly("unshare", 0, CLONE_NEWNET,
             "a network namespace inside the lab: the bottleneck's receiver (core/inlab/receiver.py, notebook 09) and "
             "the routed topologies' routers and hosts (core/inlab/topology_agent.py, notebooks 10 to 13), unshare(CLONE_NEWNET); "
             "it needs CAP_SYS_ADMIN, held only in a user namespace the process made"),
    _exactly("unshare", 0, CLONE_NEWNS,
             "a mount namespace inside the lab for notebook 10's resolver, so that the lab's resolv.conf can "
             "replace /etc's for one program (lessons/below.py), unshare(CLONE_NEWNS); it needs CAP_SYS_ADMIN, held "
             "only in a user namespace the process made"),
    _exactly("mount", 3, MS_REC | MS_PRIVATE,
             "the resolver makes its new mount namespace private, so nothing it mounts propagates out "
             "(mount(\"none\", \"/\", NULL, MS_REC|MS_PRIVATE)); only in a mount namespace of its own user namespace"),
    _exactly("mount", 3, MS_BIND,
             "the resolver binds the lab's resolv.conf, hosts and nsswitch.conf over /etc's (mount(file, file, NULL, "
             "MS_BIND)): no new filesystem, only files it can read; only in a mount namespace of its own user namespace"),
    _exactly("setns", 1, CLONE_NEWUSER,
             "nsenter joins the lab's user namespace (setns(fd, CLONE_NEWUSER)) to start a program in the lab "
             "(Lab.popen: the scripted peer, iperf3, load generators, the bottleneck's programs, the topology's agent)"),
    _exactly("setns", 1, CLONE_NEWNET,
             "nsenter joins the lab's network namespace (setns(fd, CLONE_NEWNET)), and the topology's agent "
             "moves between the router's and the server's (core/inlab/topology_agent.py)"),
]

# The grader's profile (`netlab-grader.json`, for the Kubernetes Job in deploy/grading/): netlab's
# rules, and what bubblewrap needs to make each submission's sandbox as an ordinary user. bwrap
# makes every namespace in one clone() (user, mount, PID, network, IPC, UTS, cgroup), mounts the
# sandbox's file system (binds, tmpfs, proc), pivots into it and unmounts the old root, and makes a
# second user namespace for the uid the sandbox runs as. Each needs CAP_SYS_ADMIN over a namespace,
# which the grader's processes (uid 1000, no capability) hold only inside user namespaces they made.
GRADER_RULES: list[dict[str, Any]] = [
    {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
     "comment": "netlab grader: bwrap makes the sandbox's namespaces in one clone() with CLONE_NEW* flags"},
    {"names": ["unshare"], "action": "SCMP_ACT_ALLOW",
     "comment": "netlab grader: bwrap's second user namespace (--unshare-user --uid), and the labs inside the sandbox"},
    {"names": ["mount", "umount2", "pivot_root"], "action": "SCMP_ACT_ALLOW",
     "comment": "netlab grader: bwrap mounts the sandbox's binds, tmpfs and /proc, and pivots into it"},
    {"names": ["sethostname"], "action": "SCMP_ACT_ALLOW",
     "comment": "netlab grader: bwrap names the sandbox's own UTS namespace (--hostname)"},
    {"names": ["setns"], "action": "SCMP_ACT_ALLOW",
     "comment": "netlab grader: nsenter joins a lab inside the sandbox (as the notebook profile allows)"},
]
GRADER_PROFILE = HERE / "netlab-grader.json"

# Go's name for each machine (moby's goToNative), keyed by `uname -m`, and its seccomp architecture.
MACHINES = {"x86_64": ("amd64", "SCMP_ARCH_X86_64"), "aarch64": ("arm64", "SCMP_ARCH_AARCH64")}

# The bounding set Docker and containerd give a container unless told otherwise (moby's
# oci/caps/defaults.go, containerd's pkg/oci/spec.go): rules that need any other capability drop out.
DEFAULT_CAPS = frozenset({
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
})
KERNEL = (4, 8)  # every rule's minKernel is 4.8 or older; a Kubernetes node runs a newer kernel


def docker_profile(default: dict[str, Any]) -> dict[str, Any]:
    """Docker's default profile with netlab's rules appended."""
    profile = copy.deepcopy(default)
    profile["syscalls"] = profile["syscalls"] + copy.deepcopy(NETLAB_RULES)
    return profile


def grader_profile(default: dict[str, Any]) -> dict[str, Any]:
    """Docker's default profile with netlab's rules and the grader's (bubblewrap's) appended."""
    profile = docker_profile(default)
    profile["syscalls"] = profile["syscalls"] + copy.deepcopy(GRADER_RULES)
    return profile


def _kernel_at_least(version: str) -> bool:
    return tuple(int(part) for part in version.split(".")[:2]) <= KERNEL


def oci_profile(profile: dict[str, Any], machine: str, caps: frozenset[str] = DEFAULT_CAPS) -> dict[str, Any]:
    """The OCI runtime format of a Docker-format profile, resolved as moby resolves it on `machine`."""
    arch, seccomp_arch = MACHINES[machine]
    out: dict[str, Any] = {"defaultAction": profile["defaultAction"]}
    if "defaultErrnoRet" in profile:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    for entry in profile.get("archMap") or []:
        if entry["architecture"] == seccomp_arch:
            out["architectures"] = [entry["architecture"], *(entry.get("subArchitectures") or [])]
    syscalls = []
    for call in profile["syscalls"]:
        excludes, includes = call.get("excludes") or {}, call.get("includes") or {}
        if arch in excludes.get("arches", []) or caps & set(excludes.get("caps", [])):
            continue
        if "minKernel" in excludes and _kernel_at_least(excludes["minKernel"]):
            continue
        if includes.get("arches") and arch not in includes["arches"]:
            continue
        if not set(includes.get("caps", [])) <= caps:
            continue
        if "minKernel" in includes and not _kernel_at_least(includes["minKernel"]):
            continue
        syscalls.append({key: value for key, value in call.items() if key in ("names", "action", "errnoRet", "args")})
    out["syscalls"] = syscalls
    return out


def oci_path(machine: str, name: str = "netlab") -> Path:
    """Where the OCI profile `name` for one machine architecture (`uname -m`) is written."""
    return HERE / f"{name}.oci-{machine}.json"


def installer(oci: dict[str, dict[str, Any]]) -> str:
    """A ConfigMap with the OCI profiles and a DaemonSet copying the node's one to the kubelet's folder."""
    data = "".join(f"  netlab.oci-{machine}.json: '{json.dumps(profile, separators=(',', ':'))}'\n"
                   for machine, profile in oci.items())
    return f"""\
# Generated by deploy/seccomp/generate.py: do not edit, run it again.
# Puts netlab's seccomp profile (OCI format) on every node at
# /var/lib/kubelet/seccomp/profiles/netlab.json, where the Helm values' seccompProfile
# (type Localhost, localhostProfile profiles/netlab.json) finds it. Apply it once:
#   kubectl apply -n kube-system -f seccomp-installer.yaml
# The Security Profiles Operator is the alternative where a cluster already runs it.
apiVersion: v1
kind: ConfigMap
metadata:
  name: netlab-seccomp
data:
{data}---
apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: netlab-seccomp
  labels: {{app: netlab-seccomp}}
spec:
  selector:
    matchLabels: {{app: netlab-seccomp}}
  template:
    metadata:
      labels: {{app: netlab-seccomp}}
    spec:
      initContainers:
        - name: install
          image: busybox:1.36
          command: ["sh", "-c", "mkdir -p /host/profiles && cp /profiles/netlab.oci-$(uname -m).json /host/profiles/netlab.json"]
          volumeMounts:
            - {{name: profiles, mountPath: /profiles, readOnly: true}}
            - {{name: kubelet-seccomp, mountPath: /host}}
      containers:
        - name: pause
          image: registry.k8s.io/pause:3.9
      volumes:
        - name: profiles
          configMap: {{name: netlab-seccomp}}
        - name: kubelet-seccomp
          hostPath: {{path: /var/lib/kubelet/seccomp, type: DirectoryOrCreate}}
"""


def outputs() -> dict[Path, str]:
    """Every generated file and the text it should hold."""
    profile = docker_profile(json.loads(DOCKER_DEFAULT.read_text()))
    oci = {machine: oci_profile(profile, machine) for machine in MACHINES}
    files = {DOCKER_PROFILE: json.dumps(profile, indent="\t") + "\n"}
    files.update({oci_path(machine): json.dumps(body, indent="\t") + "\n" for machine, body in oci.items()})
    files[INSTALLER] = installer(oci)
    grader = grader_profile(json.loads(DOCKER_DEFAULT.read_text()))
    files[GRADER_PROFILE] = json.dumps(grader, indent="\t") + "\n"
    files.update({oci_path(machine, "netlab-grader"): json.dumps(oci_profile(grader, machine), indent="\t") + "\n"
                  for machine in MACHINES})
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 if a file is out of date")
    args = parser.parse_args(argv)
    stale = []
    for path, text in outputs().items():
        if path.exists() and path.read_text() == text:
            continue
        stale.append(path)
        if not args.check:
            path.write_text(text)
    for path in stale:
        print(f"{'out of date' if args.check else 'wrote'}: {path.relative_to(HERE.parent.parent)}")
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
