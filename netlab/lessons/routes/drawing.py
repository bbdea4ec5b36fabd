"""Notebook 11's figure: the lesson's network drawn from its plan, and the links a packet crossed.

The hosts, links and addresses come from `PLAN` (the same data that builds the lab); only where
each host sits on the page is said here. Given an experiment that followed packets (`follow`,
`missing_return`, `asymmetric`), the links its requests crossed are drawn thick and the links
its replies crossed dashed: one packet seen on several links, drawn once per link.
"""

from __future__ import annotations

from typing import Any

from netlab.core.draw import NotebookFigure
from netlab.core.topology import Plan

__all__ = ["network_figure", "POSITIONS"]

# Where each host sits (x, y), in the lesson's picture: the triangle of routers, client left, server right.
POSITIONS = {"client": (0.0, 1.0), "r1": (1.4, 1.0), "r2": (3.6, 1.0), "r3": (2.5, 0.0), "server": (5.0, 1.0)}
_REQUEST, _REPLY, _IDLE = "#1f77b4", "#d62728", "#b0b0b0"


def network_figure(plan: Plan, exp: Any = None, *, title: str | None = None) -> NotebookFigure:
    """The plan's hosts and links, each link labelled with its network; with `exp`, the links its packets crossed.

    `exp.result["request_links"]` and `["reply_links"]` name links by their first interface (as
    the experiments do). Returns the figure (Jupyter shows it).
    """
    missing = [h for h in plan.hosts if h not in POSITIONS]
    if missing:
        raise ValueError(f"no place on the page for {', '.join(missing)}: this figure draws notebook 11's network")
    result = getattr(exp, "result", None) or {}
    request, reply = set(result.get("request_links", [])), set(result.get("reply_links", []))
    fig = NotebookFigure(figsize=(9.5, 3.6))
    ax = fig.add_axes((0.02, 0.02, 0.96, 0.86 if title else 0.96))
    ax.set_xlim(-0.5, 5.6)
    ax.set_ylim(-0.75, 1.55)
    ax.set_axis_off()
    for link in plan.links:
        a, b = plan.interface(link.a), plan.interface(link.b)
        (x1, y1), (x2, y2) = POSITIONS[a.host], POSITIONS[b.host]
        if link.a in request:
            ax.plot([x1, x2], [y1, y2], color=_REQUEST, linewidth=5, zorder=1, solid_capstyle="round")
        if link.a in reply:
            ax.plot([x1, x2], [y1, y2], color=_REPLY, linewidth=2.5, linestyle=(0, (4, 3)), zorder=2)
        if link.a not in request and link.a not in reply:
            ax.plot([x1, x2], [y1, y2], color=_IDLE, linewidth=2, zorder=1)
        mx, my = (x1 + x2) / 2, (y1 + y2) / 2
        if y1 != y2:  # a sloping link: its label outside the triangle, clear of the addresses at its ends
            mx, my = mx + (0.55 if mx > POSITIONS["r3"][0] else -0.55), my - 0.09
        ax.text(mx, my + 0.09, a.network, ha="center", va="bottom", fontsize=8.5,
                bbox={"boxstyle": "round,pad=0.15", "facecolor": "white", "edgecolor": "none"}, zorder=3)
        for end, (x, y), (ox, oy) in ((a, (x1, y1), (x2, y2)), (b, (x2, y2), (x1, y1))):
            ax.text(x + (ox - x) * 0.22, y + (oy - y) * 0.22 - 0.11, f".{end.ipv4.rsplit('.', 1)[1]}",
                    ha="center", va="top", fontsize=8, color="#444444", zorder=3)
    for host in plan.hosts:
        x, y = POSITIONS[host]
        router = host in plan.routers
        ax.text(x, y, host, ha="center", va="center", fontsize=10, fontweight="bold", zorder=4,
                bbox={"boxstyle": "circle,pad=0.35" if router else "round,pad=0.4",
                      "facecolor": "#fff3d6" if router else "#e8f0fb", "edgecolor": "#555555"})
        for i in plan.on(host):
            if i.peer is None:  # a network that ends in this host
                ax.text(x, y - 0.5, f"{i.name}\n{i.network}", ha="center", va="top", fontsize=8.5, zorder=3,
                        bbox={"boxstyle": "round,pad=0.3", "facecolor": "#f4f4f4", "edgecolor": "#999999",
                              "linestyle": "--"})
                ax.plot([x, x], [y - 0.15, y - 0.5], color=_IDLE, linewidth=1.5, linestyle=":", zorder=1)
    if request or reply:
        ax.plot([], [], color=_REQUEST, linewidth=5, label="request")
        ax.plot([], [], color=_REPLY, linewidth=2.5, linestyle=(0, (4, 3)), label="reply")
        ax.legend(loc="upper left", frameon=False, fontsize=9)
    if title:
        fig.suptitle(title, fontsize=11)
    return fig
