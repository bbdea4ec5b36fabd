"""The set-up's promises: two commands for people, the same test command for CI, one package list.

README.md gives a fresh machine two commands (`./run lab`, `./run test`); .ci/run runs that same
test command and nothing else; pyproject.toml (pip) and environment.yml (conda, Binder) name the
same packages with the same minimum versions, environment.yml adding only libpcap.
"""

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
# A C library that pip cannot install and scapy's capture filters need.
CONDA_ONLY = {"libpcap"}
# What conda needs to build the environment, not what netlab imports.
CONDA_TOOLING = {"python", "pip"}
# Installed with pip from environment.yml, with pyproject's specifier (pyseccomp is not on conda-forge).
PIP_ONLY = {"pyseccomp", "kubernetes-validate"}


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def pip_requirements() -> dict[str, str]:
    """Map each package of pyproject.toml (dependencies, the test and classroom extras) to its specifier."""
    project = pyproject()["project"]
    extras = project["optional-dependencies"]
    lines = project["dependencies"] + extras["test"] + extras["classroom"]
    return {canonicalize_name(r.name): str(r.specifier) for r in map(Requirement, lines)}


def environment_yml() -> tuple[dict[str, str], list[str]]:
    """Return environment.yml's conda packages (name to specifier) and its pip lines.

    Read by hand, so the tests need no YAML library: the file is one list of dependencies,
    whose only nested list is pip's.
    """
    conda, pip = {}, []
    in_dependencies, top = False, None
    for raw in (ROOT / "environment.yml").read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        indent = len(line) - len(line.lstrip())
        if indent == 0:
            in_dependencies = line == "dependencies:"
            continue
        if not in_dependencies:
            continue
        item = line.strip().removeprefix("-").strip()
        top = indent if top is None else top
        if indent > top:
            pip.append(item)
        elif item != "pip:":
            requirement = Requirement(item)
            conda[canonicalize_name(requirement.name)] = str(requirement.specifier)
    return conda, pip


def code_blocks(text: str) -> list[list[str]]:
    """Return the commands of each shell code block in a markdown text, comments left out."""
    blocks = re.findall(r"```(?:bash|sh|console|shell)?\n(.*?)```", text, re.S)
    return [
        [ln.strip() for ln in block.splitlines() if ln.strip() and not ln.strip().startswith("#")]
        for block in blocks
    ]


def readme_commands() -> list[str]:
    blocks = code_blocks((ROOT / "README.md").read_text(encoding="utf-8"))
    assert blocks, "README.md has no shell code block"
    return blocks[0]


def test_environment_yml_lists_the_pyproject_packages_plus_libpcap():
    conda, _ = environment_yml()
    assert set(conda) - CONDA_TOOLING == set(pip_requirements()) - PIP_ONLY | CONDA_ONLY


def test_environment_yml_asks_for_the_same_minimum_versions_as_pyproject():
    conda, pip = environment_yml()
    conda.update({canonicalize_name(r.name): str(r.specifier) for r in map(Requirement, pip[:-1])})  # PIP_ONLY's
    for name, specifier in pip_requirements().items():
        assert conda[name] == specifier, f"{name}: environment.yml says {conda[name]!r}, pyproject.toml {specifier!r}"
    assert conda["python"] == pyproject()["project"]["requires-python"]


def test_environment_yml_installs_netlab_itself_from_the_checkout():
    _, pip = environment_yml()
    assert pip == [*sorted(f"{name}{pip_requirements()[name]}" for name in PIP_ONLY), "-e ."]


def test_readme_quick_start_is_one_command_to_open_the_lab_and_one_to_test():
    # Whole lines, no trailing comment: the project checker looks for the test line in .ci/run.
    assert readme_commands() == ["./run lab", "./run test"]


def test_ci_runs_the_readme_test_command_and_nothing_else():
    test_command = next(c for c in readme_commands() if "test" in c)
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    commands = [
        ln.strip().removeprefix("exec ")
        for ln in lines
        if ln.strip() and not ln.lstrip().startswith(("#", "set ", "cd "))
    ]
    assert commands == [test_command]


def test_run_is_an_executable_bash_script_that_parses():
    run = ROOT / "run"
    assert os.access(run, os.X_OK), "run is not executable: chmod +x run"
    assert run.read_text(encoding="utf-8").startswith("#!/usr/bin/env bash\n")
    subprocess.run(["bash", "-n", str(run)], check=True)


def test_run_without_a_command_prints_usage_naming_lab_and_test():
    done = subprocess.run([str(ROOT / "run")], capture_output=True, text=True, timeout=10)
    assert done.returncode == 0
    assert done.stdout.startswith("usage: ./run COMMAND")
    assert re.search(r"^\s+lab\s", done.stdout, re.M) and re.search(r"^\s+test\s", done.stdout, re.M)


def test_run_rejects_an_unknown_command():
    done = subprocess.run([str(ROOT / "run"), "tset"], capture_output=True, text=True, timeout=10)
    assert done.returncode == 2
    assert "usage" in done.stderr


@pytest.mark.slow
@pytest.mark.skipif(
    Path(sys.prefix).resolve() != (ROOT / ".venv").resolve(),
    reason="calls ./run, which sets up .venv: runs only under ./run test, where that is already done",
)
def test_run_test_fails_when_pytest_collects_no_tests():
    done = subprocess.run(
        [str(ROOT / "run"), "test", "tests/test_setup.py", "-k", "no_test_has_this_name"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 5, done.stdout + done.stderr
    assert "no tests" in done.stderr
