"""Checks that refuse a bad argument before an experiment opens a lab, naming the argument.

netlab's error policy (see `netlab.core.errors`): a bad argument raises `TypeError` (wrong kind)
or `ValueError` (out of range), with a message that says what the argument takes. On the command
line, `number_type` turns an option's text into a number within its bounds, or refuses it in the
one line argparse prints.
"""

from __future__ import annotations

import argparse
import errno
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["check_bytes", "check_int", "check_seconds", "number_type", "writable_folder"]


def check_int(name: str, value: Any, low: int, high: int | float = math.inf) -> None:
    """Refuse anything but a whole number from `low` to `high`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be a whole number, not {value!r}")
    if not low <= value <= high:
        bounds = f"from {low} to {high}" if high != math.inf else f"≥ {low}"
        raise ValueError(f"{name} must be a whole number {bounds}, not {value!r}")


def check_seconds(name: str, value: Any, high: float = math.inf) -> None:
    """Refuse anything but a time in seconds above 0 and at most `high`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, not {value!r}")
    if not 0 < value <= high or math.isnan(value) or value == math.inf:
        upper = f" and at most {high:g}" if high != math.inf else ""
        raise ValueError(f"{name} must be a number of seconds above 0{upper}, not {value!r}")


def check_bytes(name: str, value: Any, limit: int = 60_000) -> None:
    """Refuse anything but bytes, 1 to `limit` of them."""
    if not isinstance(value, (bytes, bytearray)):
        raise TypeError(f"{name} must be bytes (b\"...\", or text.encode()), not {type(value).__name__}")
    if not 0 < len(value) <= limit:
        raise ValueError(f"{name} must hold 1 to {limit} bytes, not {len(value)}")


def number_type(what: str, low: float, high: float = math.inf, *, whole: bool = True) -> Callable[[str], Any]:
    """An argparse `type`: the option's text as a whole number (or, with `whole=False`, any number) from
    `low` to `high`; `what` names the quantity ("a port number") in the one-line refusal."""

    def parse(text: str) -> int | float:
        try:
            value = int(text) if whole else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {what} ({_bounds(low, high, whole)})") from None
        if not low <= value <= high:  # also refuses nan
            raise argparse.ArgumentTypeError(f"{text} is not {what}: choose {_bounds(low, high, whole)}")
        return value

    return parse


def _bounds(low: float, high: float, whole: bool) -> str:
    kind = "a whole number" if whole else "a number"
    return f"{kind} from {low:g} to {high:g}" if high != math.inf else f"{kind} from {low:g} up"


def writable_folder(folder: Path) -> None:
    """Make `folder` (and its parents) if needed and make sure files can be written there: before an experiment runs."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        raise NotADirectoryError(errno.ENOTDIR, "cannot be a folder: it, or a folder above it, is a file", str(folder)) from None
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, "cannot write files in this folder", str(folder))
