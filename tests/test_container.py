"""netlab in a real container engine, as a JupyterHub runs it (README, "Running a class on JupyterHub").

The profiles' and examples' files are checked everywhere. The image tests need podman with runc and
debootstrap, as root (`./run test` installs them on Debian): no registry of base images is
reachable on the machines we test on, so the base is made from Debian packages (debootstrap)
with the Jupyter Docker Stacks' conventions (user jovyan, uid 1000, Python in /opt/conda) and
handed to deploy/Containerfile as BASE_IMAGE. Both images are kept in podman's storage under a
tag made from the hash of what went into them: the first run builds them (a few minutes), later
runs take seconds. Containers run with every capability dropped, no-new-privileges and no network
but their own loopback; netlab uses only that and the lab's namespaces.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
SECCOMP = DEPLOY / "seccomp"
DOCKER_DEFAULT = SECCOMP / "docker-default.json"
NETLAB_PROFILE = SECCOMP / "netlab.json"
HUB = DEPLOY / "jupyterhub"
ADMIN_HINT = "see README, 'Running a class on JupyterHub'"

CLONE_NEWUSER, CLONE_NEWNET = 0x10000000, 0x40000000

sys.path.insert(0, str(SECCOMP))
import generate  # noqa: E402  (deploy/seccomp/generate.py: the profiles' one source)

sys.path.remove(str(SECCOMP))


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def rule(call: dict) -> dict:
    """A syscall rule as the kernel filter sees it: without Docker's comment and conditions."""
    return {key: call[key] for key in ("names", "action", "errnoRet", "args") if key in call}


# --- the profiles and the examples, checked on every machine -------------------------------------


def test_generated_files_are_up_to_date():
    result = subprocess.run([sys.executable, str(SECCOMP / "generate.py"), "--check"], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, f"run python3 deploy/seccomp/generate.py: {result.stdout}"


def test_netlab_profile_is_dockers_default_plus_three_rules():
    default, netlab = load(DOCKER_DEFAULT), load(NETLAB_PROFILE)
    assert {k: v for k, v in netlab.items() if k != "syscalls"} == {k: v for k, v in default.items() if k != "syscalls"}
    assert netlab["syscalls"][:len(default["syscalls"])] == default["syscalls"]
    added = [rule(call) for call in netlab["syscalls"][len(default["syscalls"]):]]
    assert added == [
        {"names": ["unshare"], "action": "SCMP_ACT_ALLOW",
         "args": [{"index": 0, "value": CLONE_NEWUSER | CLONE_NEWNET, "op": "SCMP_CMP_EQ"}]},
        {"names": ["setns"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": CLONE_NEWUSER, "op": "SCMP_CMP_EQ"}]},
        {"names": ["setns"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": CLONE_NEWNET, "op": "SCMP_CMP_EQ"}]},
    ]
    # Docker's default allows unshare and setns only with CAP_SYS_ADMIN, which no student's container has.
    for call in default["syscalls"]:
        if {"unshare", "setns"} & set(call["names"]):
            assert call["includes"] == {"caps": ["CAP_SYS_ADMIN"]}


@pytest.mark.parametrize("machine", sorted(generate.MACHINES))
def test_oci_profile_has_the_docker_profiles_rules(machine):
    """Every OCI rule is one of the Docker profile's, netlab's three among them, and nothing broader."""
    docker, oci = load(NETLAB_PROFILE), load(generate.oci_path(machine))
    docker_rules = [rule(call) for call in docker["syscalls"]]
    assert oci["defaultAction"] == docker["defaultAction"] == "SCMP_ACT_ERRNO"
    assert oci["defaultErrnoRet"] == docker["defaultErrnoRet"]
    arch = generate.MACHINES[machine][1]
    assert oci["architectures"][0] == arch
    assert {a["architecture"]: a["subArchitectures"] or [] for a in docker["archMap"]}[arch] == oci["architectures"][1:]
    assert all(call in docker_rules for call in oci["syscalls"])
    assert docker_rules[-3:] == oci["syscalls"][-3:]
    # No capability-only rule came along: unshare and setns appear only as netlab's rules.
    namespaced = [call for call in oci["syscalls"] if {"unshare", "setns", "mount", "bpf"} & set(call["names"])]
    assert namespaced == docker_rules[-3:]
    assert set(oci) == {"defaultAction", "defaultErrnoRet", "architectures", "syscalls"}


def test_helm_values_select_the_profile_the_installer_puts_on_each_node():
    values = yaml.safe_load((HUB / "z2jh-values.yaml").read_text())
    context = values["singleuser"]["extraContainerConfig"]["securityContext"]
    assert context["seccompProfile"] == {"type": "Localhost", "localhostProfile": "profiles/netlab.json"}
    assert context["capabilities"] == {"drop": ["ALL"]}
    assert values["singleuser"]["uid"] == 1000
    configmap, daemonset = yaml.safe_load_all((HUB / "seccomp-installer.yaml").read_text())
    for machine in generate.MACHINES:
        assert json.loads(configmap["data"][f"netlab.oci-{machine}.json"]) == load(generate.oci_path(machine))
    init = daemonset["spec"]["template"]["spec"]["initContainers"][0]
    assert "/host/profiles/netlab.json" in init["command"][-1]
    host = {v["name"]: v for v in daemonset["spec"]["template"]["spec"]["volumes"]}["kubelet-seccomp"]
    assert host["hostPath"]["path"] == "/var/lib/kubelet/seccomp"


def test_dockerspawner_config_passes_the_profile_as_json_text(monkeypatch):
    class Config(dict):
        """Enough of traitlets' config object: c.Section.name = value."""

        def __getattr__(self, name):
            return self.setdefault(name, Config())

        def __setattr__(self, name, value):
            self[name] = value

    c = Config()
    monkeypatch.setenv("NETLAB_SECCOMP_PROFILE", str(NETLAB_PROFILE))
    path = HUB / "dockerspawner_config.py"
    exec(compile(path.read_text(), str(path), "exec"), {"get_config": lambda: c})
    host = c.DockerSpawner.extra_host_config
    (seccomp,) = [opt for opt in host["security_opt"] if opt.startswith("seccomp=")]
    assert json.loads(seccomp.removeprefix("seccomp=")) == load(NETLAB_PROFILE)
    assert "no-new-privileges" in host["security_opt"] and host["cap_drop"] == ["ALL"]
    assert c.JupyterHub.spawner_class == "dockerspawner.DockerSpawner"


# --- the image in podman ----------------------------------------------------------------------------

# The Debian base: what the lab needs, Python with venv, and the Docker Stacks' user and layout.
SUITE = "bookworm"
MIRROR = "http://deb.debian.org/debian"
BASE_PACKAGES = ["python3", "python3-venv", "ca-certificates", "libpcap0.8", "iproute2", "nftables", "iperf3"]
BASE_CONTAINERFILE = """\
FROM {rootfs}
ENV NB_USER=jovyan NB_UID=1000 NB_GID=100 CONDA_DIR=/opt/conda HOME=/home/jovyan SHELL=/bin/bash \\
    LANG=C.UTF-8 PATH=/opt/conda/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt
RUN useradd --no-log-init --create-home --shell /bin/bash --uid 1000 --gid 100 jovyan && \\
    python3 -m venv /opt/conda && chown -R 1000:100 /opt/conda
USER 1000
WORKDIR /home/jovyan
EXPOSE 8888
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser"]
"""
# What deploy/Containerfile copies (.dockerignore says the same): a change to any of it is a new image.
IMAGE_INPUTS = ["deploy/Containerfile", ".dockerignore", "pyproject.toml", "netlab/**/*.py", "netlab/data/*",
                "notebooks/*.ipynb"]
BUILD_TIMEOUT = 900  # seconds: debootstrap and pip on 2 shared cores take about 4 minutes the first time
RUN_TIMEOUT = 180


def podman(*args: str, timeout: float = RUN_TIMEOUT, **kw) -> subprocess.CompletedProcess:
    # runc: podman's crun failed on these machines (DESIGN.md, "Measured in the second round").
    return subprocess.run(["podman", "--runtime", "runc", *args], capture_output=True, text=True, timeout=timeout, **kw)


def checked(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"{' '.join(result.args)} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


def digest(*parts: str | bytes) -> str:
    h = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        h.update(len(data).to_bytes(8, "big") + data)
    return h.hexdigest()[:16]


def image_inputs_digest(base: str) -> str:
    files = sorted({p for pattern in IMAGE_INPUTS for p in ROOT.glob(pattern) if p.is_file()})
    return digest(base, *(x for p in files for x in (str(p.relative_to(ROOT)), p.read_bytes())))


def reason_no_engine() -> str | None:
    """Why the image cannot be built here, in one line, or None."""
    if os.geteuid() != 0:
        return "building the base image with debootstrap needs root"
    missing = [tool for tool in ("podman", "runc", "debootstrap") if shutil.which(tool) is None]
    if missing:
        return f"no {', '.join(missing)} here (./run test installs them on Debian)"
    return None


def drop_other_tags(repository: str, keep: str) -> None:
    """Remove this repository's images older than an hour, so the cache stays small.

    Younger ones stay: another run of the tests, on a working tree a moment older, may be using one.
    """
    listed = podman("images", "--filter", "until=1h", "--format", "{{.Repository}}:{{.Tag}}")
    for name in listed.stdout.split():
        if name.startswith(f"{repository}:") and name != keep:
            podman("rmi", name)


def base_image() -> str:
    """A Debian image with the Docker Stacks' conventions, made once per recipe."""
    rootfs_tag = f"localhost/netlab-test-rootfs:{digest(SUITE, MIRROR, ' '.join(BASE_PACKAGES))}"
    # This machine's certificate authorities (a proxy's among them) let pip in the build reach PyPI.
    authorities = Path("/etc/ssl/certs/ca-certificates.crt").read_bytes()
    tag = f"localhost/netlab-test-base:{digest(rootfs_tag, BASE_CONTAINERFILE, authorities)}"
    if podman("image", "exists", tag).returncode == 0:
        return tag
    with tempfile.TemporaryDirectory(dir="/var/tmp", prefix="netlab-rootfs-") as scratch:
        if podman("image", "exists", rootfs_tag).returncode != 0:  # kept: it is the base's first layer
            rootfs = Path(scratch) / "rootfs"
            checked(subprocess.run(["debootstrap", "--variant=minbase", f"--include={','.join(BASE_PACKAGES)}",
                                    SUITE, str(rootfs), MIRROR], capture_output=True, text=True, timeout=BUILD_TIMEOUT))
            tar = subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE)
            try:
                checked(podman("import", "-", rootfs_tag, stdin=tar.stdout, timeout=BUILD_TIMEOUT))
            finally:
                tar.stdout.close()
                tar.wait(timeout=60)
        (Path(scratch) / "Containerfile").write_text(BASE_CONTAINERFILE.format(rootfs=rootfs_tag))
        (Path(scratch) / "ca-certificates.crt").write_bytes(authorities)
        checked(podman("build", "--network=host", "-t", tag, scratch, timeout=BUILD_TIMEOUT))
    drop_other_tags("localhost/netlab-test-rootfs", rootfs_tag)
    drop_other_tags("localhost/netlab-test-base", tag)
    return tag


@pytest.fixture(scope="module")
def image() -> str:
    """deploy/Containerfile built on the Debian base, student edition; rebuilt only when an input changed."""
    reason = reason_no_engine()
    if reason:
        pytest.skip(reason)
    base = base_image()
    tag = f"localhost/netlab-notebook-test:{image_inputs_digest(base)}"
    if podman("image", "exists", tag).returncode != 0:
        # Build from a copy of the context: the working tree changes under other developers' hands.
        checked(podman("build", "--network=host", "-f", "deploy/Containerfile", "--build-arg", f"BASE_IMAGE={base}",
                       "-t", tag, ".", cwd=ROOT, timeout=BUILD_TIMEOUT))
        drop_other_tags("localhost/netlab-notebook-test", tag)
    return tag


# podman's default limits (about a million open files and processes) are above what these hosts
# let runc set ("error setting rlimit type 6"; here nproc could not exceed 32768): a notebook
# server needs far less, so the containers get this process's limits, at most these.
LIMITS = {name: min(resource.getrlimit(limit)[1], most) for name, limit, most in
          (("nofile", resource.RLIMIT_NOFILE, 65536), ("nproc", resource.RLIMIT_NPROC, 16384))}


def run_in(image: str, profile: Path, *argv: str) -> subprocess.CompletedProcess:
    """Run argv in the image as uid 1000 under `profile`, every capability dropped, no network but loopback."""
    return podman("run", "--rm", "--network=none", "--user=1000:100", "--cap-drop=all",
                  "--security-opt=no-new-privileges", f"--security-opt=seccomp={profile}",
                  *(f"--ulimit={name}={most}:{most}" for name, most in LIMITS.items()), image, *argv)


def test_image_runs_as_jovyan_with_the_student_edition(image):
    script = """
import json, os, pathlib, pwd
series = sorted(pathlib.Path("/home/jovyan/netlab").glob("*.ipynb"))
text = "".join(p.read_text() for p in series)
print(json.dumps({"user": pwd.getpwuid(os.getuid()).pw_name, "uid": os.getuid(), "cwd": os.getcwd(),
                  "notebooks": len(series), "solutions": text.count("### BEGIN SOLUTION"),
                  "same": sorted(p.name for p in pathlib.Path("/opt/netlab/series").glob("*.ipynb"))
                          == [p.name for p in series]}))
"""
    facts = json.loads(checked(run_in(image, NETLAB_PROFILE, "python", "-c", script)).stdout)
    notebooks = len(list((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb")))
    assert facts == {"user": "jovyan", "uid": 1000, "cwd": "/home/jovyan", "notebooks": notebooks, "solutions": 0,
                     "same": True}


def test_dockers_default_profile_shows_recordings_and_tells_the_administrator(image):
    result = checked(run_in(image, DOCKER_DEFAULT, "python", "-m", "netlab", "handshake", "--out", "/tmp/out"))
    first = result.stdout.splitlines()[0]
    assert first.startswith("This system refuses to create a private network namespace"), result.stdout
    assert "seccomp" in first and "recorded captures" in first and first.rstrip(".").endswith(ADMIN_HINT), first
    assert "TCP stream 0, recorded" in result.stdout and "SYN-ACK" in result.stdout


def test_netlab_profile_runs_the_lab_live(image):
    result = checked(run_in(image, NETLAB_PROFILE, "python", "-m", "netlab", "handshake", "--out", "/tmp/out"))
    assert result.stdout.startswith("live: captured just now"), result.stdout
    assert "SYN-ACK" in result.stdout and "kernel after: TIME-WAIT" in result.stdout


def test_scripted_peer_runs_live_under_the_netlab_profile(image):
    """Notebook 05's peer joins the lab with nsenter: the two setns rules at work."""
    result = checked(run_in(image, NETLAB_PROFILE, "python", "-m", "netlab", "retransmit", "--count", "2"))
    assert result.stdout.startswith("live: captured just now on a 1500-byte link to a peer that netlab plays"), result.stdout
    assert "retransmission 2:" in result.stdout


def test_without_the_setns_rules_the_scripted_peer_shows_a_recording(image, tmp_path):
    """Each rule is needed: with unshare's alone the lab is live but nsenter cannot join it."""
    profile = load(NETLAB_PROFILE)
    profile["syscalls"] = [call for call in profile["syscalls"] if "setns" not in call["names"] or "includes" in call]
    path = tmp_path / "no-setns.json"
    path.write_text(json.dumps(profile))
    first = checked(run_in(image, path, "python", "-m", "netlab", "retransmit", "--count", "2")).stdout.splitlines()[0]
    assert first.startswith("recorded: This system lets netlab create a private network but refuses programs joining it"), first
    assert "seccomp" in first and ADMIN_HINT in first


def test_netlab_profile_allows_no_other_namespace(image):
    """The rules are exact: unshare with any other flags, or setns with another type, stays refused (EPERM)."""
    script = f"""
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)  # os.unshare and os.setns need Python 3.12; the image may have 3.11
USER, NET, MOUNT, PID = {CLONE_NEWUSER}, {CLONE_NEWNET}, 0x20000, 0x20000000
def child(flags, setns_type=None):
    pid = os.fork()
    if pid == 0:
        failed = libc.unshare(flags)
        if not failed and setns_type is not None:  # join the network namespace just made, which the kernel allows
            failed = libc.setns(os.open("/proc/self/ns/net", os.O_RDONLY), setns_type)
        os._exit(ctypes.get_errno() if failed else 0)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
print(child(USER | NET), child(USER), child(USER | NET | MOUNT), child(USER | NET | PID), child(USER | NET, NET),
      child(USER | NET, 0))
"""
    out = checked(run_in(image, NETLAB_PROFILE, "python", "-c", script)).stdout.split()
    # allowed, user alone, + mount, + pid, setns typed, setns untyped
    assert out == ["0", "1", "1", "1", "0", "1"], out
