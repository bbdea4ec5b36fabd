"""netlab: see your own TCP handshake, captured live in a private lab network.

The names a notebook uses, one line per idea:

    exp = netlab.handshake()          # live in the lab, or recorded where the lab is refused
    print(exp.conversation)           # the segments as a table
    netlab.draw.ladder(exp.conversation)

This module is the face of the package: it gathers the core's names and the lessons' modules
under one `netlab`, and nothing in netlab imports it back. The lessons are found, never listed:
each lesson package under `netlab/lessons/` says which names it offers (see `netlab.lessons`).
Importing netlab does nothing else: no processes, no sockets, no matplotlib settings. See README,
"How it works", for the layers.

Every name is loaded when first used: the lab's helper processes import netlab too (their code
lives in it), and each `Lab()` would otherwise pay about 0.1 s for modules it never uses.
"""

import importlib
import importlib.machinery
import sys
from typing import Any

# The core's names that `netlab.NAME` offers, by the module that defines each. A lesson's names are
# not listed here: each lesson package declares its own (FACE_NAMES, FACE_MODULE), found by `_lessons`.
_NAMES = {
    "netlab.core.capture": ("Capture",),
    "netlab.core.conversation": ("Conversation", "Segment", "conversations"),
    # errors: one family
    "netlab.core.errors": (
        "NetlabError", "LabError", "LabUnavailable", "CaptureError", "PcapError", "ConversationError",
        "NoHandshakeError", "ProtocolError", "HelperError", "WaitTimeout",
    ),
    "netlab.core.experiment": ("Experiment", "load_recorded", "mode", "run"),
    "netlab.core.explore": ("explore",),  # ipywidgets and matplotlib load on first use
    "netlab.core.lab": ("Lab", "SocketState"),
    "netlab.core.pcapfiles": ("load_pcap", "save_pcap"),
    # notebooks 02 and 06: echo servers, framing, a retry that gives up cleanly
    "netlab.core.sockets": (
        "EchoServer", "MessageTooLarge", "PeerClosed", "RetryError", "connect_with_retry", "echo_server", "hello",
        "recv_exactly", "recv_message", "recv_until_closed", "send_message",
    ),
}

_HOME = {name: module for module, names in _NAMES.items() for name in names}

# Modules of the core (and the checks' view) a notebook reaches as `netlab.NAME`.
_MODULES = {
    "draw": "netlab.core.draw",  # ladder, state diagram, time-sequence graph, window plot, encapsulation
    "checks": "netlab.checks",  # the exercises' checks, gathered from the lessons
}


def _lessons() -> tuple[dict[str, str], dict[str, str]]:
    """What the lessons offer, found by walking `netlab.lessons`: (`netlab.NAME` → the lesson module it is,
    NAME → the lesson module that defines it). Only each lesson's small `__init__.py` is imported."""
    lessons = importlib.import_module("netlab.lessons")  # not `from netlab import`: that asks this module's __getattr__
    modules: dict[str, str] = {}
    names: dict[str, str] = {}
    offered_by: dict[str, str] = {}
    for lesson_name in lessons.lesson_names():
        package = lessons.lesson(lesson_name)
        experiments = f"{package.__name__}.experiments"
        face_module = getattr(package, "FACE_MODULE", None)
        offered = [face_module] if face_module else []
        offered += getattr(package, "FACE_NAMES", ())
        for name in offered:
            if name in offered_by or name in _MODULES or name in _HOME:
                raise ImportError(f"two parts of netlab offer netlab.{name}: the lesson {lesson_name!r} and "
                                  f"{offered_by.get(name, 'the core')!r}")
            offered_by[name] = lesson_name
        if face_module:
            modules[face_module] = experiments
        names.update(dict.fromkeys(getattr(package, "FACE_NAMES", ()), experiments))
    return modules, names


def _all_modules() -> dict[str, str]:
    """Every module a notebook reaches as `netlab.NAME`: the core's above and the lessons'."""
    return {**_MODULES, **_lessons()[0]}


def __getattr__(name: str) -> Any:
    if name.startswith("__"):  # __all__ and Python's own probes (__path__ is real, __wrapped__ is not)
        if name == "__all__":
            modules, names = _lessons()
            return [*_HOME, *names, *sorted({*_MODULES, *modules})]
        raise AttributeError(f"module 'netlab' has no attribute {name!r}")
    if name in _MODULES:
        value = importlib.import_module(_MODULES[name])
    elif name in _HOME:
        value = getattr(importlib.import_module(_HOME[name]), name)
    else:
        modules, names = _lessons()
        if name in modules:
            value = importlib.import_module(modules[name])
        elif name in names:
            value = getattr(importlib.import_module(names[name]), name)
        else:
            raise AttributeError(f"module 'netlab' has no attribute {name!r}")
    globals()[name] = value  # the next use is an ordinary attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__getattr__("__all__")})


class _ModulePaths:
    """`import netlab.http` (and `from netlab.http import site`) gives the module `netlab.http` names.

    The modules notebooks reach as `netlab.NAME` live in the core or a lesson since the package was
    layered; this finder keeps their old import paths working by answering for exactly those names.
    It is a meta path finder and its own loader by the methods importlib calls, without deriving
    from importlib.abc's classes: importing importlib.abc (and importlib.util) took 6-8 ms, more
    than the rest of `import netlab`.
    """

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.partition(".")
        if package == __name__ and "." not in name and name in _all_modules():
            return importlib.machinery.ModuleSpec(fullname, self)
        return None

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Any:
        real = importlib.import_module(_all_modules()[spec.name.partition(".")[2]])
        self._real_spec = real.__spec__  # importlib puts the alias's spec on the module: put its own back below
        return real

    def exec_module(self, module: Any) -> None:
        # The real module ran when it was imported under its own name; it keeps that name's spec,
        # which importlib.reload and the multiprocessing's spawn read.
        module.__spec__ = self._real_spec


if not any(isinstance(finder, _ModulePaths) for finder in sys.meta_path):
    sys.meta_path.append(_ModulePaths())
