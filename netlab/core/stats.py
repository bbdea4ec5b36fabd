"""The one percentile netlab reports (echo round trips in notebook 07, capture start-up in bench/)."""

from __future__ import annotations

import math
from collections.abc import Iterable

__all__ = ["percentile"]


def percentile(values: Iterable[float], p: float) -> float:
    """The p-th percentile (0–100) of `values` by nearest rank: a value that was measured, never interpolated.

    p99 of 200 round trips is the 198th smallest: 1 % of the samples (2) were slower.
    """
    data = sorted(values)
    if not data:
        raise ValueError("a percentile needs at least one value")
    if not 0 <= p <= 100:
        raise ValueError(f"p is a percentile from 0 to 100, not {p!r}")
    return data[min(len(data) - 1, max(0, math.ceil(p / 100 * len(data)) - 1))]
