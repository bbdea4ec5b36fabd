"""Ladder diagrams: a TCP conversation drawn the way networking textbooks draw it.

Theory of operation
-------------------
Client and server are two vertical lifelines; each segment is one arrow from the sender's line
to the receiver's, one row per segment going down the page. Rows are evenly spaced, not
proportional to time: on loopback a whole conversation lasts under a millisecond, so time would
squeeze every arrow into one line. Each arrow slopes down a little (the segment takes time to
arrive) and carries its label (flags, relative seq/ack, payload length); arrows and background
bands are coloured by phase, and each side's RFC 9293 state is written beside its lifeline
where it changes.

Rules for this file:
1. Everything drawn is read from a `Conversation` (its segments and `states()`); nothing is
   computed here about TCP.
2. No pyplot: figures are built with `matplotlib.figure.Figure`, so drawing leaves no global
   state behind and no figure open, and importing this module changes no matplotlib setting.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING

from matplotlib.figure import Figure
from matplotlib.patches import Rectangle
from matplotlib.transforms import ScaledTranslation

from netlab.conversation import CLIENT_TO_SERVER, SERVER_TO_CLIENT

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from netlab.conversation import Conversation, Segment

__all__ = ["PHASE_COLOURS", "ladder"]

# Okabe & Ito's palette, chosen to stay distinct for the common kinds of colour blindness.
PHASE_COLOURS: dict[str, str] = {
    "handshake": "#0072B2",  # blue
    "data": "#009E73",  # bluish green
    "teardown": "#CC79A7",  # reddish purple
    "reset": "#D55E00",  # vermillion
}
_OTHER_COLOUR = "#555555"

# Geometry, in inches for the figure `ladder` builds itself (x) and in rows (y).
_WIDTH = 8.6  # a figure this wide fits a JupyterLab notebook column at 100 dpi
_ROW = 0.44  # inches per segment: room for a label and its arrow without touching the next
_HEADER_ROWS = 1.9  # room above the first arrow for "client"/"server" and their addresses
_FOOTER_ROWS = 0.35
_TITLE = 0.45  # inches above the axes for the title
_PHASE_X = 0.12  # phase names, left-aligned
_NUMBER_X = 1.3  # segment numbers, right-aligned
_CLIENT_X = 2.35  # client lifeline (its states are written to its left)
_SERVER_X = _WIDTH - 1.25  # server lifeline (its states are written to its right)
_DEPART = 0.05  # row offset where an arrow leaves the sender's lifeline
_ARRIVE = 0.45  # row offset where it reaches the receiver's: the slope shows transit time
_FONT = 10  # labels; nothing is drawn smaller than 9 points


class _LadderFigure(Figure):
    """A Figure that shows itself as a PNG in Jupyter even when pyplot was never imported.

    IPython learns to display figures only when a matplotlib backend is activated (pyplot
    drawing, or `%matplotlib inline`); a figure built without pyplot would otherwise show as
    the text `<Figure size ...>`. Where that backend *is* active, IPython's own figure
    formatter takes precedence over this method, so the picture still appears once.
    """

    def __repr__(self) -> str:
        # What a plain Figure says: the subclass is an implementation detail, and nbval
        # compares this text.
        width, height = self.bbox.size
        return f"<Figure size {width:g}x{height:g} with {len(self.axes)} Axes>"

    def _repr_png_(self) -> bytes:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", bbox_inches="tight")
        return buffer.getvalue()


def ladder(conv: "Conversation", *, ax: "Axes | None" = None, title: str | None = None) -> Figure:
    """Draw `conv` as a ladder diagram: client and server lifelines, one sloped arrow per segment.

    Arrows are evenly spaced (not to scale in time), labelled with flags and relative numbers,
    coloured by phase, with each side's TCP state written where it changes. Without `ax` the
    figure is 8.6 inches wide and 0.44 inch taller per segment; an `ax` given needs about that
    room to stay legible. Returns the Figure: a notebook shows it, `fig.savefig(path)` saves it.
    """
    segments = conv.segments
    rows = len(segments)
    top, bottom = -_HEADER_ROWS, rows + _FOOTER_ROWS
    if ax is None:
        axes_height = _ROW * (bottom - top)
        fig = _LadderFigure(figsize=(_WIDTH, axes_height + _TITLE))
        ax = fig.add_axes((0.0, 0.0, 1.0, axes_height / (axes_height + _TITLE)))
    else:
        fig = ax.figure
        while not isinstance(fig, Figure):  # a SubFigure: return the figure that holds it
            fig = fig.figure
    ax.set_axis_off()
    ax.set_xlim(0, _WIDTH)
    ax.set_ylim(bottom, top)  # inverted: time runs down the page

    if title is None:
        title = f"TCP stream {conv.stream_number} ({_source_words(conv.source)})"
    ax.set_title(title, fontsize=12, fontweight="bold", loc="center", pad=6)

    _draw_phases(ax, segments)
    _draw_lifelines(ax, conv, rows)
    for row, segment in enumerate(segments):
        _draw_segment(ax, row, segment)
    _draw_states(ax, conv)
    return fig


def _source_words(source: str) -> str:
    """'live capture', 'recorded capture', or 'from NAME' for a pcap file."""
    if source in ("live", "recorded"):
        return f"{source} capture"
    return f"from {source}"


def _colour(phase: str) -> str:
    return PHASE_COLOURS.get(phase, _OTHER_COLOUR)


def _ends(row: int, segment: "Segment") -> tuple[tuple[float, float], tuple[float, float]]:
    """(x, y) where the segment's arrow leaves the sender and reaches the receiver."""
    if segment.direction == SERVER_TO_CLIENT:
        return (_SERVER_X, row + _DEPART), (_CLIENT_X, row + _ARRIVE)
    return (_CLIENT_X, row + _DEPART), (_SERVER_X, row + _ARRIVE)


def _draw_phases(ax: "Axes", segments: list["Segment"]) -> None:
    """One light band per run of segments in the same phase, named in the left margin."""
    runs: list[tuple[str, int, int]] = []  # (phase, first row, last row)
    for row, segment in enumerate(segments):
        if runs and runs[-1][0] == segment.phase:
            runs[-1] = (segment.phase, runs[-1][1], row)
        else:
            runs.append((segment.phase, row, row))
    for phase, first, last in runs:
        # A row's drawing spans from its label (above the arrow) to the arrow's end.
        y0, y1 = first - 0.3, last + 0.7
        ax.add_patch(Rectangle((0.04, y0), _WIDTH - 0.08, y1 - y0, facecolor=_colour(phase),
                               alpha=0.10, edgecolor="none", zorder=0, gid=f"phase {phase}"))
        ax.text(_PHASE_X, (y0 + y1) / 2, phase, ha="left", va="center", fontsize=9.5,
                fontweight="bold", color=_colour(phase), zorder=3)


def _draw_lifelines(ax: "Axes", conv: "Conversation", rows: int) -> None:
    """Client on the left, server on the right: a vertical line under each name and address:port."""
    for x, name, (address, port) in ((_CLIENT_X, "client", conv.client), (_SERVER_X, "server", conv.server)):
        ax.plot([x, x], [-0.55, rows + 0.1], color="#444444", lw=1.3, solid_capstyle="butt", zorder=1)
        ax.text(x, -1.45, name, ha="center", va="center", fontsize=11, fontweight="bold", zorder=3,
                bbox=dict(boxstyle="round,pad=0.3", facecolor="white", edgecolor="#444444", lw=1.0))
        ax.text(x, -0.85, f"{address}:{port}", ha="center", va="center", fontsize=9.5, color="#333333",
                zorder=3)


def _draw_segment(ax: "Axes", row: int, segment: "Segment") -> None:
    """The arrow, its label just above the arrow's middle (tilted with it), and its number."""
    (x0, y0), (x1, y1) = _ends(row, segment)
    colour = _colour(segment.phase)
    arrow = ax.annotate("", xy=(x1, y1), xytext=(x0, y0), zorder=2, annotation_clip=False,
                        arrowprops=dict(arrowstyle="-|>", color=colour, lw=1.6, shrinkA=0, shrinkB=0,
                                        mutation_scale=13))
    arrow.set_gid(f"segment {segment.number}")
    # The angle is given in data coordinates and turned into screen degrees at draw time
    # (transform_rotates_text), so the label follows the arrow whatever the axes' size.
    # Measured left to right, so a server-to-client label is not drawn upside down.
    (lx, ly), (rx, ry) = sorted([(x0, y0), (x1, y1)])
    angle = math.degrees(math.atan2(ry - ly, rx - lx))
    lift = ax.transData + ScaledTranslation(0, 2 / 72, ax.figure.dpi_scale_trans)  # 2 points up
    ax.text((x0 + x1) / 2, (y0 + y1) / 2, segment.label, transform=lift, rotation=angle,
            transform_rotates_text=True, rotation_mode="anchor", ha="center", va="bottom",
            fontsize=_FONT, color="#1a1a1a", zorder=3, gid=f"label {segment.number}")
    ax.text(_NUMBER_X, (y0 + y1) / 2, str(segment.number), ha="right", va="center", fontsize=9,
            color="#666666", zorder=3, gid=f"number {segment.number}")


def _draw_states(ax: "Axes", conv: "Conversation") -> None:
    """Each side's state where it changes: on the lifeline where the segment that caused it touches."""
    rows = {segment.number: (row, segment) for row, segment in enumerate(conv.segments)}
    for side, walk in conv.states().items():
        x, ha, dx = (_CLIENT_X, "right", -0.08) if side == "client" else (_SERVER_X, "left", 0.08)
        previous = None
        for number, state in walk:
            if number == 0:
                y = -0.4  # the state before the first segment, just under the header
            else:
                row, segment = rows[number]
                sent = (segment.direction == CLIENT_TO_SERVER) == (side == "client")
                y = row + (_DEPART if sent else _ARRIVE)
            if previous is not None and y <= previous:
                # A step out of row order: in a simultaneous close a side sends its FIN before
                # the peer's (captured earlier) arrives. Keep the side's states in their order.
                y = previous + 0.5
            elif number:
                ax.plot([x], [y], marker="o", markersize=3.5, color="#444444", zorder=3)
            ax.text(x + dx, y, state, ha=ha, va="center", fontsize=9, color="#444444",
                    fontstyle="italic", zorder=3, gid=f"state {side} {number}")
            previous = y
