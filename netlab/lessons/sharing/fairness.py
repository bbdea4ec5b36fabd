"""How fairly flows share a bottleneck: Jain's fairness index (Jain, Chiu and Hawe, DEC-TR-301, 1984)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["jain_index", "shares"]


def jain_index(throughputs: Sequence[float]) -> float:
    """(Σx)² / (n·Σx²): 1.0 when every flow gets the same, 1/n when one flow takes everything.

    >>> jain_index([5.0, 5.0])
    1.0
    >>> jain_index([10.0, 0.0])
    0.5
    """
    values = [float(x) for x in throughputs]
    if not values:
        raise ValueError("Jain's index needs at least one flow's throughput")
    if any(x < 0 for x in values):
        raise ValueError(f"a throughput cannot be negative: {values}")
    squares = sum(x * x for x in values)
    if squares == 0:
        raise ValueError("Jain's index is undefined when no flow sent anything")
    return sum(values) ** 2 / (len(values) * squares)


def shares(throughputs: Sequence[float]) -> list[float]:
    """Each flow's fraction of what all of them got together."""
    total = sum(throughputs)
    if total <= 0:
        raise ValueError("no flow sent anything: there are no shares")
    return [x / total for x in throughputs]
