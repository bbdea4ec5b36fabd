"""Notebook 09's drawings: the sender's cwnd from its kernel, round-trip times, and both beside a time-sequence graph.

What only this lesson draws lives here, built on the core's drawing (`netlab.core.draw`: the
time-sequence graph, the notebook-width figure). The experiments module offers these names as
`netlab.congestion.NAME` on first use, so running an experiment does not load matplotlib (0.5 s).
Like the core's drawing, nothing here uses pyplot: every function returns a Figure.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from netlab.core.bottleneck import SINK_PORT
from netlab.core.draw import NotebookFigure, plot_figure_and_axes, time_sequence

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from netlab.lessons.congestion.experiments import CongestionExperiment

__all__ = ["cwnd_plot", "figure", "growth_figure", "rtt_plot"]


def cwnd_plot(samples: list[Any], *, start: float | None = None, ax: Axes | None = None,
              title: str | None = None, unit: str = "ms") -> Figure:
    """Draw a TCP sender's state over time: cwnd, ssthresh and segments in flight, in segments.

    `samples` are the kernel's TCP_INFO readings (objects with `time` in Unix seconds, `cwnd`,
    `ssthresh`, `in_flight` and `ca_state`, as netlab.core.sockets.TcpInfo); `start` (Unix
    seconds) is time 0, the first sample by default, so the plot lines up with a time-sequence
    graph of the same capture. Time in `unit` ("ms" or "s"); fast recovery is shaded grey, a
    timeout's Loss state red.
    Returns the Figure (8.6 by 4.4 inches without `ax`).
    """
    fig, ax = plot_figure_and_axes(ax)
    if not samples:
        raise ValueError("cwnd_plot needs at least one TCP_INFO sample")
    zero = samples[0].time if start is None else start
    scale = 1.0 if unit == "s" else 1000.0
    times = [(s.time - zero) * scale for s in samples]
    ax.step(times, [s.cwnd for s in samples], where="post", color="#0072B2", lw=1.8, label="cwnd", gid="cwnd", zorder=3)
    ax.step(times, [s.in_flight for s in samples], where="post", color="#009E73", lw=1.0, label="segments in flight",
            gid="in flight", zorder=2)
    known = [(t, s.ssthresh) for t, s in zip(times, samples, strict=True) if s.ssthresh is not None]
    if known:
        ax.step([t for t, _ in known], [v for _, v in known], where="post", color="#D55E00", lw=1.2, ls="--",
                label="ssthresh", gid="ssthresh", zorder=2)
    for state, colour in (("Recovery", "#BBBBBB"), ("Loss", "#F4A6A6")):
        begin = None
        for t, s in zip(times + [times[-1]], samples + [samples[-1]], strict=True):
            if s.ca_state == state and begin is None:
                begin = t
            elif s.ca_state != state and begin is not None:
                ax.axvspan(begin, t, color=colour, alpha=0.5, lw=0, gid=f"{state.lower()} {begin:.0f}", zorder=0)
                begin = None
        if any(s.ca_state == state for s in samples):
            ax.plot([], [], color=colour, lw=6, alpha=0.5, label="fast recovery" if state == "Recovery" else "timeout (Loss)")
    algorithm = getattr(samples[0], "algorithm", "")
    ax.set_title(title or f"The sender's congestion window ({algorithm}), from its kernel (TCP_INFO)",
                 fontsize=11, fontweight="bold", pad=6)
    ax.set_xlabel(f"time ({'s' if unit == 's' else 'ms'})", fontsize=10)
    ax.set_ylabel("segments", fontsize=10)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=9)
    ax.grid(True, color="#dddddd", lw=0.6, zorder=0)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def rtt_plot(series: dict[str, list[tuple[float, float]]], *, ax: Axes | None = None, title: str | None = None) -> Figure:
    """Draw round-trip times over time, one line per label: {label: [(seconds, round trip in seconds), ...]}.

    Times are shown in ms. Returns the Figure (8.6 by 4.4 inches without `ax`).
    """
    fig, ax = plot_figure_and_axes(ax)
    for colour, (label, points) in zip(("#D55E00", "#0072B2", "#009E73", "#CC79A7"), series.items(), strict=False):
        ax.plot([t * 1000 for t, _ in points], [r * 1000 for _, r in points], marker=".", color=colour, lw=1.2,
                label=label, gid=f"rtt {label}")
    ax.set_title(title or "Round-trip time of a small connection", fontsize=11, fontweight="bold", pad=6)
    ax.set_xlabel("time (ms)", fontsize=10)
    ax.set_ylabel("round-trip time (ms)", fontsize=10)
    ax.set_ylim(bottom=0)
    ax.tick_params(labelsize=9)
    ax.grid(True, color="#dddddd", lw=0.6, zorder=0)
    ax.legend(fontsize=8, loc="upper left")
    return fig


def figure(exp: CongestionExperiment, title: str | None = None) -> Any:
    """The time-sequence graph of the bulk transfer above the sender's cwnd from its kernel, on one time axis.

    Both start at the bulk connection's SYN, so a round of segments in the upper graph sits
    above the cwnd that allowed it.
    """
    from scapy.layers.inet import TCP

    fig = NotebookFigure(figsize=(8.6, 7.6))
    top, bottom = fig.add_axes((0.09, 0.56, 0.88, 0.38)), fig.add_axes((0.09, 0.07, 0.88, 0.38))
    conv = exp.conversation
    time_sequence(conv, ax=top, title=title or f"{exp.algorithm}: {exp.path}")
    zero = next((float(p.time) for p in exp.packets if TCP in p and SINK_PORT in (p[TCP].dport, p[TCP].sport)), None)
    cwnd_plot(exp.samples, start=zero, ax=bottom, unit=top.get_xlabel().removeprefix("time (").rstrip(")"))
    return fig


def growth_figure(reno: CongestionExperiment, cubic: CongestionExperiment) -> Any:
    """cwnd against time for the long Reno and CUBIC runs, one above the other, in seconds."""
    fig = NotebookFigure(figsize=(8.6, 7.0))
    for exp, box in ((reno, (0.09, 0.56, 0.88, 0.37)), (cubic, (0.09, 0.07, 0.88, 0.37))):
        ax = fig.add_axes(box)
        source = "recorded" if not exp.live else "live"
        cwnd_plot(exp.samples, start=exp.start, ax=ax, unit="s",
                  title=f"{exp.algorithm} ({source}): cwnd over {exp.samples[-1].time - exp.start:.0f} s")
    return fig
