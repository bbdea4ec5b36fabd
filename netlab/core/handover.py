"""An exercise answer as data: what a check cell hands over, and how a verifier reads it back.

Theory of operation. Under grading, the student's code and the instructor's verdict never share an
interpreter (README, "What grading stops"). So what a check cell passes to its check (a number,
a dict, a scapy packet, the student's own capture, a function the student wrote) is turned into
JSON here, `encode`, and read back, `decode`, by a verifier in another process. Two rules:

1. Decoding runs no code of the student's unless asked (`functions=True`, which only a sandboxed
   verifier and the student's own kernel pass): a value is rebuilt from literals, a packet by
   scapy's dissector from its bytes, an object only if its class is one of netlab's dataclasses
   (or a scapy layer, or a built-in or netlab exception) named by module and qualified name.
2. A function travels as its source, with the modules and the top-level functions of the
   notebook that it uses, never as a reference into a live interpreter; a closure or an object the
   codec does not know is refused with one sentence that names it (HandoverError), so a student
   sees at once, in their own run, what a grader could not read.

A capture (an Experiment: its packets, live or recorded, what the kernel and the program said)
travels as its fields like any dataclass; `capture_id` names its packets by a hash, so a grader
can tell one capture handed in by two students, or a capture that is a shipped recording.
"""

from __future__ import annotations

import ast
import base64
import builtins
import dataclasses
import enum
import functools
import hashlib
import importlib
import inspect
import ipaddress
import linecache
import textwrap
import types
from pathlib import PurePath
from typing import Any

from netlab.core.errors import NetlabError

__all__ = ["HandoverError", "capture_id", "captures", "decode", "encode", "warm"]

# How deep a value may nest: a student's answer is a few levels deep; a cycle is not an answer.
_DEPTH = 40


class HandoverError(NetlabError, ValueError):
    """An answer that cannot travel as data to a grader (or data that is no answer netlab made)."""


def _name(cls: type) -> str:
    return f"{cls.__module__}:{cls.__qualname__}"


def _scapy_packet(value: Any) -> bool:
    packet = _scapy_class("Packet")
    return packet is not None and isinstance(value, packet)


def _scapy_class(name: str) -> Any:
    import sys

    module = sys.modules.get("scapy.packet")
    return getattr(module, name, None) if module is not None else None


def _conversation(value: Any) -> bool:
    import sys

    module = sys.modules.get("netlab.core.conversation")
    return module is not None and type(value) is module.Conversation


def _ours(cls: type) -> bool:
    return cls.__module__ == "netlab" or cls.__module__.startswith("netlab.")


def encode(value: Any) -> Any:
    """`value` as JSON-able data (see the module's rules); raises HandoverError naming what cannot travel."""
    return _encode(value, 0, "the answer")


def _encode(value: Any, depth: int, where: str) -> Any:
    if depth > _DEPTH:
        raise HandoverError(f"{where} nests deeper than {_DEPTH} levels (or refers to itself): give plain data")
    deeper = depth + 1
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, int):
        return value if -2**53 < value < 2**53 else {"int": str(value)}  # JSON readers lose bigger ints
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else {"float": repr(value)}
    if value is ...:
        return {"ellipsis": True}
    if isinstance(value, (bytes, bytearray)):
        return {"bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, list):
        return [_encode(v, deeper, where) for v in value]
    if isinstance(value, tuple) and not hasattr(value, "_fields"):
        return {"tuple": [_encode(v, deeper, where) for v in value]}
    if isinstance(value, (set, frozenset)):
        return {"set": [_encode(v, deeper, where) for v in value]}
    if isinstance(value, dict):
        return {"dict": [[_encode(k, deeper, where), _encode(v, deeper, where)] for k, v in value.items()]}
    if isinstance(value, (ipaddress.IPv4Address, ipaddress.IPv6Address, PurePath)):
        return {"object": _name(type(value)), "text": str(value)}
    if isinstance(value, enum.Enum) and _ours(type(value)):
        return {"enum": _name(type(value)), "name": value.name}
    if _scapy_packet(value):
        return {"packet": _name(type(value)), "bytes": base64.b64encode(bytes(value)).decode("ascii"),
                "time": float(value.time), "sniffed_on": getattr(value, "sniffed_on", None)}
    if isinstance(value, BaseException):
        return {"exception": _name(type(value)), "args": [_encode(a, deeper, where) for a in value.args
                                                          if isinstance(a, (int, str, float, bytes))]}
    if isinstance(value, (types.FunctionType, types.BuiltinFunctionType)):
        if _importable(value):  # a library's function (scapy's, netlab's): by its name
            return {"function": {"imported": f"{value.__module__}:{value.__qualname__}"}}
        return {"function": _function(value, deeper)}
    if _conversation(value):
        return {"object": _name(type(value)), "conversation": {
            "packets": _encode(list(value.packets), deeper, where), "stream_number": value.stream_number,
            "source": value.source, "partial": value.partial}}
    if isinstance(value, tuple) and _ours(type(value)):  # a NamedTuple of netlab's
        return {"object": _name(type(value)), "items": [_encode(v, deeper, where) for v in value]}
    if dataclasses.is_dataclass(value) and not isinstance(value, type) and _ours(type(value)):
        fields = {}
        for f in dataclasses.fields(value):
            try:
                fields[f.name] = _encode(getattr(value, f.name), deeper, f"{where}'s {f.name}")
            except HandoverError:
                if f.type not in ("Any", Any):
                    raise
                # A field that holds anything (an Experiment's `result`: a program's return value) travels
                # as its repr, as a recording keeps it (core/experiment.py, `write_recording`).
                fields[f.name] = {"repr": repr(getattr(value, f.name))}
        return {"object": _name(type(value)), "fields": fields}
    what = type(value).__name__
    raise HandoverError(f"{where} holds a {what}, which cannot be handed to a grader: give numbers, text, bytes, "
                        "lists and dicts, scapy packets, netlab's own results, or a function defined at the top of a cell")


def _function(func: types.FunctionType, depth: int) -> dict[str, Any]:
    name = func.__name__
    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        raise HandoverError(f"the source of {name}() cannot be found: define it in a cell of this notebook") from None
    if name == "<lambda>":
        source = _lambda_source(source, func)
    used: dict[str, Any] = {}
    # What the function reads from outside: the notebook's globals, and (a function defined inside
    # another) the values it closed over, which the rebuilt function finds as globals.
    outside = {k: v for k, v in func.__globals__.items() if k in _names(func.__code__)}
    for var, cell in zip(func.__code__.co_freevars, func.__closure__ or ()):
        try:
            outside[var] = cell.cell_contents
        except ValueError:  # a name not bound yet where the function was defined
            raise HandoverError(f"your function {name}() uses {var} before it has a value") from None
    for global_name in sorted(outside):
        value = outside[global_name]
        if isinstance(value, types.ModuleType):
            used[global_name] = {"module": value.__name__}
        elif value is func:
            continue
        elif isinstance(value, (types.FunctionType, types.BuiltinFunctionType, type)) and _importable(value):
            used[global_name] = {"imported": f"{value.__module__}:{value.__qualname__}"}  # from a module, by name
        else:
            used[global_name] = _encode(value, depth, f"the name {global_name} your function {name}() uses")
    return {"name": name, "source": source, "globals": used}


def _importable(value: Any) -> bool:
    """True for a function or class that its module and qualified name find again (not the notebook's own)."""
    module = getattr(value, "__module__", None)
    if module in (None, "__main__", "__student__"):
        return False
    try:
        return _resolve(f"{module}:{value.__qualname__}") is value
    except HandoverError:
        return False


def _names(code: types.CodeType) -> set[str]:
    names, stack = set(), [code]
    while stack:
        code = stack.pop()
        names.update(code.co_names)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return names


def _lambda_source(source: str, func: types.FunctionType) -> str:
    """The lambda alone, as `<lambda> = lambda …`, out of the line(s) it was written on."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        raise HandoverError("the source of your lambda cannot be read alone: define it with def") from None
    lambdas = [n for n in ast.walk(tree) if isinstance(n, ast.Lambda)]
    if len(lambdas) != 1:
        raise HandoverError("your lambda shares its line with other lambdas: define your function with def")
    return f"_ = {ast.get_source_segment(source, lambdas[0])}\n"


def capture_id(packets: list) -> str:
    """A name for a capture: the SHA-256 of its frames and their times (12 hex digits)."""
    digest = hashlib.sha256()
    for pkt in packets:
        digest.update(bytes(pkt))
        digest.update(repr(round(float(pkt.time), 6)).encode())
    return digest.hexdigest()[:12]


def captures(data: Any) -> list[dict[str, Any]]:
    """Every capture in encoded `data`: {"kind", "source", "id"} per netlab object that holds packets."""
    found: list[dict[str, Any]] = []
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            fields = item.get("fields")
            if isinstance(fields, dict) and isinstance(fields.get("packets"), list):
                digest = hashlib.sha256()
                for pkt in fields["packets"]:
                    if isinstance(pkt, dict) and isinstance(pkt.get("bytes"), str):
                        digest.update(base64.b64decode(pkt["bytes"]))
                        digest.update(repr(round(float(pkt.get("time") or 0), 6)).encode())
                found.append({"kind": item.get("object"), "source": fields.get("source"),
                              "id": digest.hexdigest()[:12], "packets": len(fields["packets"])})
            stack.extend(item.values())
    return found


# --- reading it back ---


def decode(data: Any, *, functions: bool = False) -> Any:
    """The value `encode` gave `data` for; a function is rebuilt (its source run) only with `functions=True`."""
    return _decode(data, functions, 0)


def _decode(data: Any, functions: bool, depth: int) -> Any:
    if depth > _DEPTH:
        raise HandoverError("the data nests too deep to be an answer")
    deeper = depth + 1
    if data is None or isinstance(data, (bool, int, float, str)):
        return data
    if isinstance(data, list):
        return [_decode(v, functions, deeper) for v in data]
    if not isinstance(data, dict) or not data:
        raise HandoverError(f"not an answer's data: {type(data).__name__}")
    tag = next(iter(data))
    if tag == "int":
        return int(data["int"])
    if tag == "float":
        return float(data["float"])
    if tag == "ellipsis":
        return ...
    if tag == "repr":
        try:
            return ast.literal_eval(data["repr"])
        except (ValueError, SyntaxError):
            return str(data["repr"])
    if tag == "bytes":
        return base64.b64decode(data["bytes"])
    if tag == "tuple":
        return tuple(_decode(v, functions, deeper) for v in data["tuple"])
    if tag == "set":
        return {_decode(v, functions, deeper) for v in data["set"]}
    if tag == "dict":
        return {_decode(k, functions, deeper): _decode(v, functions, deeper) for k, v in data["dict"]}
    if tag == "packet":
        cls = _allowed_class(data["packet"], _load_scapy())
        pkt = cls(base64.b64decode(data["bytes"]))
        pkt.time = data.get("time", 0.0)
        if data.get("sniffed_on") is not None:
            pkt.sniffed_on = data["sniffed_on"]
        return pkt
    if tag == "exception":
        cls = _exception_class(data["exception"])
        return cls(*[_decode(a, functions, deeper) for a in data.get("args", [])])
    if tag == "enum":
        return _allowed_class(data["enum"], enum.Enum)[data["name"]]
    if tag == "function":
        if not functions:
            raise HandoverError("this answer is a function, which only a sandboxed verifier may run")
        return _rebuild_function(data["function"], deeper)
    if tag == "object":
        return _object(data, functions, deeper)
    raise HandoverError(f"not an answer's data: the tag {tag!r}")


def warm() -> None:
    """Import what decoding packets needs (all of scapy's layers), ahead of the first answer: seconds, once."""
    _load_scapy()


@functools.cache
def _load_scapy() -> type:
    """scapy's Packet, with every layer it knows bound (or a frame would dissect as Raw in a fresh process)."""
    import scapy.layers.all  # noqa: F401
    from scapy.packet import Packet

    return Packet


def _resolve(name: str) -> Any:
    module, _, qualname = str(name).partition(":")
    try:
        value: Any = importlib.import_module(module)
        for part in qualname.split("."):
            value = getattr(value, part)
    except (ImportError, AttributeError, ValueError):
        raise HandoverError(f"not an answer's data: no class {name}") from None
    return value


def _allowed_class(name: str, base: type) -> type:
    module = str(name).partition(":")[0]
    if not (module == "netlab" or module.startswith(("netlab.", "scapy."))):
        raise HandoverError(f"not an answer's data: {name} is none of netlab's or scapy's classes")
    cls = _resolve(name)
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise HandoverError(f"not an answer's data: {name} is no {base.__name__}")
    return cls


def _exception_class(name: str) -> type:
    module, _, qualname = str(name).partition(":")
    cls = getattr(builtins, qualname, None) if module == "builtins" else _allowed_class(name, BaseException)
    if not (isinstance(cls, type) and issubclass(cls, Exception)):
        raise HandoverError(f"not an answer's data: {name} is no exception")
    return cls


_PLAIN = {_name(c): c for c in (ipaddress.IPv4Address, ipaddress.IPv6Address)}


def _object(data: dict[str, Any], functions: bool, depth: int) -> Any:
    name = data["object"]
    if name in _PLAIN or "text" in data:
        if name in _PLAIN:
            return _PLAIN[name](data["text"])
        cls = _resolve(name)
        if isinstance(cls, type) and issubclass(cls, PurePath):
            return cls(data["text"])
        raise HandoverError(f"not an answer's data: {name}")
    cls = _allowed_class(name, object)
    if "conversation" in data:
        from netlab.core.conversation import Conversation

        if cls is not Conversation:
            raise HandoverError(f"not an answer's data: {name} is no Conversation")
        conv = data["conversation"]
        return Conversation(_decode(conv["packets"], functions, depth), int(conv.get("stream_number", 0)),
                            str(conv.get("source", "live")), partial=bool(conv.get("partial", False)))
    if "items" in data:
        if not (issubclass(cls, tuple) and hasattr(cls, "_fields")):
            raise HandoverError(f"not an answer's data: {name} is no named tuple")
        return cls(*[_decode(v, functions, depth) for v in data["items"]])
    if not dataclasses.is_dataclass(cls):
        raise HandoverError(f"not an answer's data: {name} is none of netlab's results")
    known = {f.name: f for f in dataclasses.fields(cls)}
    given = data.get("fields", {})
    if not isinstance(given, dict) or set(given) - set(known):
        raise HandoverError(f"not an answer's data: fields unknown to {name}")
    values = {k: _decode(v, functions, depth) for k, v in given.items()}
    obj = cls(**{k: v for k, v in values.items() if known[k].init})
    for key, value in values.items():
        if not known[key].init:
            object.__setattr__(obj, key, value)
    return obj


def _rebuild_function(data: dict[str, Any], depth: int) -> Any:
    if "imported" in data:
        return _resolve(data["imported"])
    namespace: dict[str, Any] = {"__name__": "__student__", "__builtins__": builtins}
    for global_name, value in data.get("globals", {}).items():
        if isinstance(value, dict) and "module" in value:
            namespace[global_name] = importlib.import_module(value["module"])
        elif isinstance(value, dict) and "imported" in value:
            namespace[global_name] = _resolve(value["imported"])
        else:
            namespace[global_name] = _decode(value, True, depth)
    # Its text kept where `inspect.getsource` looks, so a verdict may read the rebuilt function's source as the
    # student's own (a file name per text: two students' functions of one name do not share one).
    filename = f"<handed over {data['name']} {hashlib.sha256(data['source'].encode()).hexdigest()[:12]}>"
    linecache.cache[filename] = (len(data["source"]), None, data["source"].splitlines(True), filename)
    exec(compile(data["source"], filename, "exec"), namespace)  # noqa: S102  (the student's own function)
    func = namespace.get("_" if data["name"] == "<lambda>" else data["name"])
    if not isinstance(func, types.FunctionType):
        raise HandoverError(f"the source handed over does not define {data['name']}()")
    return func
