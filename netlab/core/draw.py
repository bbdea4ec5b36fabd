"""Ladder and state diagrams, time-sequence graphs and window plots: a TCP conversation drawn
the way networking textbooks and tcptrace draw it.

Theory of operation
-------------------
Client and server are two vertical lifelines; each segment is one arrow from the sender's line
to the receiver's, one row per segment going down the page. Rows are evenly spaced, not
proportional to time: on loopback a whole conversation lasts under a millisecond, so time would
squeeze every arrow into one line. Each arrow slopes down a little (the segment takes time to
arrive) and carries its label (flags, relative seq/ack, payload length); arrows and background
bands are coloured by phase, and each side's RFC 9293 state is written beside its lifeline
where it changes.

`state_diagram` draws the RFC 9293 state machine itself, in the familiar textbook layout: one
box per state and one arrow per entry of `conversation.TRANSITIONS`, labelled with its event.
Only the boxes' places are chosen here; which arrows exist comes from the table, so a transition
added there appears in the diagram. Given a conversation, it highlights the path each side took.

`time_sequence` is the graph of Stevens and tcptrace: time across, relative sequence number up,
each data segment a vertical bar over its bytes, with the receiver's ACK line and its window
line (ack + advertised window) above it. `window_plot` draws each side's advertised window
over time. Both read what went wrong (retransmissions, probes, duplicate ACKs) from the
conversation's segments.

Rules for this file:
1. Everything drawn is read from a `Conversation` (its segments and `states()`) or from
   `conversation.TRANSITIONS`; nothing is computed here about TCP.
2. No pyplot: figures are built with `matplotlib.figure.Figure`, so drawing leaves no global
   state behind and no figure open, and importing this module changes no matplotlib setting.
"""

from __future__ import annotations

import io
import math
from typing import TYPE_CHECKING, Any

from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Rectangle
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import ScaledTranslation

from netlab.core import conversation as _tcp
from netlab.core.conversation import CLIENT_TO_SERVER, SERVER_TO_CLIENT

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from netlab.core.conversation import Conversation, Segment

__all__ = ["PHASE_COLOURS", "SIDE_COLOURS", "TIME_SEQUENCE_COLOURS", "ladder", "ladder_segments", "state_diagram",
           "time_sequence",
           "window_plot", "LAYER_COLOURS", "encapsulation", "header_ranges", "NotebookFigure", "plot_figure_and_axes"]

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
# A long stream is drawn a window at a time: by default its first LADDER_SEGMENTS segments, and
# never more than _MAX_ROWS, so the picture stays under 4,000 pixels tall at 110 dpi (3,800).
LADDER_SEGMENTS = 60
_MAX_ROWS = 75


class NotebookFigure(Figure):
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


def ladder(conv: Conversation, *, ax: Axes | None = None, title: str | None = None,
           segments: tuple[int | None, int | None] | None = None,
           time: tuple[float | None, float | None] | None = None) -> Figure:
    """Draw `conv` as a ladder diagram: client and server lifelines, one sloped arrow per segment.

    Arrows are evenly spaced (not to scale in time), labelled with flags and relative numbers,
    coloured by phase, with each side's TCP state written where it changes. Without `ax` the
    figure is 8.6 inches wide and 0.44 inch taller per segment; an `ax` given needs about that
    room to stay legible. A long stream is drawn a window at a time (see `ladder_segments`):
    `segments=(A, B)` for segments A to B as numbered in the table, or `time=(T0, T1)` in seconds
    since the first segment; the title says which part is shown. Returns the Figure: a notebook
    shows it, `fig.savefig(path)` saves it.
    """
    shown = ladder_segments(conv, segments=segments, time=time)
    rows = len(shown)
    top, bottom = -_HEADER_ROWS, rows + _FOOTER_ROWS
    fig, ax = _figure_and_axes(ax, _ROW * (bottom - top))
    ax.set_axis_off()
    ax.set_xlim(0, _WIDTH)
    ax.set_ylim(bottom, top)  # inverted: time runs down the page

    if title is None:
        title = f"TCP stream {conv.stream_number} ({_source_words(conv.source)})"
        if rows < len(conv.segments):
            title += f": segments {shown[0].number}–{shown[-1].number} of {len(conv.segments)}"
    ax.set_title(title, fontsize=12, fontweight="bold", loc="center", pad=6)

    _draw_phases(ax, shown)
    _draw_lifelines(ax, conv, rows)
    for row, segment in enumerate(shown):
        _draw_segment(ax, row, segment)
    if not conv.partial:  # without the SYN there are no states to show
        _draw_states(ax, conv, shown)
    return fig


def ladder_segments(conv: Conversation, *, segments: tuple[int | None, int | None] | None = None,
                    time: tuple[float | None, float | None] | None = None) -> list[Segment]:
    """The segments a ladder of `conv` draws: A to B (numbers as in the table, either may be None),
    or those sent from T0 to T1 seconds after the first; by default the first 60. At most 75, so a
    picture stays legible and under 4,000 pixels tall; raises ValueError when the window is empty."""
    chosen = conv.segments
    if segments is not None and time is not None:
        raise ValueError("choose the ladder's window by segments or by time, not both")
    if segments is not None:
        first, last = segments
        chosen = [s for s in chosen if (first is None or s.number >= first) and (last is None or s.number <= last)]
    elif time is not None:
        start, end = time
        chosen = [s for s in chosen if (start is None or s.time >= start) and (end is None or s.time <= end)]
    else:
        chosen = chosen[:LADDER_SEGMENTS]
    if not chosen:
        raise ValueError(f"no segment of TCP stream {conv.stream_number} in that window "
                         f"(it has segments 1–{len(conv.segments)}, "
                         f"from 0 to {conv.segments[-1].time:.6f} s)")
    return chosen[:_MAX_ROWS]


def _figure_and_axes(ax: Axes | None, axes_height: float) -> tuple[Figure, Axes]:
    """A new notebook-width figure with one axes `axes_height` inches tall under the title, or `ax`'s figure."""
    if ax is None:
        fig = NotebookFigure(figsize=(_WIDTH, axes_height + _TITLE))
        return fig, fig.add_axes((0.0, 0.0, 1.0, axes_height / (axes_height + _TITLE)))
    fig = ax.figure
    while not isinstance(fig, Figure):  # a SubFigure: return the figure that holds it
        fig = fig.figure
    return fig, ax


def _source_words(source: str) -> str:
    """'live capture', 'recorded capture', or 'from NAME' for a pcap file."""
    if source in ("live", "recorded"):
        return f"{source} capture"
    return f"from {source}"


def _colour(phase: str) -> str:
    return PHASE_COLOURS.get(phase, _OTHER_COLOUR)


def _ends(row: int, segment: Segment) -> tuple[tuple[float, float], tuple[float, float]]:
    """(x, y) where the segment's arrow leaves the sender and reaches the receiver."""
    if segment.direction == SERVER_TO_CLIENT:
        return (_SERVER_X, row + _DEPART), (_CLIENT_X, row + _ARRIVE)
    return (_CLIENT_X, row + _DEPART), (_SERVER_X, row + _ARRIVE)


def _draw_phases(ax: Axes, segments: list[Segment]) -> None:
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


def _draw_lifelines(ax: Axes, conv: Conversation, rows: int) -> None:
    """Client on the left, server on the right: a vertical line under each name and address:port."""
    for x, name, (address, port) in ((_CLIENT_X, "client", conv.client), (_SERVER_X, "server", conv.server)):
        ax.plot([x, x], [-0.55, rows + 0.1], color="#444444", lw=1.3, solid_capstyle="butt", zorder=1)
        ax.text(x, -1.45, name, ha="center", va="center", fontsize=11, fontweight="bold", zorder=3,
                bbox=dict(boxstyle="round,pad=0.3", facecolor="white", edgecolor="#444444", lw=1.0))
        ax.text(x, -0.85, f"{address}:{port}", ha="center", va="center", fontsize=9.5, color="#333333",
                zorder=3)


def _draw_segment(ax: Axes, row: int, segment: Segment) -> None:
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


def _draw_states(ax: Axes, conv: Conversation, shown: list[Segment]) -> None:
    """Each side's state where it changes: on the lifeline where the segment that caused it touches.
    Above the first segment shown, the state each side was in before it."""
    rows = {segment.number: (row, segment) for row, segment in enumerate(shown)}
    for side, walk in conv.states().items():
        x, ha, dx = (_CLIENT_X, "right", -0.08) if side == "client" else (_SERVER_X, "left", 0.08)
        before = [step for step in walk if step[0] < shown[0].number]
        walk = before[-1:] + [step for step in walk if step[0] in rows]
        previous = None
        for number, state in walk:
            if number not in rows:
                y = -0.4  # the state before the first segment shown, just under the header
            else:
                row, segment = rows[number]
                sent = (segment.direction == CLIENT_TO_SERVER) == (side == "client")
                y = row + (_DEPART if sent else _ARRIVE)
            if previous is not None and y <= previous:
                # A step out of row order: in a simultaneous close a side sends its FIN before
                # the peer's (captured earlier) arrives. Keep the side's states in their order.
                y = previous + 0.5
            elif number in rows:
                ax.plot([x], [y], marker="o", markersize=3.5, color="#444444", zorder=3)
            ax.text(x + dx, y, state, ha=ha, va="center", fontsize=9, color="#444444",
                    fontstyle="italic", zorder=3, gid=f"state {side} {number}")
            previous = y


# ---------------------------------------------------------------------------
# The state diagram: RFC 9293 figure 5, drawn from conversation.TRANSITIONS.

# Okabe & Ito again: blue and vermillion stay distinct for the common kinds of colour blindness.
SIDE_COLOURS: dict[str, str] = {"client": "#0072B2", "server": "#D55E00"}
_INK = "#1a1a1a"  # boxes, arrows and labels when no conversation is highlighted
_NOT_TAKEN = "#b3b3b3"  # boxes and arrows neither side went through
_NOT_TAKEN_TEXT = "#808080"  # their names and events: lighter, still legible

# Geometry, in inches: the axes span the figure below the title, one data unit per inch.
_SD_HEIGHT = 7.7
_BOX_W, _BOX_H = 1.5, 0.44
# Each state's box (its centre), in the layout of RFC 9293 figure 5 and Stevens: opening at the
# top, ESTABLISHED in the middle, the side that closes first (active close) in a square at the
# lower left, the side that closes second (passive close) down the right. Every state in
# TRANSITIONS needs a place here.
_STATE_AT: dict[str, tuple[float, float]] = {
    "CLOSED": (4.3, 7.35),
    "LISTEN": (4.3, 6.35),
    "SYN-RECEIVED": (1.2, 5.35),
    "SYN-SENT": (7.4, 5.35),
    "ESTABLISHED": (4.3, 4.35),
    "FIN-WAIT-1": (1.2, 3.25),
    "CLOSING": (4.1, 3.25),
    "CLOSE-WAIT": (7.4, 3.25),
    "FIN-WAIT-2": (1.2, 1.85),
    "TIME-WAIT": (4.1, 1.85),
    "LAST-ACK": (7.4, 1.85),
}
# A state drawn a second time: CLOSED at the end of a connection stands at the bottom, as in the
# RFC, so arrows into it need not climb back over the whole figure. Arrows into CLOSED from
# ESTABLISHED's row or below go to this box, the others to the one at the top.
_STATE_AGAIN_AT: dict[str, tuple[float, float]] = {"CLOSED": (7.4, 0.5)}
# Bent arrows (arc3 radius, + bends to the right of the direction of travel), chosen by hand.
# An arrow not listed is straight, unless it would run through a box or along another arrow
# between the same boxes: then it is bent just enough (_clear_bend), so a transition added to
# the table still draws legibly before anyone places it here.
_BEND: dict[tuple[str, str], float] = {
    ("CLOSED", "send SYN"): -0.25,  # round the outside, clear of LISTEN, so the RST can come straight back
    ("SYN-SENT", "recv RST"): 0.0,
}
_BENDS_TO_TRY = (0.0, 0.2, -0.2, 0.35, -0.35, 0.5, -0.5)
# Arrows between two boxes one above the other are too short to bend apart: they run side by
# side instead, this far apart (points), each with its label on its own side, as in the RFC.
_SIDE_BY_SIDE = 14.0
# Labels of vertical arrows stand beside them: on the right unless listed here. Segment numbers
# always go to the right, of the label or of the arrow.
_LABEL_LEFT: set[tuple[str, str]] = {
    ("FIN-WAIT-1", "recv ACK of FIN"),  # the right is crowded by FIN-WAIT-1's other arrows
    ("LAST-ACK", "recv ACK of FIN"),  # the right is the figure's edge
}

_Box = tuple[str, int]  # (state, 0) for a state's box, (state, 1) for its second box


def state_diagram(conv: Conversation | None = None, *, ax: Axes | None = None,
                  title: str | None = None) -> Figure:
    """Draw the TCP state machine of RFC 9293 from `TRANSITIONS`: one box per state, one arrow per transition.

    Each arrow is labelled with its event ("recv SYN-ACK"). Given `conv`, the states and
    transitions each side went through are highlighted (client blue, server vermillion) with
    the number (#) of the segment that caused each step, and the rest turns grey. Resets outside
    the table are left out, as a note on the figure says. Without `ax` the figure is 8.6 by 8.15
    inches; an `ax` given needs about that room to stay legible. Returns the Figure: a notebook
    shows it, `fig.savefig(path)` saves it.
    """
    transitions = dict(_tcp.TRANSITIONS)  # read at call time: the table is the one source of truth
    states = _states_in(transitions)
    unplaced = [state for state in states if state not in _STATE_AT]
    if unplaced:
        raise ValueError(f"state_diagram has no place for {', '.join(unplaced)}: add it to _STATE_AT in netlab/core/draw.py")

    fig, ax = _figure_and_axes(ax, _SD_HEIGHT)
    ax.set_axis_off()
    ax.set_xlim(0, _WIDTH)
    ax.set_ylim(0, _SD_HEIGHT)
    ax.set_aspect("equal")  # arrows bend and labels sit in inches, the same across and up
    if title is None:
        title = "TCP states (RFC 9293)" if conv is None else (
            f"TCP states in stream {conv.stream_number} ({_source_words(conv.source)})")
    ax.set_title(title, fontsize=12, fontweight="bold", loc="center", pad=6)

    arrows = {key: (_box(key[0]), _box_into(nxt, _box(key[0]))) for key, nxt in transitions.items()}
    walks = _walks(conv, transitions) if conv is not None else {}
    boxes = {_box(state) for state in states} | {end for _, end in arrows.values()}
    for walk in walks.values():
        boxes |= walk["boxes"]

    highlighted = conv is not None
    for box in sorted(boxes):
        sides = [side for side, walk in walks.items() if box in walk["boxes"]]
        _draw_state_box(ax, box, sides, highlighted)
    bent = _draw_transitions(ax, arrows, walks, boxes, highlighted)
    untabled = _draw_untabled(ax, walks, boxes, bent)
    _draw_reset_note(ax, states)
    if highlighted:
        _state_legend(ax, bool(untabled))
    return fig


def _draw_transitions(ax: Axes, arrows: dict, walks: dict[str, dict], boxes: set, highlighted: bool) -> dict:
    """Draw one arrow per transition of the table, bent so that none hides another; return the bends used."""
    bent: dict[tuple[_Box, _Box], list[float]] = {}  # the bends of the arrows drawn between two boxes
    for key, (start, end) in arrows.items():
        taken = {side: walk["taken"][key] for side, walk in walks.items() if key in walk["taken"]}
        pair = [other for other, ends in arrows.items() if set(ends) == {start, end} and other not in _BEND]
        bend, apart = 0.0, 0.0
        if key in _BEND:
            bend = _BEND[key]
        elif len(pair) > 1 and _vertical(start, end):
            # Side by side, spread about the line between the boxes: measured across the first
            # arrow's direction, so an arrow the other way has its sign turned.
            towards = 1 if arrows[pair[0]] == (start, end) else -1
            apart = towards * (pair.index(key) - (len(pair) - 1) / 2) * _SIDE_BY_SIDE
        else:
            bend = _clear_bend(start, end, boxes, _bends_between(bent, start, end))
        bent.setdefault((start, end), []).append(bend)
        _draw_transition(ax, key, start, end, bend, apart, taken, highlighted)
    return bent


def _draw_untabled(ax: Axes, walks: dict[str, dict], boxes: set, bent: dict) -> dict:
    """Draw the steps a side took that the table lacks (dashed); return them by pair of boxes."""
    untabled: dict[tuple[_Box, _Box], list[tuple[str, int, str]]] = {}
    for side, walk in walks.items():
        for number, start, end, event in walk["untabled"]:
            untabled.setdefault((start, end), []).append((side, number, event))
    for (start, end), steps in untabled.items():
        bend = _clear_bend(start, end, boxes, _bends_between(bent, start, end))
        bent.setdefault((start, end), []).append(bend)
        _draw_untabled_steps(ax, start, end, bend, steps)
    return untabled


def _state_legend(ax: Axes, untabled: bool) -> None:
    handles = [Line2D([], [], color=SIDE_COLOURS[side], lw=2.6, label=side) for side in ("client", "server")]
    handles.append(Line2D([], [], color=_NOT_TAKEN, lw=1.4, label="not taken"))
    if untabled:
        handles.append(Line2D([], [], color=_INK, lw=1.6, linestyle="--", label="a step not in the table"))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(0.01, 0.99), fontsize=9.5,
              title="#: segment that caused the step", title_fontsize=9, frameon=False, alignment="left")


def _states_in(transitions: dict[tuple[str, str], str]) -> list[str]:
    """Every state the table names, in the order it first names them."""
    states: list[str] = []
    for (state, _event), nxt in transitions.items():
        for name in (state, nxt):
            if name not in states:
                states.append(name)
    return states


def _box(state: str) -> _Box:
    return (state, 0)


def _centre(box: _Box) -> tuple[float, float]:
    state, again = box
    return _STATE_AGAIN_AT[state] if again else _STATE_AT[state]


def _vertical(start: _Box, end: _Box) -> bool:
    return abs(_centre(start)[0] - _centre(end)[0]) < 0.05


def _box_into(state: str, start: _Box) -> _Box:
    """The box of `state` an arrow from `start` goes to: the second one from ESTABLISHED's row down."""
    if state in _STATE_AGAIN_AT and _centre(start)[1] <= _STATE_AT["ESTABLISHED"][1]:
        return (state, 1)
    return (state, 0)


def _bends_between(bent: dict, start: _Box, end: _Box) -> list[float]:
    """The bends of arrows already drawn between two boxes, as seen going from `start` to `end`."""
    # arc3 bends to the right of travel: an arrow drawn the other way with bend b lies at -b.
    return bent.get((start, end), []) + [-b for b in bent.get((end, start), [])]


def _clear_bend(start: _Box, end: _Box, boxes: set, taken: list[float]) -> float:
    """The first bend of _BENDS_TO_TRY whose arrow crosses no other box and no arrow between the same boxes."""
    others = [_centre(box) for box in boxes if box not in (start, end)]
    margin = 0.08  # inches kept clear around a box

    def clear(bend: float) -> bool:
        if any(abs(bend - b) < 0.15 for b in taken):
            return False
        for i in range(1, 40):
            x, y = _point_along(_centre(start), _centre(end), bend, i / 40)
            if any(abs(x - bx) < _BOX_W / 2 + margin and abs(y - by) < _BOX_H / 2 + margin for bx, by in others):
                return False
        return True

    return next((bend for bend in _BENDS_TO_TRY if clear(bend)), _BENDS_TO_TRY[-1])


def _walks(conv: Conversation, transitions: dict[tuple[str, str], str]) -> dict[str, dict]:
    """Per side: the boxes it visited, the table's transitions it took (with the segment numbers
    that caused them), and its steps the table has no entry for (a reset, mostly)."""
    walks = {}
    for side, walk in conv.states().items():
        box = _box(walk[0][1])
        visited = {box}
        taken: dict[tuple[str, str], list[int]] = {}
        untabled = []
        for (_, state), (number, nxt) in zip(walk, walk[1:]):
            end = _box_into(nxt, box)
            # The walk names states, not events: find the table's entries from one to the other.
            keys = [key for key, target in transitions.items() if key[0] == state and target == nxt]
            for key in keys:
                taken.setdefault(key, []).append(number)
            if not keys:
                untabled.append((number, box, end, _step_event(conv, side, number)))
            visited.add(end)
            box = end
        walks[side] = {"boxes": visited, "taken": taken, "untabled": untabled}
    return walks


def _step_event(conv: Conversation, side: str, number: int) -> str:
    """'send RST' or 'recv RST' when segment `number` is a reset, else '' (the number says enough)."""
    segment = conv.segments[number - 1]
    if not segment.has("RST"):
        return ""
    sent = (segment.direction == CLIENT_TO_SERVER) == (side == "client")
    return "send RST" if sent else "recv RST"


def _draw_state_box(ax: Axes, box: _Box, sides: list[str], highlighted: bool) -> None:
    """A rounded box named for its state; a side that visited it outlines it in its colour."""
    state, again = box
    x, y = _centre(box)
    suffix = " again" if again else ""
    if not highlighted:
        edge, face, ink = _INK, "#f2f2f2", _INK
    elif sides:
        edge, face, ink = SIDE_COLOURS[sides[0]], "white", _INK
    else:
        edge, face, ink = _NOT_TAKEN, "white", _NOT_TAKEN_TEXT
    patch = FancyBboxPatch((x - _BOX_W / 2, y - _BOX_H / 2), _BOX_W, _BOX_H, boxstyle="round,pad=0,rounding_size=0.08",
                           facecolor=face, edgecolor=edge, lw=2.6 if sides else 1.2, zorder=3, gid=f"box {state}{suffix}")
    ax.add_patch(patch)
    for side in sides:
        # Each side that visited the state has its own outline: the first's (the client's) on
        # the box, the second's just outside it, so a state both went through shows both colours.
        grow = 0.0 if side == sides[0] else 0.07
        ring = FancyBboxPatch((x - _BOX_W / 2 - grow, y - _BOX_H / 2 - grow), _BOX_W + 2 * grow, _BOX_H + 2 * grow,
                              boxstyle=f"round,pad=0,rounding_size={0.08 + grow}", facecolor="none",
                              edgecolor=SIDE_COLOURS[side], lw=2.6, zorder=3.1, gid=f"{side} box {state}{suffix}")
        ax.add_patch(ring)
    ax.text(x, y, state, ha="center", va="center", fontsize=10.5, fontweight="bold", color=ink, zorder=4,
            gid=f"state {state}{suffix}")


def _point_along(start: tuple[float, float], end: tuple[float, float], bend: float, t: float) -> tuple[float, float]:
    """The point a fraction `t` along matplotlib's arc3 curve from `start` to `end` (a quadratic Bézier)."""
    (x0, y0), (x2, y2) = start, end
    dx, dy = x2 - x0, y2 - y0
    cx, cy = (x0 + x2) / 2 + bend * dy, (y0 + y2) / 2 - bend * dx
    a, b, c = (1 - t) ** 2, 2 * t * (1 - t), t ** 2
    return a * x0 + b * cx + c * x2, a * y0 + b * cy + c * y2


def _arrow(ax: Axes, start: _Box, end: _Box, bend: float, colour: str, lw: float, gid: str, *,
           dashed: bool = False, shift: float = 0.0, zorder: float = 2) -> FancyArrowPatch:
    """An arrow from box to box, clipped at their edges; `shift` moves it sideways (points)."""
    patches = {p.get_gid(): p for p in ax.patches}
    transform = ax.transData
    if shift:
        (x0, y0), (x1, y1) = _centre(start), _centre(end)
        length = math.hypot(x1 - x0, y1 - y0)
        transform = transform + ScaledTranslation(shift / 72 * (y1 - y0) / length, -shift / 72 * (x1 - x0) / length,
                                                  ax.figure.dpi_scale_trans)
    arrow = FancyArrowPatch(_centre(start), _centre(end), transform=transform,
                            patchA=patches[_box_gid(start)], patchB=patches[_box_gid(end)],
                            connectionstyle=f"arc3,rad={bend}", arrowstyle="-|>", mutation_scale=13,
                            shrinkA=2, shrinkB=3, color=colour, lw=lw, linestyle="--" if dashed else "-",
                            zorder=zorder, gid=gid)
    ax.add_patch(arrow)
    return arrow


def _box_gid(box: _Box) -> str:
    return f"box {box[0]}{' again' if box[1] else ''}"


def _draw_transition(ax: Axes, key: tuple[str, str], start: _Box, end: _Box, bend: float, apart: float,
                     taken: dict[str, list[int]], highlighted: bool) -> None:
    """One table entry: its arrow and event, and over it each side that took it, with segment
    numbers. `apart` moves the arrow sideways (points, to the right of travel)."""
    state, event = key
    colour = _INK if not highlighted else _NOT_TAKEN
    _arrow(ax, start, end, bend, colour, 1.3, f"transition {state} | {event}", shift=apart)
    for i, side in enumerate(taken):
        shift = 0.0 if len(taken) == 1 else (-1.6 if i == 0 else 1.6)  # both sides: two tracks
        _arrow(ax, start, end, bend, SIDE_COLOURS[side], 2.4, f"{side} transition {state} | {event}",
               shift=apart + shift, zorder=2.5)
    ink = _INK if (taken or not highlighted) else _NOT_TAKEN_TEXT
    # An arrow moved sideways has its label on the side it moved to.
    left = key in _LABEL_LEFT if not apart else (apart * (_centre(end)[1] - _centre(start)[1]) < 0)
    _label(ax, start, end, bend, 0.5, left, event, ink, f"event {state} | {event}", taken, apart=apart)


def _draw_untabled_steps(ax: Axes, start: _Box, end: _Box, bend: float,
                         steps: list[tuple[str, int, str]]) -> None:
    """Steps of the walks the table has no entry for (a reset), between two boxes: a dashed
    arrow in each side's colour, its label at its own place along the arrow."""
    by_side: dict[str, list[tuple[int, str]]] = {}
    for side, number, event in steps:
        by_side.setdefault(side, []).append((number, event))
    for i, (side, taken) in enumerate(by_side.items()):
        shift = 0.0 if len(by_side) == 1 else (-1.6 if i == 0 else 1.6)
        along = 0.5 if len(by_side) == 1 else (0.36 if i == 0 else 0.52)  # two labels, one above the other
        events = list(dict.fromkeys(event for _, event in taken))
        _arrow(ax, start, end, bend, SIDE_COLOURS[side], 2.0, f"{side} step {start[0]} -> {end[0]}", dashed=True,
               shift=shift, zorder=2.5)
        _label(ax, start, end, bend, along, False, " / ".join(e for e in events if e), _INK,
               f"{side} step label {start[0]} -> {end[0]}", {side: [number for number, _ in taken]})


def _label(ax: Axes, start: _Box, end: _Box, bend: float, along: float, left: bool, text: str, ink: str,
           gid: str, numbers: dict[str, list[int]], *, apart: float = 0.0) -> None:
    """The event on its arrow, horizontal on a white ground (beside a vertical arrow, above a level
    one), then the segment numbers in each side's colour: right of the label, or right of a
    vertical arrow whose label is on its left, or under a level arrow."""
    x, y = _point_along(_centre(start), _centre(end), bend, along)
    (x0, y0), (x1, y1) = _centre(start), _centre(end)
    vertical = bend == 0 and abs(x1 - x0) < 0.05
    level = bend == 0 and abs(y1 - y0) < 0.05
    moved = (apart if y1 > y0 else -apart) if vertical else 0.0  # points: where _arrow moved the arrow
    ha, va, nudge = "center", "center", (0.0, 0.0)  # on the arrow, which the white ground interrupts
    if vertical:
        ha, nudge = ("right", (moved - 5, 0.0)) if left else ("left", (moved + 5, 0.0))
    elif level:
        va, nudge = "bottom", (0.0, 2.0)  # above a short level arrow, not hiding it
    place = ax.transData + ScaledTranslation(nudge[0] / 72, nudge[1] / 72, ax.figure.dpi_scale_trans)
    label = ax.text(x, y, text, transform=place, ha=ha, va=va, fontsize=9.5, color=ink, zorder=4, gid=gid,
                    bbox=dict(boxstyle="round,pad=0.12", facecolor="white", edgecolor="none", alpha=0.9))
    # The first side's numbers: anchored to a point (offset in points) or to the label's right
    # end. A second side's follow right of the first's.
    anchor, xy, offset, ha_number, va_number = label, (1, 0.5), (3.0, 0.0), "left", "center"
    if vertical and left:
        anchor, xy, offset = "data", (x, y), (moved + 5, 0.0)
    elif level:
        anchor, xy, va_number = "data", (x, y), "top"
        offset, ha_number = ((0.0, -3.0), "center") if len(numbers) == 1 else ((-2.0, -3.0), "right")
    for side, taken in numbers.items():
        anchor = ax.annotate(", ".join(f"#{n}" for n in taken), xy=xy, xycoords=anchor, xytext=offset,
                             textcoords="offset points", ha=ha_number, va=va_number,
                             fontsize=9.5, fontweight="bold", color=SIDE_COLOURS[side], zorder=4,
                             gid=f"{side} numbers {gid}", annotation_clip=False,
                             bbox=dict(boxstyle="round,pad=0.1", facecolor="white", edgecolor="none", alpha=0.9))
        xy, offset, ha_number, va_number = (1, 0.5), (3.0, 0.0), "left", "center"


def _draw_reset_note(ax: Axes, states: list[str]) -> None:
    """Say which resets are left out, read from the states a RST closes (`RESETTABLE`)."""
    spared = [state for state in states if state not in _tcp.RESETTABLE]
    ax.text(0.1, 0.08, "Resets left out, to keep it legible: a RST\n"
            f"takes every state but {', '.join(spared[:-1])}\nand {spared[-1]} to CLOSED.", ha="left", va="bottom",
            fontsize=9, color="#555555", fontstyle="italic", zorder=4, gid="note resets")


# ---------------------------------------------------------------------------
# The time-sequence graph (Stevens, tcptrace) and the window plot: time across, bytes up.

# Okabe & Ito once more, one colour per kind of thing drawn.
TIME_SEQUENCE_COLOURS: dict[str, str] = {
    "data": "#0072B2",  # blue: a segment's bytes, sent for the first time
    "retransmission": "#D55E00",  # vermillion: bytes sent again
    "ack": "#009E73",  # bluish green: what the receiver has acknowledged
    "window": "#E69F00",  # orange: how far the receiver allows the sender to go (ack + window)
    "window probe": "#CC79A7",  # reddish purple: a probe into a zero window
    "dup ack": "#CC79A7",
    "syn/fin": "#1a1a1a",
}
_PLOT_HEIGHT = 4.4  # inches: the axes of a time plot, tick labels and legend included
_MARGINS = (0.11, 0.12, 0.86, 0.78)  # left, bottom, width, height of the axes, as fractions of the figure


def plot_figure_and_axes(ax: Axes | None) -> tuple[Figure, Axes]:
    """A new notebook-width figure (8.6 by 4.4 inches) with room for ticks, axis labels and a title, or `ax`'s
    figure: where every plot against time starts, here and in a lesson's own drawings."""
    if ax is None:
        fig = NotebookFigure(figsize=(_WIDTH, _PLOT_HEIGHT))
        return fig, fig.add_axes(_MARGINS)
    return _figure_and_axes(ax, 0.0)


def _time_scale(conv: Conversation) -> tuple[float, str]:
    """Milliseconds for a conversation shorter than 2 s (loopback), else seconds: (factor, unit)."""
    duration = conv.segments[-1].time if conv.segments else 0.0
    return (1000.0, "ms") if duration < 2.0 else (1.0, "s")


def time_sequence(conv: Conversation, direction: str = CLIENT_TO_SERVER, *, ax: Axes | None = None,
                  title: str | None = None) -> Figure:
    """Draw one direction of `conv` as a time-sequence graph: relative sequence number against time.

    Each segment that carries data is a vertical bar from its first byte to its last, at the
    time it was captured (blue; bytes sent again in vermillion with an ×). The other side's
    acknowledgement number is the green step line, and ack + advertised window (the furthest
    byte the sender may send) the orange one: the gap between the two is the room the receiver
    gives. SYN and FIN are black triangles, zero-window probes purple diamonds, duplicate ACKs
    purple ticks on the ACK line. Time is in ms for a conversation shorter than 2 s, else in
    seconds; sequence numbers are in bytes. Returns the Figure (8.6 by 4.4 inches without `ax`).
    """
    if direction not in (CLIENT_TO_SERVER, SERVER_TO_CLIENT):
        raise ValueError(f"direction must be {CLIENT_TO_SERVER!r} or {SERVER_TO_CLIENT!r}, not {direction!r}")
    fig, ax = plot_figure_and_axes(ax)
    scale, unit = _time_scale(conv)
    sender = "client" if direction == CLIENT_TO_SERVER else "server"
    if title is None:
        title = f"Time-sequence graph, {sender}'s bytes ({direction}), stream {conv.stream_number} ({_source_words(conv.source)})"
    ax.set_title(title, fontsize=11, fontweight="bold", pad=6)

    sent = [s for s in conv.segments if s.direction == direction]
    answers = [s for s in conv.segments if s.direction != direction and s.ack is not None and not s.has("RST")]
    _draw_sent(ax, sent, scale)
    if answers:
        _draw_answers(ax, answers, scale)
    ax.set_xlabel(f"time ({unit})", fontsize=10)
    ax.set_ylabel(f"relative sequence number, {sender}'s bytes", fontsize=10)
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))  # sequence numbers count whole bytes
    ax.tick_params(labelsize=9)
    ax.grid(True, color="#dddddd", lw=0.6, zorder=0)
    _time_sequence_legend(ax, sent, answers)
    return fig


# Each kind of mark is one artist for all the segments that have it (a thousand segments drew in
# 1.4 s as a line each, in 0.2 s this way). Their gids say what they hold, for tests and stylesheets.
def _draw_sent(ax: Axes, sent: list[Segment], scale: float) -> None:
    """The drawn direction's segments: its bytes as bars, and marks for what each repeats or opens."""
    colours = TIME_SEQUENCE_COLOURS
    for kind, repeated in (("data", False), ("retransmission", True)):
        bars = [s for s in sent if s.length and s.retransmission == repeated]
        if not bars:
            continue
        # tcptrace's I-beam: a bar over the bytes, with short caps at its ends.
        ends = [[(s.time * scale, s.seq), (s.time * scale, s.seq + s.length)] for s in bars]
        ax.add_collection(LineCollection(ends, colors=colours[kind], linewidths=2.2, gid=f"{kind} bars", zorder=3))
        ax.plot([x for end in ends for x, _ in end], [y for end in ends for _, y in end], linestyle="none",
                marker="_", markersize=7, color=colours[kind], gid=f"{kind} caps", zorder=3)
    marks = {  # kind: (which segments, where on each, the marker's look)
        "retransmissions": ([s for s in sent if s.retransmission], lambda s: s.seq + s.length / 2,
                            dict(marker="x", markersize=10, markeredgewidth=2, color=colours["retransmission"], zorder=5)),
        "window probes": ([s for s in sent if s.window_probe], lambda s: s.seq,
                          dict(marker="D", markersize=6, color=colours["window probe"], zorder=4)),
        "SYNs": ([s for s in sent if s.has("SYN")], lambda s: s.seq,
                 dict(marker=">", markersize=7, color=colours["syn/fin"], zorder=4)),
        "FINs": ([s for s in sent if s.has("FIN")], lambda s: s.seq + s.length,  # a FIN's number follows its data
                 dict(marker=">", markersize=7, color=colours["syn/fin"], zorder=4)),
        "RSTs": ([s for s in sent if s.has("RST")], lambda s: s.seq,
                 dict(marker="s", markersize=7, color=colours["syn/fin"], zorder=4)),
    }
    for gid, (which, y, look) in marks.items():
        if which:
            ax.plot([s.time * scale for s in which], [y(s) for s in which], linestyle="none", gid=gid, **look)
    for gid, flag in (("SYNs", "SYN"), ("FINs", "FIN"), ("RSTs", "RST")):
        which, y, _ = marks[gid]
        for s in which:
            ax.annotate(flag, (s.time * scale, y(s)), xytext=(4, 4), textcoords="offset points", fontsize=9,
                        color=colours["syn/fin"], gid=f"{flag.lower()} label {s.number}")


def _draw_answers(ax: Axes, answers: list[Segment], scale: float) -> None:
    """The other side's ACK line and ack + window line, with its duplicate ACKs marked."""
    colours = TIME_SEQUENCE_COLOURS
    times = [s.time * scale for s in answers]
    # Each value holds until the next segment changes it: a step after each point.
    ax.step(times, [s.ack for s in answers], where="post", color=colours["ack"], lw=1.5, gid="ack line", zorder=2)
    ax.step(times, [s.ack + s.window for s in answers], where="post", color=colours["window"], lw=1.5,
            linestyle="--", gid="window line", zorder=2)
    dups = [s for s in answers if s.dup_ack]
    if dups:
        ax.plot([s.time * scale for s in dups], [s.ack for s in dups], linestyle="none", marker="|", markersize=10,
                markeredgewidth=2, color=colours["dup ack"], gid="dup acks", zorder=4)


def _time_sequence_legend(ax: Axes, sent: list[Segment], answers: list[Segment]) -> None:
    colours = TIME_SEQUENCE_COLOURS
    _legend(ax, [
        ("data", Line2D([], [], color=colours["data"], lw=2.2, marker="_", markersize=7), any(s.length for s in sent)),
        ("retransmission", Line2D([], [], color=colours["retransmission"], marker="x", markersize=10,
                                  markeredgewidth=2, linestyle="none"), any(s.retransmission for s in sent)),
        ("zero-window probe", Line2D([], [], color=colours["window probe"], marker="D", markersize=6,
                                     linestyle="none"), any(s.window_probe for s in sent)),
        ("SYN / FIN", Line2D([], [], color=colours["syn/fin"], marker=">", markersize=7, linestyle="none"),
         any(s.has("SYN") or s.has("FIN") for s in sent)),
        ("ACK (the other side's ack)", Line2D([], [], color=colours["ack"], lw=1.5), bool(answers)),
        ("ack + receive window", Line2D([], [], color=colours["window"], lw=1.5, linestyle="--"), bool(answers)),
        ("duplicate ACK", Line2D([], [], color=colours["dup ack"], marker="|", markersize=10, markeredgewidth=2,
                                 linestyle="none"), any(s.dup_ack for s in answers)),
    ])


def window_plot(conv: Conversation, *, ax: Axes | None = None, title: str | None = None) -> Figure:
    """Draw the receive window each side advertised, in bytes, against time: one step line per side.

    A window of 0 bytes ("stop sending, my buffer is full") is marked with a black dot; resets
    are left out, since a RST's window means nothing. Time is in ms for a conversation shorter
    than 2 s, else in seconds. Returns the Figure (8.6 by 4.4 inches without `ax`).
    """
    fig, ax = plot_figure_and_axes(ax)
    scale, unit = _time_scale(conv)
    if title is None:
        title = f"Advertised receive window, stream {conv.stream_number} ({_source_words(conv.source)})"
    ax.set_title(title, fontsize=11, fontweight="bold", pad=6)
    handles = []
    for side, direction in (("client", CLIENT_TO_SERVER), ("server", SERVER_TO_CLIENT)):
        sent = [s for s in conv.segments if s.direction == direction and not s.has("RST")]
        if not sent:
            continue
        line, = ax.step([s.time * scale for s in sent], [s.window for s in sent], where="post",
                        color=SIDE_COLOURS[side], lw=1.6, gid=f"window {side}", zorder=2,
                        label=f"{side} ({direction}) advertises")
        handles.append(line)
        for s in sent:
            if s.window == 0:
                ax.plot([s.time * scale], [0], linestyle="none", marker="o", markersize=6, color="#1a1a1a",
                        gid=f"zero window {s.number}", zorder=4)
    if conv.zero_windows():
        handles.append(Line2D([], [], color="#1a1a1a", marker="o", markersize=6, linestyle="none",
                              label="zero window: stop sending"))
    ax.set_ylim(bottom=0)
    ax.set_xlabel(f"time ({unit})", fontsize=10)
    ax.set_ylabel("advertised window (bytes)", fontsize=10)
    ax.tick_params(labelsize=9)
    ax.grid(True, color="#dddddd", lw=0.6, zorder=0)
    if handles:
        ax.legend(handles=handles, fontsize=9, loc="best", framealpha=0.9)
    return fig


def _legend(ax: Axes, entries: list[tuple[str, Line2D, bool]]) -> None:
    """A legend naming only what the graph shows."""
    shown = [(handle, name) for name, handle, present in entries if present]
    if shown:
        ax.legend([h for h, _ in shown], [n for _, n in shown], fontsize=9, loc="upper left", framealpha=0.9)


# ---------------------------------------------------------------------------
# One packet's layers (notebook 01): each header's byte range, read from scapy's own dissection,
# drawn as the textbook's encapsulation picture. Nothing here knows a header's layout.

# Okabe & Ito again, one colour per layer; any other layer is grey.
LAYER_COLOURS: dict[str, str] = {
    "Ethernet": "#E69F00",  # orange
    "IP": "#56B4E9",  # sky blue
    "TCP": "#009E73",  # bluish green
    "UDP": "#009E73",
    "payload": "#F0E442",  # yellow
}


def header_ranges(pkt: Any) -> list[tuple[str, int, int]]:
    """Each layer of a scapy packet as (name, first byte, end byte), end exclusive, in bytes from the frame's start.

    The sizes are scapy's: a layer's bytes minus its payload's bytes. The application data is
    named 'payload'; trailing bytes below the IP length (Ethernet padding) 'padding'.
    """
    from scapy.packet import NoPayload, Padding, Raw

    ranges = []
    offset = 0
    layer = pkt
    while layer is not None and not isinstance(layer, NoPayload):
        inner = layer.payload
        size = len(bytes(layer)) - (0 if isinstance(inner, NoPayload) else len(bytes(inner)))
        name = "payload" if isinstance(layer, Raw) else "padding" if isinstance(layer, Padding) else layer.name
        ranges.append((name, offset, offset + size))
        offset += size
        layer = inner
    return ranges


def encapsulation(pkt: Any, *, ax: Axes | None = None, title: str | None = None) -> Figure:
    """Draw a packet's encapsulation: one row per layer, each header placed at its bytes in the frame.

    The top row is the application's data; each row below adds that layer's header in front, so
    the bottom row is the whole frame as it was on the wire. Widths are to scale (bytes).
    Returns the Figure.
    """
    ranges = [r for r in header_ranges(pkt) if r[0] != "padding"]
    if not ranges:
        raise ValueError("the packet has no layers to draw")
    total = ranges[-1][2]
    rows = len(ranges)
    fig, ax = _figure_and_axes(ax, 0.62 * rows + 0.55)
    ax.set_axis_off()
    left, right = 1.45, _WIDTH - 0.15  # inches: room on the left for each row's name
    scale = (right - left) / total
    ax.set_xlim(0, _WIDTH)
    ax.set_ylim(rows + 0.1, -0.55)
    ax.set_title(title or f"{' / '.join(r[0] for r in ranges)}: {total} bytes on the wire",
                 fontsize=12, fontweight="bold", pad=6)
    names = {"Ethernet": "Ethernet frame", "IP": "IP packet", "TCP": "TCP segment", "UDP": "UDP datagram",
             "payload": "application data"}
    for row, (name, start, end) in enumerate(reversed(ranges)):  # top row: the innermost layer
        ax.text(left - 0.1, row + 0.35, names.get(name, name), ha="right", va="center", fontsize=_FONT)
        header = Rectangle((left + start * scale, row), (end - start) * scale, 0.7, facecolor=LAYER_COLOURS.get(name, "#BBBBBB"),
                           edgecolor="#333333", lw=0.8, gid=f"header {name}")
        ax.add_patch(header)
        label = f"{name if name == 'payload' else name + ' header'}\nbytes {start}–{end - 1} ({end - start})"
        ax.text(left + (start + end) / 2 * scale, row + 0.35, label, ha="center", va="center", fontsize=9)
        if end < total:  # what this layer carries: everything the layers above made
            ax.add_patch(Rectangle((left + end * scale, row), (total - end) * scale, 0.7, facecolor="#F2F2F2",
                                   edgecolor="#333333", lw=0.8, hatch="//", gid=f"carried by {name}"))
    for _name, start, _end in ranges[1:]:  # dotted lines down the boundaries: the same byte in every row
        ax.plot([left + start * scale] * 2, [-0.15, rows], color="#777777", lw=0.6, ls=":", zorder=0)
    return fig
