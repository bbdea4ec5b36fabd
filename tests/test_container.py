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

import argparse
import ast
import hashlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
import yaml

pytestmark = pytest.mark.container

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


def test_netlab_profile_is_dockers_default_plus_netlabs_rules():
    default, netlab = load(DOCKER_DEFAULT), load(NETLAB_PROFILE)
    assert {k: v for k, v in netlab.items() if k != "syscalls"} == {k: v for k, v in default.items() if k != "syscalls"}
    assert netlab["syscalls"][:len(default["syscalls"])] == default["syscalls"]
    assert netlab["syscalls"][len(default["syscalls"]):] == generate.NETLAB_RULES
    for call in generate.NETLAB_RULES:  # one call, one argument compared exactly, and the reason
        assert len(call["names"]) == 1 and call["action"] == "SCMP_ACT_ALLOW", call
        assert [arg["op"] for arg in call["args"]] == ["SCMP_CMP_EQ"], call
        assert call["comment"].startswith("netlab: ") and len(call["comment"]) > 80, call
    # Docker's default allows unshare, setns and mount only with CAP_SYS_ADMIN, which no student's container has.
    for call in default["syscalls"]:
        if {"unshare", "setns", "mount"} & set(call["names"]):
            assert call["includes"] == {"caps": ["CAP_SYS_ADMIN"]}
    # clone with namespace flags: Docker's rules allow it only without them (or with CAP_SYS_ADMIN); netlab adds none.
    assert not [call for call in generate.NETLAB_RULES if {"clone", "clone3"} & set(call["names"])]


# --- every namespace call netlab makes, collected from its source ------------------------------------

CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWUTS, CLONE_NEWIPC = 0x20000, 0x20000000, 0x04000000, 0x08000000
CLONE_NEWCGROUP, CLONE_NEWTIME = 0x02000000, 0x80
MS_BIND, MS_REC, MS_PRIVATE = 0x1000, 0x4000, 0x40000
# util-linux's unshare and nsenter: each option naming a namespace, long and short.
NAMESPACE_OPTIONS = {"user": ("U", CLONE_NEWUSER), "net": ("n", CLONE_NEWNET), "mount": ("m", CLONE_NEWNS),
                     "pid": ("p", CLONE_NEWPID), "uts": ("u", CLONE_NEWUTS), "ipc": ("i", CLONE_NEWIPC),
                     "cgroup": ("C", CLONE_NEWCGROUP), "time": ("T", CLONE_NEWTIME)}
LONG = {f"--{name}": flag for name, (_, flag) in NAMESPACE_OPTIONS.items()}
SHORT = {letter: flag for letter, flag in NAMESPACE_OPTIONS.values()}
# The argument each libc call's flags are in: unshare(flags), setns(fd, nstype), mount(src, target, type, flags, data).
FLAGS_ARGUMENT = {"unshare": 0, "setns": 1, "mount": 3}
PROGRAMS = ("unshare", "nsenter")
KNOWN = {"CLONE_NEWUSER": CLONE_NEWUSER, "CLONE_NEWNET": CLONE_NEWNET, "CLONE_NEWNS": CLONE_NEWNS, "CLONE_NEWPID": CLONE_NEWPID,
         "CLONE_NEWUTS": CLONE_NEWUTS, "CLONE_NEWIPC": CLONE_NEWIPC, "CLONE_NEWCGROUP": CLONE_NEWCGROUP,
         "CLONE_NEWTIME": CLONE_NEWTIME, "MS_BIND": MS_BIND, "MS_REC": MS_REC, "MS_PRIVATE": MS_PRIVATE}
SHELL = re.compile(r"(?:^|[\s;&|(`'\"])(unshare|nsenter)((?:\s+-[-\w]+(?:=\S+)?)+)")

Call = tuple  # (system call, index of the argument compared, its value: None where it could not be told)


def _options_flags(options: list[str]) -> int:
    """The namespace flags util-linux's options name: --net, -Urn, --mount=/path, ..."""
    flags = 0
    for option in options:
        if option.startswith("--"):
            flags |= LONG.get(option.split("=")[0], 0)
        elif option.startswith("-"):
            flags |= sum(SHORT.get(letter, 0) for letter in set(option[1:]))
    return flags


def _program_calls(program: str, options: list[str]) -> set[Call]:
    """The system calls util-linux's `program` makes for these options (util-linux 2.38, which the image has)."""
    flags = _options_flags(options)
    if not flags:
        return set()
    if program == "nsenter":  # one setns per namespace, typed
        return {("setns", 1, bit) for bit in (1 << i for i in range(32)) if flags & bit}
    calls = {("unshare", 0, flags)}  # one unshare with every flag
    if flags & CLONE_NEWNS and "--propagation=unchanged" not in options:
        calls.add(("mount", 3, MS_REC | MS_PRIVATE))  # unshare --mount then makes every mount private
    return calls


def _collect(tree: ast.AST) -> set[Call]:
    """Every namespace call in one module: util-linux's programs in argv lists, call arguments and shell
    strings; libc's (or os's) unshare, setns and mount with their flags; and the same in Python code held in strings."""
    constants: dict[str, int] = {}
    programs: dict[str, str] = {}  # a variable's name -> the program it holds (tool = shutil.which("unshare"))
    docstrings = {id(node.body[0].value) for node in ast.walk(tree)
                  if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and node.body
                  and isinstance(node.body[0], ast.Expr) and isinstance(node.body[0].value, ast.Constant)}

    def value(node: ast.AST) -> int | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, int):
            return node.value
        if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
            left, right = value(node.left), value(node.right)
            return None if left is None or right is None else left | right
        if isinstance(node, ast.Name):
            return constants.get(node.id, KNOWN.get(node.id))
        if isinstance(node, ast.Attribute):  # os.CLONE_NEWNET (Python 3.12), module.CLONE_NEWNET
            return KNOWN.get(node.attr, constants.get(node.attr))
        return None

    def program(node: ast.AST) -> str | None:
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            name = node.value.rsplit("/", 1)[-1]
            return name if name in PROGRAMS else None
        if isinstance(node, ast.Name):
            return programs.get(node.id) or (node.id if node.id in PROGRAMS else None)
        if isinstance(node, ast.Call):  # shutil.which("unshare"), a lookup of the program by name
            return next((p for arg in node.args if (p := program(arg))), None)
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            targets = node.targets[0].elts if isinstance(node.targets[0], ast.Tuple) else [node.targets[0]]
            values = node.value.elts if isinstance(node.value, ast.Tuple) else [node.value]
            for target, v in zip(targets, values, strict=False):
                if isinstance(target, ast.Name) and (number := value(v)) is not None:
                    constants[target.id] = number
                if isinstance(target, ast.Name) and (name := program(v)):
                    programs[target.id] = name
    calls: set[Call] = set()
    for node in ast.walk(tree):
        sequences = [node.elts] if isinstance(node, (ast.List, ast.Tuple)) else [node.args] if isinstance(node, ast.Call) else []
        for elts in sequences:
            for i, elt in enumerate(elts):
                if name := program(elt):
                    options = []
                    for option in elts[i + 1:]:
                        text = option.value if isinstance(option, ast.Constant) else (
                            option.values[0].value if isinstance(option, ast.JoinedStr) and option.values
                            and isinstance(option.values[0], ast.Constant) else None)
                        if not isinstance(text, str) or not text.startswith("-") or text == "--":
                            break
                        options.append(text)
                    calls |= _program_calls(name, options)
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in FLAGS_ARGUMENT:
            index = FLAGS_ARGUMENT[node.func.attr]
            if node.func.attr == "mount" and len(node.args) < 4:
                continue  # not mount(2)
            calls.add((node.func.attr, index, value(node.args[index]) if len(node.args) > index else None))
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            for match in SHELL.finditer(node.value):
                calls |= _program_calls(match[1], match[2].split())
            if re.search(r"\b(unshare|setns|mount)\(", node.value):
                try:
                    calls |= _collect(ast.parse(node.value))
                except SyntaxError:
                    pass
    return calls


def namespace_calls() -> dict[Call, list[str]]:
    """Every namespace call netlab's source makes, each with the files that make it."""
    found: dict[Call, list[str]] = {}
    for path in sorted((ROOT / "netlab").rglob("*.py")):
        for call in _collect(ast.parse(path.read_text(), str(path))):
            found.setdefault(call, []).append(str(path.relative_to(ROOT)))
    return found


def test_the_collector_finds_each_way_of_making_a_namespace():
    code = textwrap.dedent("""
        import os, shutil, subprocess
        CLONE_NEWUTS = 0x04000000
        tool = shutil.which("unshare")
        subprocess.run([tool, "--user", "--map-root-user", "--net", "true"])
        subprocess.run(["unshare", "-Urnm", "--kill-child", "--", "sh"])
        lab.run("nsenter", f"--target={pid}", "--net", "ip", "link")
        os.system("unshare --pid --fork sh")
        libc.unshare(CLONE_NEWUTS)
        os.setns(fd, os.CLONE_NEWNET)
        libc.mount(b"a", b"b", None, MS_BIND | 0x4000, None)
        PROBE = "import ctypes\\nctypes.CDLL(None).unshare(0x08000000)"
        libc.unshare(flags)
        print("no `unshare` tool here")
    """)
    assert _collect(ast.parse(code)) == {
        ("unshare", 0, CLONE_NEWUSER | CLONE_NEWNET), ("unshare", 0, CLONE_NEWUSER | CLONE_NEWNET | CLONE_NEWNS),
        ("mount", 3, MS_REC | MS_PRIVATE), ("setns", 1, CLONE_NEWNET), ("unshare", 0, CLONE_NEWPID),
        ("unshare", 0, CLONE_NEWUTS), ("mount", 3, MS_BIND | MS_REC), ("unshare", 0, CLONE_NEWIPC), ("unshare", 0, None),
    }


def test_the_profile_allows_exactly_the_namespace_calls_netlab_makes():
    """A new namespace call in netlab fails here until NETLAB_RULES names it (with its reason); a rule no code needs, too."""
    found = namespace_calls()
    unknown = {call: where for call, where in found.items() if call[2] is None}
    assert not unknown, f"write these calls' flags as constants, so that this test can tell them: {unknown}"
    allowed = {(call["names"][0], call["args"][0]["index"], call["args"][0]["value"]) for call in generate.NETLAB_RULES}
    missing = {call: where for call, where in found.items() if call not in allowed}
    assert not missing, f"add a rule to NETLAB_RULES in deploy/seccomp/generate.py for each: {missing}"
    assert allowed <= set(found), f"rules no code of netlab needs: {allowed - set(found)}"
    assert len(allowed) == len(generate.NETLAB_RULES)


@pytest.mark.parametrize("machine", sorted(generate.MACHINES))
def test_oci_profile_has_the_docker_profiles_rules(machine):
    """Every OCI rule is one of the Docker profile's, netlab's among them, and nothing broader."""
    docker, oci = load(NETLAB_PROFILE), load(generate.oci_path(machine))
    docker_rules = [rule(call) for call in docker["syscalls"]]
    assert oci["defaultAction"] == docker["defaultAction"] == "SCMP_ACT_ERRNO"
    assert oci["defaultErrnoRet"] == docker["defaultErrnoRet"]
    arch = generate.MACHINES[machine][1]
    assert oci["architectures"][0] == arch
    assert {a["architecture"]: a["subArchitectures"] or [] for a in docker["archMap"]}[arch] == oci["architectures"][1:]
    assert all(call in docker_rules for call in oci["syscalls"])
    ours = [rule(call) for call in generate.NETLAB_RULES]
    assert oci["syscalls"][-len(ours):] == ours == docker_rules[-len(ours):]
    # No capability-only rule came along: unshare, setns and mount appear only as netlab's rules.
    namespaced = [call for call in oci["syscalls"] if {"unshare", "setns", "mount", "bpf"} & set(call["names"])]
    assert namespaced == ours
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


def run_in(image: str, profile: Path, *argv: str, options: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    """Run argv in the image as uid 1000 under `profile`, every capability dropped, no network but loopback."""
    return podman("run", "--rm", "--network=none", "--user=1000:100", "--cap-drop=all",
                  "--security-opt=no-new-privileges", f"--security-opt=seccomp={profile}", *options,
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


def _solution_lines() -> set[bytes]:
    """The longest line of each solution in the instructor edition (a line no student edition has)."""
    found = set()
    for path in (ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb"):
        for cell in json.loads(path.read_text())["cells"]:
            text = "".join(cell["source"])
            if "### BEGIN SOLUTION" in text:
                body = text.split("### BEGIN SOLUTION", 1)[1].split("### END SOLUTION", 1)[0]
                found.add(max((line.strip() for line in body.splitlines()), key=len).encode())
    return found


def test_no_layer_of_the_image_holds_a_solution(image, tmp_path):
    """Every layer of the student image, not only its final file system: a file deleted by a later layer stays in it."""
    import io
    import tarfile

    archive = tmp_path / "image.tar"
    checked(podman("save", "--format", "docker-archive", "-o", str(archive), image, timeout=BUILD_TIMEOUT))
    solutions = _solution_lines()
    assert len(solutions) >= 30
    layers = held = 0
    with tarfile.open(archive) as outer:
        for member in outer.getmembers():
            if not member.isfile() or not member.name.endswith((".tar", "layer.tar")):
                continue
            layers += 1
            with tarfile.open(fileobj=io.BytesIO(outer.extractfile(member).read())) as layer:
                for entry in layer.getmembers():
                    if not entry.isfile():
                        continue
                    data = layer.extractfile(entry).read()
                    if entry.name.endswith(".ipynb"):
                        held += 1
                        assert b"BEGIN SOLUTION" not in data, f"{entry.name} in layer {member.name}"
                    found = [line for line in solutions if line in data]
                    assert not found, f"{entry.name} in layer {member.name} holds a solution: {found[0][:80]!r}"
    notebooks = len(list((ROOT / "notebooks").glob("[0-9][0-9]-*.ipynb")))
    assert layers >= 3 and held == 2 * notebooks  # the edition, in /opt/netlab/series and in the home folder


# The series, as its command line offers it: every subcommand that runs a lesson's experiment, and one
# recorded experiment of each other lesson, so a new lesson joins these tests without an edit here.
def lesson_commands() -> list[str]:
    """The subcommands that run a lesson's experiment (`set_defaults(experiment=True)`; not `http-server`,
    which serves until stopped)."""
    return sorted(name for name, parser in _subparsers().choices.items() if parser.get_default("experiment"))


def lesson_experiments() -> dict[str, str]:
    """For each lesson whose experiments no subcommand runs: the first recording it ships, by name.

    The recording's experiment (its RECORDINGS entry) is what the container runs for that lesson, so
    every lesson is tried under each profile. A lesson with neither (07's concurrency and bulk run on
    the host's loopback where the lab is refused, and ship no recording) has nothing to fall back to.
    """
    from netlab.lessons import lesson_names, lesson_parts

    with_command = {parser.get_default("func").__module__.split(".")[2] for parser in _subparsers().choices.values()
                    if parser.get_default("experiment")}
    recorded = {module.__name__.split(".")[2]: next(iter(module.RECORDINGS)) for module in lesson_parts("experiments")
                if getattr(module, "RECORDINGS", None)}
    return {lesson: recorded[lesson] for lesson in lesson_names() if lesson not in with_command and lesson in recorded}


def _subparsers() -> argparse._SubParsersAction:
    from netlab.__main__ import build_parser

    (subcommands,) = [a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return subcommands


# Run in the container: one experiment of each lesson above, timed; one JSON object back, keyed "lesson:recording".
EXPERIMENTS = """
import importlib, json, sys, time
results = {}
for lesson, recording in json.loads(sys.argv[1]).items():
    start = time.monotonic()
    exp = importlib.import_module(f"netlab.lessons.{lesson}.experiments").RECORDINGS[recording]()
    exp = getattr(exp, "experiment", exp)  # a comparison or exchange that holds its experiment
    results[f"{lesson}:{recording}"] = {"code": 0, "err": "", "out": f"{exp.why}\\n", "source": exp.source,
                                        "seconds": round(time.monotonic() - start, 2)}
print(json.dumps(results))
"""

# Run in the container: each command with its defaults, timed; one JSON object back.
SERIES = """
import json, subprocess, sys, time
results = {}
for name in json.loads(sys.argv[1]):
    start = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "netlab", name], capture_output=True, text=True, timeout=150, cwd="/tmp")
    results[name] = {"code": done.returncode, "out": done.stdout, "err": done.stderr,
                     "seconds": round(time.monotonic() - start, 2)}
print(json.dumps(results))
"""
FALLBACK_SECONDS = 10.0  # a refusal falls back at once: python, the lab's start and the recording, never a 15 s wait


# Container engines mount /proc/sys read-only: a router in the lab cannot turn its forwarding on there.
# Unmasked, its files for the container's own settings stay root's, out of reach of uid 1000 without
# capabilities; only those of the lab's own network namespaces are the lab's to write.
WRITABLE_SYSCTLS = ("--security-opt=unmask=/proc/sys",)


def run_series(image: str, profile: Path, commands: list[str] | None = None, options: tuple[str, ...] = ()
               ) -> dict[str, dict]:
    """Each lesson's subcommand, and one recorded experiment of each lesson without one, in the image."""
    everything = commands is None
    commands = commands or lesson_commands()
    assert {"handshake", "cwnd", "traceroute"} <= set(lesson_commands()), commands  # the discovery found the series
    results = json.loads(checked(run_in(image, profile, "python", "-c", SERIES, json.dumps(commands),
                                        options=options)).stdout)
    if everything:
        experiments = lesson_experiments()
        assert {"sockets", "http", "failures", "tls"} <= set(experiments), experiments
        results.update(json.loads(checked(run_in(image, profile, "python", "-c", EXPERIMENTS, json.dumps(experiments),
                                                 options=options)).stdout))
    for name, done in results.items():
        assert done["code"] == 0 and "Traceback" not in done["err"] + done["out"], f"{name}: {done}"
    return results


def first_line(done: dict) -> str:
    return done["out"].splitlines()[0].removeprefix("recorded: ")


def test_netlab_profile_runs_every_lesson_live(image):
    """Live, except what needs a router while /proc/sys is read-only: that falls back in one sentence,
    and runs live too once the container's /proc/sys is writable."""
    results = run_series(image, NETLAB_PROFILE)
    read_only = {name: first_line(done) for name, done in results.items() if not done["out"].startswith("live")}
    for name, why in read_only.items():
        assert "/proc/sys is mounted read-only" in why and why.rstrip(".").endswith(ADMIN_HINT), f"{name}: {why}"
        assert results[name]["seconds"] < FALLBACK_SECONDS, results[name]
    assert "traceroute" in read_only and "handshake" not in read_only, read_only
    again = run_series(image, NETLAB_PROFILE, sorted(read_only), options=WRITABLE_SYSCTLS)
    not_live = {name: first_line(done) for name, done in again.items() if not done["out"].startswith("live")}
    assert not not_live, not_live


def test_dockers_default_profile_shows_every_recording_and_tells_the_administrator(image):
    for name, done in run_series(image, DOCKER_DEFAULT).items():
        why = first_line(done)  # an experiment's may first name its recording ("http-keepalive.pcap, 3 requests for /.")
        assert "This system refuses to create a private network namespace" in why, f"{name}: {why}"
        assert "seccomp" in why and f"{ADMIN_HINT}." in why, f"{name}: {why}"  # retransmit adds a sentence of its own
        assert done["seconds"] < FALLBACK_SECONDS, f"{name}: {done}"


def test_a_profile_without_the_inner_rules_keeps_the_lab_live_and_the_rest_falls_back(image, tmp_path):
    """An older profile (Docker's default plus the lab's three rules, before issue 24): the lab's own
    experiments run live; those needing a namespace inside the lab show their recording at once, with the hint."""
    profile = load(DOCKER_DEFAULT)
    profile["syscalls"] += [
        {"names": ["unshare"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 0, "value": CLONE_NEWUSER | CLONE_NEWNET,
                                                                      "op": "SCMP_CMP_EQ"}]},
        {"names": ["setns"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": CLONE_NEWUSER, "op": "SCMP_CMP_EQ"}]},
        {"names": ["setns"], "action": "SCMP_ACT_ALLOW", "args": [{"index": 1, "value": CLONE_NEWNET, "op": "SCMP_CMP_EQ"}]},
    ]
    path = tmp_path / "three-rules.json"
    path.write_text(json.dumps(profile))
    results = run_series(image, path)
    fell_back = {}
    for name, done in results.items():
        if done["out"].startswith("live"):
            continue
        why = fell_back[name] = first_line(done)
        assert why.startswith("This system lets netlab create a private network but refuses "), f"{name}: {why}"
        assert "inside it (a seccomp filter" in why and why.rstrip(".").endswith(ADMIN_HINT), f"{name}: {why}"
        assert done["seconds"] < FALLBACK_SECONDS, f"{name}: {done}"
    assert "handshake" not in fell_back and fell_back, results  # the lab itself is live; something needed more
    assert {"cwnd", "traceroute"} <= set(fell_back), fell_back


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
    """The rules are exact: any other flags stay refused (EPERM), and what they allow works only inside a
    user namespace the process made itself (README's trade-off): outside one the kernel refuses it."""
    script = f"""
import ctypes, os, platform, tempfile
libc = ctypes.CDLL(None, use_errno=True)  # os.unshare and os.setns need Python 3.12; the image may have 3.11
USER, NET, MOUNT, PID = {CLONE_NEWUSER}, {CLONE_NEWNET}, {CLONE_NEWNS}, {CLONE_NEWPID}
BIND, REC, PRIVATE = {MS_BIND}, {MS_REC}, {MS_PRIVATE}
SYS_CLONE = {{"x86_64": 56, "aarch64": 220}}[platform.machine()]
spare = tempfile.NamedTemporaryFile().name.encode()
open(spare, "w").close()
def child(*steps):
    pid = os.fork()
    if pid == 0:
        for step in steps:
            if step() != 0:
                os._exit(ctypes.get_errno())
        os._exit(0)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
unshare = lambda flags: lambda: libc.unshare(flags)
setns = lambda kind: lambda: libc.setns(os.open("/proc/self/ns/net", os.O_RDONLY), kind)  # the namespace it is in
mount = lambda flags, fstype=None, source=spare: lambda: libc.mount(source, spare, fstype, flags, None)
private = lambda: libc.mount(b"none", b"/", None, REC | PRIVATE, None)
clone = lambda flags: lambda: libc.syscall(SYS_CLONE, flags | 17, 0, 0, 0, 0) or os._exit(0)  # 17: SIGCHLD
lab = unshare(USER | NET)
print(child(lab), child(unshare(USER)), child(unshare(USER | NET | MOUNT)), child(unshare(USER | NET | PID)),
      child(lab, setns(NET)), child(lab, setns(0)),
      child(unshare(NET)), child(unshare(MOUNT)), child(mount(BIND)),
      child(lab, unshare(NET)), child(lab, unshare(MOUNT), private, mount(BIND)), child(lab, unshare(MOUNT | NET)),
      child(lab, unshare(PID)), child(lab, unshare(MOUNT), private, mount(BIND | REC)),
      child(lab, unshare(MOUNT), private, mount(0, b"tmpfs", b"none")), child(clone(USER | NET)), child(clone(NET)))
"""
    out = checked(run_in(image, NETLAB_PROFILE, "python", "-c", script)).stdout.split()
    assert out == [
        "0", "1", "1", "1", "0", "1",  # the lab; a user namespace alone, + mount, + pid; setns typed, untyped
        "1", "1", "1",  # allowed by the filter, refused by the kernel outside a user namespace of one's own
        "0", "0", "1",  # in the lab: a network namespace; a mount namespace, private, a file bound; both at once refused
        "1", "1", "1",  # in the lab: a pid namespace, a recursive bind, a new filesystem (tmpfs)
        "1", "1",  # clone with namespace flags
    ], out
