"""Checks that refuse a bad argument before an experiment opens a lab, naming the argument.

netlab's error policy (see `netlab.core.errors`): a bad argument raises `TypeError` (wrong kind)
or `ValueError` (out of range), with a message that says what the argument takes.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["check_bytes", "check_int", "check_seconds"]


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
