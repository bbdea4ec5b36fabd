"""Step through a TCP conversation segment by segment, and re-run an experiment from a panel.

Theory of operation
-------------------
`explore(conversation)` returns an `Explorer`: **Previous** and **Next** buttons and a slider
over the segments (its arrow keys step too), and for the current segment a window of the ladder
with that arrow highlighted, the segment's header fields and bytes per layer (scapy's own
dissection, as notebook 01 draws it), each side's TCP state after it, the bytes in flight each
way and the window each side advertises. `explore(function, name=value, ...)` adds a panel: one
control per parameter and a **Run** button that calls `function(**values)` and shows the new
conversation; a run that fails says why in the panel, never as a traceback.

Everything a step shows is computed once, when a conversation is loaded (`_Steps`, linear in the
segments); a click only picks row k and writes two small HTML strings (the ladder window as SVG
and the details), so a click costs the same on 10 segments as on 100,000. The ladder window is
SVG written here rather than `draw.ladder`, because matplotlib takes 0.3-0.5 s to render even ten
labelled arrows (text layout dominates), and a click must answer within 0.1 s. It uses the
ladder's colours and layout.

Where widgets cannot run (nbval, `jupyter nbconvert --to html`, GitHub's viewer) the cell shows
the fallback of the Explorer's mimebundle: `draw.ladder` of the first segments beside a table of
the same facts (image/png), and one line of text (text/plain) that names the stream and its
source but no count, time, port or object id: a live transfer's segments differ from run to run,
and a notebook's stored output must compare equal on every run. `Explorer.text()` gives the
table as text, for a cell to print where its conversation is the same on every run.

Rules for this file:
1. What TCP facts are shown comes from `Conversation` (segments, `states()`); this file only
   accumulates them per step (in flight, last window), it decides nothing about TCP.
2. ipywidgets and matplotlib are imported when an Explorer is made, not on `import netlab`: the
   lab's helper process imports netlab too.
"""

from __future__ import annotations

import copy
import html
import math
from collections.abc import Callable
from typing import Any, NamedTuple

from netlab.core.conversation import CLIENT_TO_SERVER, SERVER_TO_CLIENT, Conversation

__all__ = ["Explorer", "explore", "WINDOW_ROWS", "STATIC_ROWS"]

WINDOW_ROWS = 11  # segments in the explorer's ladder window, the current one in the middle
STATIC_ROWS = 24  # segments in the static view (image and text) shown where widgets cannot run

# Phase and layer colours: the ladder's and notebook 01's (netlab.core.draw), repeated here so that
# importing this module does not import matplotlib.
_PHASE_COLOURS = {"handshake": "#0072B2", "data": "#009E73", "teardown": "#CC79A7", "reset": "#D55E00"}
_LAYER_COLOURS = {"Ethernet": "#E69F00", "IP": "#56B4E9", "TCP": "#009E73", "UDP": "#009E73", "payload": "#F0E442"}
_OTHER = "#555555"
_HIGHLIGHT = "#FFD24D"  # the current row's band: amber, distinct from every phase colour


# ---------------------------------------------------------------------------
# What each step shows, computed once per conversation.

class Step(NamedTuple):
    """What the explorer shows after segment `number` (1-based): both sides' states, in flight, windows."""

    number: int
    client_state: str
    server_state: str
    in_flight: dict[str, int]  # direction -> sequence numbers sent and not yet acknowledged (SYN, FIN count one)
    window: dict[str, int | None]  # "client"/"server" -> the last receive window it advertised, bytes


def steps(conv: Conversation, walks: dict[str, list[tuple[int, str]]] | None = None) -> list[Step]:
    """One Step per segment, in order: the facts after that segment, in one pass over the conversation."""
    count = len(conv.segments)
    walks = walks or conv.states()
    state_after: dict[str, list[str]] = {}
    for side, walk in walks.items():
        after = [walk[0][1]] * (count + 1)  # index k: the state after segment k (0: before the first)
        for number, state in walk[1:]:  # a walk is in its own order; a later step wins from its segment on
            after[number:] = [state] * (count + 1 - number)
        state_after[side] = after
    sent_up_to: dict[str, int] = {}
    first_seq: dict[str, int] = {}  # direction -> its first sequence number (0 after a SYN: relative to the ISN)
    acked: dict[str, int] = {}  # direction -> highest ack the other side sent for it
    window: dict[str, int | None] = {"client": None, "server": None}
    result = []
    for s in conv.segments:
        other = SERVER_TO_CLIENT if s.direction == CLIENT_TO_SERVER else CLIENT_TO_SERVER
        end = s.seq + s.length + s.has("SYN") + s.has("FIN")
        first_seq.setdefault(s.direction, s.seq)
        if s.direction not in sent_up_to or 0 < (end - sent_up_to[s.direction]) % 2**32 < 2**31:
            sent_up_to[s.direction] = end % 2**32
        if s.ack is not None and not s.has("RST"):
            if other not in acked or 0 < (s.ack - acked[other]) % 2**32 < 2**31:
                acked[other] = s.ack
        if not s.has("RST"):
            window["client" if s.direction == CLIENT_TO_SERVER else "server"] = s.window
        flight = {}
        for direction in (CLIENT_TO_SERVER, SERVER_TO_CLIENT):
            if direction not in sent_up_to:
                flight[direction] = 0
                continue
            gap = (sent_up_to[direction] - acked.get(direction, first_seq[direction])) % 2**32
            flight[direction] = gap if gap < 2**31 else 0
        if s.has("RST"):
            flight = {CLIENT_TO_SERVER: 0, SERVER_TO_CLIENT: 0}  # nothing is in flight on an aborted connection
        result.append(Step(s.number, state_after["client"][s.number], state_after["server"][s.number], flight,
                           dict(window)))
    return result


def window_walks(walks: dict[str, list[tuple[int, str]]], first: int, last: int) -> dict[str, list[tuple[int, str]]]:
    """Each side's walk (`Conversation.states()`) cut to segments first..last: entry 0 is its state before `first`."""
    result = {}
    for side, walk in walks.items():
        before = walk[0][1]
        for number, state in walk[1:]:
            if number < first:
                before = state
        result[side] = [(0, before)] + [(n, st) for n, st in walk[1:] if first <= n <= last]
    return result


def _window_of(conv: Conversation, first: int, last: int) -> Conversation:
    """A view of segments first..last (1-based, inclusive) that `draw.ladder` draws as it draws a conversation.

    Its `states()` starts each side in the state it had before `first`, and keeps the steps within.
    """
    view = copy.copy(conv)
    view.segments = conv.segments[first - 1:last]
    walks = window_walks(conv.states(), first, last)
    view.states = lambda: walks  # type: ignore[method-assign]
    return view


# ---------------------------------------------------------------------------
# The ladder window as SVG: the same picture as draw.ladder, a few rows of it, in microseconds.

_W = 560  # px
_ROW = 40  # px per segment
_TOP = 62  # px above the first arrow: names, addresses, the "earlier segments" note
_CLIENT_X, _SERVER_X = 170, 420
_NUMBER_X = 120
_DEPART, _ARRIVE = 0.1, 0.55  # where an arrow leaves and arrives, in rows


def _svg_text(x: float, y: float, text: str, **attrs: Any) -> str:
    extra = " ".join(f'{k.replace("_", "-")}="{v}"' for k, v in attrs.items())
    return f'<text x="{x:.1f}" y="{y:.1f}" {extra}>{html.escape(text)}</text>'


def ladder_svg(conv: Conversation, current: int, rows: int = WINDOW_ROWS,
               walks: dict[str, list[tuple[int, str]]] | None = None) -> str:
    """The ladder around segment `current` (1-based) as an SVG string: `rows` arrows, the current one highlighted.

    The root carries data-current and data-first/data-last (the segments drawn), and the current
    arrow's group the class "current", so a test or a stylesheet can find them. `walks` is
    `conv.states()`, given by a caller that draws many windows, so it is walked once.
    """
    segs = conv.segments
    first = max(1, min(current - rows // 2, len(segs) - rows + 1))
    last = min(len(segs), first + rows - 1)
    shown = segs[first - 1:last]
    height = _TOP + _ROW * len(shown) + 30
    y_of = lambda number, at: _TOP + _ROW * (number - first + at)  # noqa: E731
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="netlab-ladder" width="{_W}" height="{height}" '
           f'viewBox="0 0 {_W} {height}" data-current="{current}" data-first="{first}" data-last="{last}" '
           f'font-family="DejaVu Sans, sans-serif" role="img" '
           f'aria-label="ladder diagram, segments {first} to {last} of {len(segs)}, segment {current} highlighted">',
           '<defs>' + "".join(
               f'<marker id="nl-head-{name}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
               f'orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
               for name, colour in [*_PHASE_COLOURS.items(), ("other", _OTHER)]) + '</defs>']
    # Phase bands, then the current row's band over them.
    start = 0
    for i in range(1, len(shown) + 1):
        if i == len(shown) or shown[i].phase != shown[start].phase:
            phase = shown[start].phase
            y0, y1 = y_of(shown[start].number, -0.15), y_of(shown[i - 1].number, 0.85)
            colour = _PHASE_COLOURS.get(phase, _OTHER)
            out.append(f'<rect x="4" y="{y0:.1f}" width="{_W - 8}" height="{y1 - y0:.1f}" fill="{colour}" '
                       f'fill-opacity="0.10"/>')
            out.append(_svg_text(10, (y0 + y1) / 2 + 4, phase, font_size=12, font_weight="bold", fill=colour))
            start = i
    y0 = y_of(current, -0.15)
    out.append(f'<rect class="current-band" x="{_NUMBER_X - 30}" y="{y0:.1f}" width="{_W - _NUMBER_X + 26}" '
               f'height="{_ROW:.1f}" fill="{_HIGHLIGHT}" fill-opacity="0.55" rx="4"/>')
    # Lifelines with names and addresses.
    bottom = y_of(last, 1.0)
    for x, name, (address, port) in ((_CLIENT_X, "client", conv.client), (_SERVER_X, "server", conv.server)):
        out.append(f'<line x1="{x}" y1="{_TOP - 14}" x2="{x}" y2="{bottom:.1f}" stroke="#444" stroke-width="1.3"/>')
        out.append(_svg_text(x, 16, name, text_anchor="middle", font_size=14, font_weight="bold"))
        out.append(_svg_text(x, 31, f"{address}:{port}", text_anchor="middle", font_size=11, fill="#333"))
    if first > 1:
        out.append(_svg_text(_W / 2, _TOP - 18, f"⋮ {first - 1} earlier segment{'s' * (first > 2)}",
                             text_anchor="middle", font_size=11, fill="#666"))
    if last < len(segs):
        out.append(_svg_text(_W / 2, bottom + 22, f"⋮ {len(segs) - last} later segment{'s' * (len(segs) - last > 1)}",
                             text_anchor="middle", font_size=11, fill="#666"))
    for s in shown:
        out.append(_svg_arrow(s, y_of(s.number, 0), s.number == current))
    out.extend(_svg_states(conv, window_walks(walks or conv.states(), first, last), first, last, y_of))
    out.append("</svg>")
    return "".join(out)


def _svg_arrow(s: Any, top: float, current: bool) -> str:
    """One segment: its arrow, its label above the arrow's middle, its number on the left."""
    x0, x1 = (_CLIENT_X, _SERVER_X) if s.direction == CLIENT_TO_SERVER else (_SERVER_X, _CLIENT_X)
    y0, y1 = top + _DEPART * _ROW, top + _ARRIVE * _ROW
    colour = _PHASE_COLOURS.get(s.phase, _OTHER)
    head = s.phase if s.phase in _PHASE_COLOURS else "other"
    (lx, ly), (rx, ry) = sorted([(x0, y0), (x1, y1)])
    angle = math.degrees(math.atan2(ry - ly, rx - lx))
    mx, my = (x0 + x1) / 2, (y0 + y1) / 2
    notes = [w for w, on in (("retransmission", s.retransmission), ("window probe", s.window_probe),
                             ("dup ACK", s.dup_ack)) if on]
    label = s.label + (f" ({', '.join(notes)})" if notes else "")
    return (f'<g class="segment{" current" * current}" data-number="{s.number}">'
            f'<line x1="{x0}" y1="{y0:.1f}" x2="{x1}" y2="{y1:.1f}" stroke="{colour}" '
            f'stroke-width="{3.4 if current else 1.6}" marker-end="url(#nl-head-{head})"/>'
            f'<text x="{mx:.1f}" y="{my - 4:.1f}" text-anchor="middle" font-size="12" '
            f'font-weight="{"bold" if current else "normal"}" fill="#1a1a1a" '
            f'transform="rotate({angle:.2f} {mx:.1f} {my:.1f})">{html.escape(label)}</text>'
            f'<text x="{_NUMBER_X}" y="{my + 4:.1f}" text-anchor="end" font-size="11" fill="#666">{s.number}</text>'
            "</g>")


def _svg_states(conv: Conversation, walks: dict[str, list[tuple[int, str]]], first: int, last: int,
                y_of: Callable[[int, float], float]) -> list[str]:
    """Each side's state where it changes within the window, and the state it started the window in."""
    out = []
    by_number = {s.number: s for s in conv.segments[first - 1:last]}
    for side, walk in walks.items():
        x, anchor = (_CLIENT_X - 6, "end") if side == "client" else (_SERVER_X + 6, "start")
        previous = None
        for number, state in walk:
            if number == 0:
                y = _TOP - 15
            else:
                s = by_number[number]
                sent = (s.direction == CLIENT_TO_SERVER) == (side == "client")
                y = y_of(number, _DEPART if sent else _ARRIVE)
            if previous is not None and y <= previous:
                y = previous + _ROW / 2  # a step out of row order (simultaneous close): keep the side's order
            out.append(_svg_text(x, y + 4, state, text_anchor=anchor, font_size=11, font_style="italic", fill="#444"))
            previous = y
    return out


# ---------------------------------------------------------------------------
# The current segment's details as HTML.

def _layers_html(pkt: Any) -> str:
    """Bytes per layer (draw.header_ranges) as a bar to scale and one line per layer."""
    from netlab.core.draw import header_ranges

    ranges = [r for r in header_ranges(pkt) if r[0] != "padding"]
    total = ranges[-1][2] if ranges else 0
    if not total:
        return ""
    bar = "".join(
        f'<div title="{html.escape(name)}: bytes {a}–{b - 1}" style="flex:{b - a} 0 0;min-width:3px;'
        f'background:{_LAYER_COLOURS.get(name, "#BBB")};border-right:1px solid #333"></div>'
        for name, a, b in ranges)
    lines = "".join(f"<li>{html.escape(name)}: bytes {a}–{b - 1} ({b - a})</li>" for name, a, b in ranges)
    return (f'<div class="netlab-layers"><b>Bytes per layer</b> ({total} bytes on the wire)'
            f'<div style="display:flex;height:14px;border:1px solid #333;margin:3px 0">{bar}</div>'
            f'<ul style="margin:0;padding-left:18px">{lines}</ul></div>')


def _fields_html(pkt: Any) -> str:
    """Each header's fields as scapy dissects them (the names and values of `packet.show()`)."""
    from scapy.packet import NoPayload, Padding, Raw

    parts = []
    layer = pkt
    while layer is not None and not isinstance(layer, (NoPayload, Padding)):
        if isinstance(layer, Raw):
            data = bytes(layer.load)
            parts.append(f"<tr><th>payload</th><td colspan=3>{html.escape(repr(data[:40]))}"
                         f"{'…' if len(data) > 40 else ''} ({len(data)} bytes)</td></tr>")
            break
        cells = []
        for fld in layer.fields_desc:
            value = layer.getfieldval(fld.name)
            try:
                shown = fld.i2repr(layer, value)
            except Exception:  # noqa: BLE001  (a field scapy cannot format is shown as it is)
                shown = repr(value)
            cells.append(f"<code>{html.escape(fld.name)}</code>={html.escape(str(shown))}")
        parts.append(f"<tr><th style='text-align:left;vertical-align:top'>{html.escape(layer.name)}</th>"
                     f"<td style='text-align:left'>{'  '.join(cells)}</td></tr>")
        layer = layer.payload
    return f'<table class="netlab-fields" style="font-size:12px">{"".join(parts)}</table>'


def details_html(conv: Conversation, step: Step) -> str:
    """What the explorer shows beside the ladder for one step: the segment, the states, in flight, windows, headers."""
    s = conv.segments[step.number - 1]
    notes = [w for w, on in (("retransmission", s.retransmission), ("window probe", s.window_probe),
                             ("duplicate ACK", s.dup_ack)) if on]
    flight = step.in_flight
    win = {side: "—" if w is None else f"{w} bytes" for side, w in step.window.items()}
    return (
        f'<div class="netlab-details" data-number="{s.number}" style="font-size:13px;line-height:1.45">'
        f'<div class="netlab-segment"><b>Segment {s.number} of {len(conv.segments)}</b>: '
        f'{html.escape(s.direction)} {html.escape(s.label)}, {html.escape(s.phase)}'
        f'{" (" + ", ".join(notes) + ")" if notes else ""}; {s.time * 1000:.3f} ms after the first</div>'
        f'<div class="netlab-states" data-client="{step.client_state}" data-server="{step.server_state}">'
        f'<b>After it</b>: client <b>{step.client_state}</b>, server <b>{step.server_state}</b></div>'
        f'<div class="netlab-flight"><b>In flight</b> (sent, not yet acknowledged; SYN and FIN count one): '
        f'client→server {flight[CLIENT_TO_SERVER]} bytes, server→client {flight[SERVER_TO_CLIENT]} bytes</div>'
        f'<div class="netlab-windows"><b>Receive windows</b> (last advertised): client {win["client"]}, '
        f'server {win["server"]}</div>'
        f'{_layers_html(s.packet)}'
        f'<details open><summary><b>Header fields</b></summary>{_fields_html(s.packet)}</details>'
        "</div>")


# ---------------------------------------------------------------------------
# The static view: text and image for where widgets cannot run.

def static_text(conv: Conversation, table: list[Step], rows: int = STATIC_ROWS) -> str:
    """The explorer as plain text: one line per segment with its states, in flight and windows; no times or ports."""
    lines = [f"Explorer: TCP stream {conv.stream_number} ({_source(conv.source)}), {len(conv.segments)} segments; "
             "in JupyterLab, Previous, Next and the slider step through them",
             f"{'#':>4}  {'dir':<4} {'segment':<34} {'client':<12} {'server':<12} {'in flight C→S/S→C':>17}  "
             f"{'windows client/server':>21}"]
    for s, step in zip(conv.segments[:rows], table):
        win = "/".join("—" if w is None else str(w) for w in step.window.values())
        flight = f"{step.in_flight[CLIENT_TO_SERVER]}/{step.in_flight[SERVER_TO_CLIENT]}"
        lines.append(f"{s.number:>4}  {s.direction:<4} {s.label:<34} {step.client_state:<12} {step.server_state:<12} "
                     f"{flight:>17}  {win:>21}")
    if len(conv.segments) > rows:
        lines.append(f"… and {len(conv.segments) - rows} more segments")
    return "\n".join(lines)


def _source(source: str) -> str:
    return f"{source} capture" if source in ("live", "recorded") else f"from {source}"


def static_png(conv: Conversation, table: list[Step], rows: int = STATIC_ROWS) -> bytes:
    """`draw.ladder` of the first `rows` segments beside a table of each one's states, in flight and windows (PNG)."""
    from matplotlib.figure import Figure

    from netlab.core import draw

    last = min(rows, len(conv.segments))
    view = _window_of(conv, 1, last)
    height = 0.44 * (last + 2.25) + 0.45  # the ladder's own sizing: 0.44 inch a row, header, footer, title
    fig = Figure(figsize=(8.6 + 5.0, height))
    ladder_ax = fig.add_axes((0.0, 0.0, 8.6 / 13.6, (height - 0.45) / height))
    title = f"TCP stream {conv.stream_number} ({_source(conv.source)})"
    if last < len(conv.segments):
        title += f", segments 1–{last} of {len(conv.segments)}"
    draw.ladder(view, ax=ladder_ax, title=title)
    table_ax = fig.add_axes((8.6 / 13.6, 0.0, 5.0 / 13.6, (height - 0.45) / height), sharey=ladder_ax)
    table_ax.set_axis_off()
    table_ax.set_xlim(0, 5.0)
    columns = ((0.0, "client"), (1.2, "server"), (2.45, "in flight\nC→S / S→C"), (3.5, "windows\nclient / server"))
    for x, name in columns:
        table_ax.text(x, -0.9, name, fontsize=9, fontweight="bold", va="center")
    for row, step in enumerate(table[:last]):
        y = row + 0.3
        win = " / ".join("—" if w is None else str(w) for w in step.window.values())
        values = (step.client_state, step.server_state,
                  f"{step.in_flight[CLIENT_TO_SERVER]} / {step.in_flight[SERVER_TO_CLIENT]}", win)
        for (x, _), value in zip(columns, values):
            table_ax.text(x, y, value, fontsize=8.5, va="center", color="#222222")
    import io

    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from PIL import Image

    canvas = FigureCanvasAgg(fig)
    fig.set_dpi(80)
    canvas.draw()
    # 64 colours are plenty for lines, text and light bands, and make the PNG a third of the
    # size: a notebook stores this image in every explorer cell's output.
    image = Image.frombuffer("RGBA", canvas.get_width_height(), canvas.buffer_rgba()).convert("RGB")
    buffer = io.BytesIO()
    image.quantize(colors=64).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


# ---------------------------------------------------------------------------
# The widget.

class Explorer:
    """A conversation to step through, segment by segment; optionally a panel that re-runs its experiment.

    In JupyterLab it is an ipywidgets box (`.widget`); elsewhere its static view (image and text)
    shows. `.current` is the segment shown (1-based); `.go(n)`, `.next()`, `.previous()` move.
    """

    def __init__(self, conv: Conversation | None, *, note: str = "", panel: Any = None) -> None:
        import ipywidgets as widgets

        self._previous = widgets.Button(description="Previous", tooltip="the segment before (or the slider's ←)",
                                        icon="arrow-left", layout=widgets.Layout(width="110px"))
        self._next = widgets.Button(description="Next", tooltip="the segment after (or the slider's →)",
                                    icon="arrow-right", layout=widgets.Layout(width="110px"))
        self._slider = widgets.IntSlider(value=1, min=1, max=1, description="Segment", continuous_update=True,
                                         layout=widgets.Layout(width="360px"))
        self._note = widgets.HTML()
        # The ladder window and the details in one HTML widget: one message and one redraw per step.
        self._view = widgets.HTML()
        self._previous.on_click(lambda _: self.previous())
        self._next.on_click(lambda _: self.next())
        self._slider.observe(lambda change: self._show(change["new"]), names="value")
        children = [panel] if panel is not None else []
        children += [self._note, widgets.HBox([self._previous, self._next, self._slider]),
                     self._view]
        self.widget = widgets.VBox(children)
        self.widget.add_class("netlab-explorer")
        self.conversation: Conversation | None = None
        self.controls: Controls | None = None  # the panel that re-runs the experiment, if any
        self._steps: list[Step] = []
        self.load(conv, note)

    def load(self, conv: Conversation | None, note: str = "") -> None:
        """Show another conversation (a new run), from its first segment."""
        self.conversation = conv
        self._walks = conv.states() if conv is not None else {}
        self._steps = steps(conv, self._walks) if conv is not None else []
        self._note.value = html.escape(note)
        count = len(self._steps)
        self._slider.max = max(count, 1)
        for control in (self._previous, self._next, self._slider):
            control.disabled = count == 0
        if self._slider.value != 1:
            self._slider.value = 1  # calls _show through the observer
        else:
            self._show(1)

    @property
    def current(self) -> int:
        """The segment shown, 1-based (0 when there is no conversation)."""
        return self._slider.value if self._steps else 0

    def go(self, number: int) -> None:
        """Show segment `number` (clamped to the conversation)."""
        self._slider.value = max(1, min(number, len(self._steps) or 1))

    def next(self) -> None:
        self.go(self.current + 1)

    def previous(self) -> None:
        self.go(self.current - 1)

    def _show(self, number: int) -> None:
        if not self._steps:
            self._view.value = "<i>no conversation to show</i>"
            return
        conv = self.conversation
        self._previous.disabled = number <= 1
        self._next.disabled = number >= len(self._steps)
        self._view.value = (f'<div style="display:flex;flex-wrap:wrap;gap:8px 16px;align-items:flex-start">'
                            f'<div style="flex:0 0 auto">{ladder_svg(conv, number, walks=self._walks)}</div>'
                            f'<div style="flex:1 1 320px;min-width:300px">{details_html(conv, self._steps[number - 1])}'
                            "</div></div>")

    def text(self) -> str:
        """The static view's table as text, one line per segment (up to STATIC_ROWS): no times or ports."""
        if self.conversation is None:
            return "Explorer: no conversation yet"
        return static_text(self.conversation, self._steps)

    def summary(self) -> str:
        """One line naming the stream and its source, the same on every run (the cell's text/plain, which nbval compares)."""
        if self.conversation is None:
            return "Explorer: no conversation yet"
        conv = self.conversation
        return (f"Explorer: TCP stream {conv.stream_number} ({_source(conv.source)}); in JupyterLab, Previous, Next "
                "and the slider step through its segments")

    def _repr_mimebundle_(self, include: Any = None, exclude: Any = None) -> dict[str, Any]:
        import base64

        bundle = self.widget._repr_mimebundle_() or {}
        bundle["text/plain"] = self.summary()
        if self.conversation is not None:
            bundle["image/png"] = base64.b64encode(static_png(self.conversation, self._steps)).decode("ascii")
        return bundle

    def __repr__(self) -> str:
        count = len(self._steps)
        return f"<Explorer: segment {self.current} of {count}>"


class Controls:
    """A panel of one control per parameter and a Run button; each run's conversation goes to an Explorer."""

    def __init__(self, function: Callable[..., Any], params: dict[str, Any]) -> None:
        import ipywidgets as widgets

        self.function = function
        self.controls = {name: _control(name, value) for name, value in params.items()}
        self._run = widgets.Button(description="Run", button_style="primary", icon="play",
                                   tooltip="run the experiment again, live, with these values")
        self._status = widgets.HTML()
        self._status.add_class("netlab-status")
        self._run.on_click(lambda _: self.run())
        self.widget = widgets.VBox([widgets.HBox([*self.controls.values(), self._run]), self._status])
        self.widget.add_class("netlab-controls")
        self.explorer: Explorer | None = None
        self.error: BaseException | None = None  # what the last run raised, if it failed
        self.runs = 0

    def values(self) -> dict[str, Any]:
        return {name: control.value for name, control in self.controls.items()}

    def run(self) -> None:
        """Call the function with the panel's values; show its conversation, or say in the panel why it failed."""
        self.runs += 1
        self._run.disabled = True
        self._status.value = f"run {self.runs}: running…"
        try:
            result = self.function(**self.values())
            self.show(result)
        except Exception as err:  # noqa: BLE001  (any failure is shown in the panel, as one line)
            self.error = err
            self._status.value = (f'<span class="netlab-error" style="color:#B00020">✘ run {self.runs} failed: '
                                  f"{html.escape(type(err).__name__)}: {html.escape(str(err))}</span>")
        finally:
            self._run.disabled = False

    def show(self, result: Any) -> None:
        """Explore `result` (an Experiment or a Conversation) as the outcome of the panel's current values."""
        conv = _conversation_of(result)
        self.runs = max(self.runs, 1)
        self.error = None
        if self.explorer is not None:
            self.explorer.load(conv)
        why = getattr(result, "why", "")  # said last: once the panel says done, the explorer shows the new run
        self._status.value = html.escape(f"✔ run {self.runs}: {len(conv.segments)} segments" + (f"; {why}" if why else ""))


def _control(name: str, value: Any) -> Any:
    """The widget for one parameter: a text box for a plain value, ipywidgets' abbreviations otherwise."""
    import ipywidgets as widgets
    from ipywidgets.widgets.interaction import interactive

    style = {"description_width": "initial"}
    if isinstance(value, bool):
        return widgets.Checkbox(value=value, description=name, style=style)
    if isinstance(value, int):
        return widgets.IntText(value=value, description=name, style=style, layout=widgets.Layout(width="180px"))
    if isinstance(value, float):
        return widgets.FloatText(value=value, description=name, style=style, layout=widgets.Layout(width="180px"))
    if isinstance(value, str):
        return widgets.Text(value=value, description=name, style=style)
    control = interactive.widget_from_abbrev(value)  # a (min, max[, step]) tuple, a list of choices, a widget
    if control is None:
        raise TypeError(f"{name}: no control for {value!r}; give an int, float, bool, str, a (min, max) tuple or a widget")
    control.description = name
    return control


def _conversation_of(result: Any) -> Conversation:
    """The conversation an experiment produced: an Experiment's, or the Conversation itself."""
    if isinstance(result, Conversation):
        return result
    conv = getattr(result, "conversation", None)
    if not isinstance(conv, Conversation):
        raise TypeError(f"the experiment returned {type(result).__name__}, which has no conversation to explore")
    return conv


def explore(subject: Any, shown: Any = None, /, **params: Any) -> Explorer:
    """Step through a conversation segment by segment, in a widget; or re-run an experiment from a panel.

    `explore(conversation)` (or an Experiment, e.g. `netlab.handshake()`): Previous, Next and a
    slider over the segments, with the ladder around the current one, its headers, both sides'
    states, bytes in flight and windows. `explore(function, name=value, ...)`: a control per
    parameter (a text box for an int, float or str, a checkbox for a bool, a slider for a
    `(min, max)` tuple) and a Run button that calls `function(**values)` and explores what it
    returns. The first run happens now, unless `shown` is a result already in hand for these
    values (`explore(netlab.handshake, slow, close_delay=0.2)`), which saves running it twice.
    A failed run shows its error in the panel.
    """
    if isinstance(subject, Conversation) or not callable(subject) or hasattr(subject, "conversation"):
        if params or shown is not None:
            raise TypeError(f"a conversation or an experiment's result takes no parameters, got "
                            f"{', '.join([*(['a second argument'] if shown is not None else []), *params])}")
        if isinstance(subject, Conversation):
            return Explorer(subject)
        return Explorer(_conversation_of(subject), note=getattr(subject, "why", ""))
    controls = Controls(subject, params)
    explorer = Explorer(None, panel=controls.widget)
    explorer.controls = controls
    controls.explorer = explorer
    if shown is None:
        controls.run()
    else:
        controls.show(shown)
    return explorer
