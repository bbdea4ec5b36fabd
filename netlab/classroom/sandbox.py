"""A sandbox per submission, made by bubblewrap (`bwrap`, the sandbox Flatpak uses).

Theory of operation. Whatever a student's notebook runs (its kernel, the lab helpers it starts,
a process it forks and forgets) runs inside one `bwrap` whose every namespace is new:

- it sees the Python and netlab installations read-only, a few files of /etc, a fresh /dev and
  /proc (its own processes only), and its own copy of the student's folder at /submission, copied
  into a tmpfs of bounded size when the sandbox starts (no link is followed: `copy_plan` refuses a
  link leaving the folder and any special file); HOME and /tmp are fresh tmpfs too. The
  submissions, the instructor edition, the grader's files and the grades are not there to see;
- its network is its own (loopback only), so the lab the notebook makes is inside it and live;
- `--die-with-parent` and its PID namespace end every process it started when it ends;
- limits per process (address space, file size, CPU seconds) and per sandbox on processes. The
  grading user's RLIMIT_NPROC counts all its processes together, every sandbox's; but since Linux
  5.14 the kernel also counts them per user namespace, against the limit of the process that
  forks. So the sandbox's first program is `prlimit --nproc=N` inside the sandbox's own user
  namespace: its processes stop at N, and another sandbox's fork bomb does not eat into them
  (measured: two bombs side by side as an ordinary user each stopped at their own limit). Root's
  processes are exempt from RLIMIT_NPROC, so a grader running as root (CI) also puts each sandbox
  in cgroups of its own (`confine`, `release`): pids, and memory (2 GiB for the whole sandbox).
  An ordinary user cannot make cgroups here, so its sandboxes' memory is bounded per process only.

Two programs run in such a sandbox: a student's kernel (`kernel_argv`, which jupyter_client starts
through `python -m netlab.classroom.sandbox`, a launcher that opens the student's files and execs
`bwrap`), and the verifier (`netlab.classroom.verifier`), in a sandbox of its own with no student
file at all. `problem()` says why no sandbox can be made here, or None.
"""

from __future__ import annotations

import json
import os
import resource
import stat
import subprocess
import sys
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from netlab.core import programs

__all__ = ["LIMITS", "Limits", "SandboxRefused", "command", "confine", "copy_plan", "kernel_argv", "problem",
           "release", "set_limits"]

INSIDE = "/submission"  # where the student's folder is, inside the sandbox
# The sandbox's own empty HOME, at a path no installation lives under: its tmpfs is mounted after the
# installations are bound, and a grader whose Python is under /home/student (a user named student,
# running from their own checkout) had it hidden there, so no kernel started.
HOME = "/sandbox-home"


@dataclass(frozen=True)
class Limits:
    """What one sandbox may use: bytes of memory per process, processes, bytes per file, CPU seconds, tmpfs bytes."""

    memory: int = 8 * 2**30  # address space per process: 07's threaded server reserves 8 MB of stack per thread
    sandbox_memory: int = 2 * 2**30  # bytes of memory of the whole sandbox, where a memory cgroup can be made (root)
    processes: int = 2048  # processes and threads of the sandbox together (07's threaded server has 500 threads)
    file_size: int = 64 * 2**20
    cpu_seconds: int = 1800
    folder_bytes: int = 256 * 2**20  # the tmpfs holding the student's folder (and what the notebook writes there)
    scratch_bytes: int = 128 * 2**20  # HOME and /tmp, each
    files: int = 400  # files in a student's folder; more is no submission


LIMITS = Limits()


class SandboxRefused(Exception):
    """A submission folder that is not copied into a sandbox: the reason is the message."""


def _readable(path: str) -> bool:
    return os.path.exists(path) and os.access(path, os.R_OK)


def _installations() -> list[str]:
    """The folders Python and netlab run from, read-only in the sandbox (the same paths as outside)."""
    import netlab

    found = {sys.base_prefix, sys.prefix, str(Path(netlab.__file__).resolve().parent)}
    found.update(p for p in sys.path if p and os.path.isdir(p))
    keep = []
    for path in sorted(found, key=len):
        if path.startswith("/usr/") or path == "/usr" or any(path.startswith(k + "/") for k in keep):
            continue
        keep.append(path)
    return keep


def command(argv: list[str], *, files: list[tuple[str, int | None]] = (), binds: list[str] = (),
            env: dict[str, str] | None = None, limits: Limits = LIMITS) -> list[str]:
    """The `bwrap` command that runs `argv` sandboxed; `files` are (path inside /submission, fd or None for a folder),
    `binds` host folders bound read-write at the same path (the kernel's connection folder)."""
    bwrap = programs.program("bwrap")
    # Not root even in its own namespaces (uid 1000 there), no capability: as root, a lab inside
    # (unshare -Urn) could not map its user; as uid 1000 it can, and it gets nothing more.
    args = [bwrap, "--unshare-all", "--unshare-user", "--uid", "1000", "--gid", "1000", "--die-with-parent",
            "--new-session", "--cap-drop", "ALL", "--hostname", "netlab",
            "--ro-bind", "/usr", "/usr", "--proc", "/proc", "--dev", "/dev"]
    for name in ("bin", "lib", "lib32", "lib64", "sbin"):
        target = f"/{name}"
        if os.path.islink(target):
            args += ["--symlink", os.readlink(target), target]
        elif os.path.isdir(target):
            args += ["--ro-bind", target, target]
    # /etc/resolv.conf is there to be covered: notebooks 10 and 12 bind the lab's own over it in a mount
    # namespace of their resolver (a bind needs a file to cover); the sandbox has no network to use it on.
    for etc in ("/etc/ld.so.cache", "/etc/ld.so.conf", "/etc/ld.so.conf.d", "/etc/alternatives", "/etc/hosts",
                "/etc/resolv.conf", "/etc/nsswitch.conf", "/etc/passwd", "/etc/group", "/etc/ssl", "/etc/localtime",
                "/etc/protocols", "/etc/services", "/etc/mime.types", "/etc/iproute2", "/etc/matplotlibrc",
                "/etc/ethertypes", "/etc/fonts"):
        if _readable(etc):
            args += ["--ro-bind", etc, etc]
    for path in ("/sys/class/net", "/sys/devices/virtual/net", "/sys/devices/system/cpu"):
        if _readable(path):
            args += ["--ro-bind", path, path]
    for path in _installations():
        args += ["--ro-bind", path, path]
    args += ["--size", str(limits.scratch_bytes), "--tmpfs", "/tmp",
             "--size", str(limits.scratch_bytes), "--tmpfs", HOME,
             "--size", str(limits.folder_bytes), "--tmpfs", INSIDE]
    for inside, fd in files:
        target = f"{INSIDE}/{inside}"
        args += ["--dir", target] if fd is None else ["--file", str(fd), target]
    for path in binds:
        args += ["--bind", path, path]
    args += ["--chdir", INSIDE, "--clearenv"]
    base = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin", "HOME": HOME, "LANG": "C.UTF-8",
            "TMPDIR": "/tmp", "PYTHONSAFEPATH": "1", "MPLBACKEND": "agg", "PYTHONUNBUFFERED": "1"}
    for key, value in {**base, **(env or {})}.items():
        args += ["--setenv", key, value]
    # prlimit runs inside the sandbox's user namespace: the process limit counts this sandbox alone.
    nproc = f"--nproc={limits.processes}:{limits.processes}"
    return [*args, "--", programs.program("prlimit"), nproc, "--", *argv]


def set_limits(limits: Limits = LIMITS) -> None:
    """Apply `limits` per process to this process and what it starts (call it just before exec'ing `bwrap`)."""
    for which, value in ((resource.RLIMIT_AS, limits.memory), (resource.RLIMIT_FSIZE, limits.file_size),
                         (resource.RLIMIT_CPU, limits.cpu_seconds), (resource.RLIMIT_CORE, 0)):
        soft, hard = resource.getrlimit(which)
        value = value if hard == resource.RLIM_INFINITY else min(value, hard)
        resource.setrlimit(which, (value, value))


def _cgroups() -> list[tuple[Path, dict[str, int]]]:
    """Where this process may make child cgroups, and what each bounds: [(folder, {file: LIMITS' field})]."""
    found = []
    v2 = Path("/sys/fs/cgroup")
    if (v2 / "cgroup.controllers").exists():  # cgroup v2: one tree, this process's own folder in it
        own = (Path("/proc/self/cgroup").read_text().splitlines() or ["0::/"])[0].split("::", 1)[-1]
        here = v2 / own.lstrip("/")
        controllers = (here / "cgroup.subtree_control").read_text().split() if here.exists() else []
        limits = {"pids.max": "processes", "memory.max": "sandbox_memory"}
        found.append((here, {f: n for f, n in limits.items() if f.split(".")[0] in controllers}))
        return found
    for line in Path("/proc/self/cgroup").read_text().splitlines():  # cgroup v1: one tree per controller
        _, names, path = line.split(":", 2)
        for controller, limit in (("pids", ("pids.max", "processes")), ("memory", ("memory.limit_in_bytes", "sandbox_memory"))):
            if controller in names.split(","):
                found.append((Path("/sys/fs/cgroup") / controller / path.lstrip("/"), dict([limit])))
    return found


def confine(name: str, limits: Limits = LIMITS) -> None:
    """Bound this process and all it starts (call it just before exec'ing `bwrap`): `set_limits`, and as root
    cgroups `name` of its own for processes (root's are exempt from RLIMIT_NPROC) and memory."""
    set_limits(limits)
    if os.geteuid() != 0:
        return
    for where, files in _cgroups():
        if not files or not where.is_dir():
            continue
        try:
            group = where / name
            group.mkdir(exist_ok=True)
            for file, field in files.items():
                (group / file).write_text(f"{getattr(limits, field)}\n")
            (group / "cgroup.procs").write_text(f"{os.getpid()}\n")
        except OSError:
            continue  # not allowed here: the sandbox is then bounded by its rlimits and time alone (README)


def release(name: str) -> None:
    """Remove the cgroups `confine` made, once the sandbox's processes are gone (up to 5 s)."""
    if os.geteuid() != 0:
        return
    for where, _ in _cgroups():
        group = where / name
        for _ in range(50):
            if not group.exists():
                break
            try:
                group.rmdir()
            except OSError:
                time.sleep(0.1)


def copy_plan(folder: Path, limits: Limits = LIMITS) -> list[tuple[str, Path | None]]:
    """What of `folder` goes into the sandbox: (relative path, file or None for a folder), links not followed.

    Raises SandboxRefused for a special file (a pipe, a socket, a device), a link leaving the
    folder, or more files or bytes than `limits` allow: one "*" row for that student.
    """
    root = Path(folder)
    if root.is_symlink() or not root.is_dir():
        raise SandboxRefused(f"{folder} is not a folder of its own (a link, or no folder)")
    plan: list[tuple[str, Path | None]] = []
    total = 0
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        here = Path(dirpath)
        for name in sorted(dirnames + filenames):
            path = here / name
            rel = path.relative_to(root).as_posix()
            info = path.lstat()
            if stat.S_ISLNK(info.st_mode):
                target = (path.parent / os.readlink(path)).resolve()
                if root.resolve() not in (target, *target.parents) or not target.exists():
                    raise SandboxRefused(f"{rel} is a link that leaves the submission folder (to {os.readlink(path)})")
                if name in dirnames:
                    dirnames.remove(name)  # a link to a folder inside: its files are copied where they are
                    continue
                info = target.stat()
                if stat.S_ISDIR(info.st_mode):
                    continue
                path = target
            if stat.S_ISDIR(info.st_mode):
                plan.append((rel, None))
            elif stat.S_ISREG(info.st_mode):
                total += info.st_size
                plan.append((rel, path))
            else:
                raise SandboxRefused(f"{rel} is a special file (a pipe, a socket or a device), not a file or a folder")
            if len(plan) > limits.files or total > limits.folder_bytes // 2:
                raise SandboxRefused(f"the folder holds more than {limits.files} files or "
                                     f"{limits.folder_bytes // 2 // 2**20} MB")
    return plan


def kernel_argv(plan_file: Path) -> list[str]:
    """A kernel spec's argv: the launcher below reads `plan_file` and execs the kernel in a sandbox."""
    return [sys.executable, "-I", "-m", "netlab.classroom.sandbox", str(plan_file), "{connection_file}"]


@cache
def problem() -> str | None:
    """None where a sandbox with a live lab inside can be made here, else one sentence saying why not."""
    if programs.find("bwrap") is None:
        return "bubblewrap (bwrap) is not installed (Debian: apt-get install bubblewrap)"
    unshare, ip = programs.find("unshare"), programs.find("ip")
    if unshare is None or ip is None:
        return "unshare or ip is missing, so no lab can be made inside a sandbox"
    try:
        done = subprocess.run(command([unshare, "-Urn", "--", ip, "link", "set", "lo", "up"]), capture_output=True,
                              timeout=20, stdin=subprocess.DEVNULL, preexec_fn=set_limits)
    except (OSError, subprocess.TimeoutExpired) as err:
        return f"bwrap could not run ({err})"
    if done.returncode != 0:
        said = done.stderr.decode(errors="replace").strip().splitlines()
        return f"bwrap could not make a sandbox with a lab inside ({said[-1] if said else done.returncode})"
    return None


def _launch(plan_file: str, connection_file: str) -> None:
    """Exec `bwrap` for a kernel: the plan says the folder, the argv and the env; the connection file's folder is shared."""
    plan = json.loads(Path(plan_file).read_text())
    files = []
    for rel, source in plan["files"]:
        files.append((rel, None if source is None else os.open(source, os.O_RDONLY | os.O_NOFOLLOW)))
    argv = [a.replace("{connection_file}", connection_file) for a in plan["argv"]]
    args = command(argv, files=files, binds=[str(Path(connection_file).parent)], env=plan["env"])
    for _, fd in files:
        if fd is not None:
            os.set_inheritable(fd, True)
    confine(plan["cgroup"])
    os.execv(args[0], args)


if __name__ == "__main__":
    _launch(sys.argv[1], sys.argv[2])
