"""Draw a :class:`~tlcourse.measure.graph.LayerGraph`: one box per layer, coloured by kind, with its shape.

The flow runs top to bottom. Parallel branches (an Inception module's four) get lanes side by side
that meet in their concatenation; a shortcut that skips layers on the main lane (a residual
block's identity) is drawn as a red arc on the right into the ``+``; a projection shortcut has its own
lane. A long chain wraps into columns of ``max_rows`` boxes.

    draw_layer_graph(layer_graph(lenet5(), (1, 1, 32, 32)), title="LeNet-5")
"""

from __future__ import annotations

import math

import matplotlib.pyplot as plt
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch, Patch
from matplotlib.path import Path

from tlcourse.measure.graph import LayerGraph, LayerNode

__all__ = ["KIND_COLOURS", "draw_layer_graph"]

#: Box colour of each node kind (see :data:`tlcourse.measure.graph.KINDS`).
KIND_COLOURS: dict[str, str] = {
    "input": "#d9d9d9",
    "conv": "#9ecae1",
    "pool": "#fdd0a2",
    "norm": "#c7e9c0",
    "act": "#fff3b0",
    "linear": "#cbc9e2",
    "attention": "#fcbba1",
    "block": "#a6bddb",
    "merge": "#ffffff",
    "other": "#f0f0f0",
}

_LANE, _ROW = 3.0, 0.8  # distance between lane centres, between rows (data units; one unit is _INCH inches)
_WIDTH, _HEIGHT, _MERGE_WIDTH = 2.7, 0.56, 0.9
_INCH = 0.72
_SKIP = "tab:red"


def _format_shape(shape: tuple[int, ...]) -> str:
    if len(shape) == 3:
        return f"{shape[0]}@{shape[1]}x{shape[2]}"
    return "x".join(str(s) for s in shape)


def _format_count(count: int) -> str:
    if count >= 1e6:
        return f"{count / 1e6:.2f}M"
    if count >= 1e4:
        return f"{count / 1e3:.1f}k"
    return f"{count:,}"


def _levels(graph: LayerGraph) -> dict[str, int]:
    """Row of each node: the longest path from an input; a parameter sits beside its first reader."""
    level: dict[str, int] = {}
    for node in graph.nodes:
        if node.inputs:
            level[node.name] = 1 + max(level.get(i, -1) for i in node.inputs)
        elif node.kind == "input":
            level[node.name] = 0
    for node in graph.nodes:
        if node.name not in level:  # a parameter (class token, position embedding)
            readers = [level[s] for s in graph.successors(node.name) if s in level]
            level[node.name] = min(readers, default=0)
    return level


def _lanes(graph: LayerGraph) -> dict[str, float]:
    """Horizontal position of each node in lane units: a fork opens lanes, a merge closes them."""
    lane: dict[str, float] = {}
    claimed: set[str] = set()  # nodes whose own lane has been continued by a successor
    open_lanes: set[float] = set()

    def new_lane() -> float:
        return next(i for i in range(len(graph) + 1) if i not in open_lanes)

    for node in graph.nodes:
        sources = [lane[i] for i in node.inputs if i in lane]
        if node.kind == "input":
            value = float(new_lane())
        elif not node.inputs:
            continue  # parameters: placed beside their reader below
        elif node.kind == "merge" or len(node.inputs) > 1:
            distinct = sorted(set(sources))
            value = sum(distinct) / len(distinct) if node.label == "concat" else min(sources)
            open_lanes.difference_update(distinct)
        elif node.inputs[0] not in claimed:
            value = lane[node.inputs[0]]
            claimed.add(node.inputs[0])
        else:
            value = float(new_lane())
        lane[node.name] = value
        open_lanes.add(value)
    for node in graph.nodes:
        if node.name not in lane:
            readers = [lane[s] for s in graph.successors(node.name) if s in lane]
            lane[node.name] = min(readers, default=0.0) + 1
    return lane


def _box(ax: plt.Axes, node: LayerNode, x: float, y: float, width: float) -> None:
    merge = node.kind == "merge"
    ax.add_patch(FancyBboxPatch(
        (x - width / 2, y - _HEIGHT / 2), width, _HEIGHT, boxstyle="round,pad=0.02,rounding_size=0.12",
        fc=KIND_COLOURS.get(node.kind, KIND_COLOURS["other"]), ec="black", lw=0.8, zorder=2,
    ))
    if merge:
        ax.text(x, y + 0.07, node.label, ha="center", va="center", fontsize=9 if node.label == "+" else 6.5, zorder=3)
        ax.text(x, y - 0.17, _format_shape(node.shape), ha="center", va="center", fontsize=5.5, zorder=3)
        return
    detail = _format_shape(node.shape) + (f", {_format_count(node.parameters)} params" if node.parameters else "")
    ax.text(x, y + 0.1, node.label, ha="center", va="center", fontsize=6.2, zorder=3)
    ax.text(x, y - 0.14, detail, ha="center", va="center", fontsize=5.5, color="#333333", zorder=3)


def _arrow(ax: plt.Axes, points: list[tuple[float, float]], colour: str = "black", lw: float = 0.9) -> None:
    path = Path(points, [Path.MOVETO] + [Path.LINETO] * (len(points) - 1))
    ax.add_patch(FancyArrowPatch(path=path, arrowstyle="-|>", mutation_scale=8, color=colour, lw=lw, zorder=1))


def draw_layer_graph(
    graph: LayerGraph,
    *,
    title: str | None = None,
    max_rows: int = 12,
    ax: plt.Axes | None = None,
) -> Figure:
    """Draw ``graph`` (from :func:`~tlcourse.measure.graph.layer_graph`) and return the figure.

    One box per node, labelled with its name and kind of layer, its output shape (``C@HxW`` for maps,
    ``T x D`` for tokens) and its parameter count, coloured by :data:`KIND_COLOURS` (legend on top).
    A graph of more than ``max_rows`` rows wraps into columns. Without ``ax`` the figure is sized to fit.
    """
    level, lane = _levels(graph), _lanes(graph)
    rows = max(level.values()) + 1
    columns = math.ceil(rows / max(1, max_rows))
    per_column = math.ceil(rows / columns)  # balanced columns
    lanes = max(lane.values()) + 1
    shortcuts = graph.skips()
    skips = {(fork, merge) for fork, merge, via in shortcuts if not via}
    projected = {edge for fork, merge, via in shortcuts if via for edge in zip((fork, *via), (*via, merge))}
    column_width = lanes * _LANE + (0.6 if skips else 0.0)

    def place(name: str) -> tuple[float, float]:
        column, row = divmod(level[name], per_column)
        return column * (column_width + 0.5) + lane[name] * _LANE, -row * _ROW

    width = columns * (column_width + 0.5) - 0.5
    height = per_column * _ROW
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(3.0, width * _INCH), max(2.0, (height + 0.9) * _INCH)))
        fig.subplots_adjust(left=0.01, right=0.99, bottom=0.01, top=1 - 0.8 / (height + 0.9))
    else:
        fig = ax.figure
    half = {node.name: (_MERGE_WIDTH if node.kind == "merge" else _WIDTH) / 2 for node in graph.nodes}
    spans = {}  # a concatenation of branches is a bar under all of them, each branch arriving from above
    for node in graph.nodes:
        above = {place(i)[0] for i in node.inputs if level[i] < level[node.name]}
        if node.label == "concat" and len(above) > 1:
            spans[node.name] = above
            half[node.name] = (max(above) - min(above)) / 2 + _MERGE_WIDTH / 2
    for node in graph.nodes:
        _box(ax, node, *place(node.name), 2 * half[node.name])

    for node in graph.nodes:
        x2, y2 = place(node.name)
        for source in node.inputs:
            x1, y1 = place(source)
            top, bottom = y2 + _HEIGHT / 2, y1 - _HEIGHT / 2
            side = x2 + half[node.name] if x1 > x2 else x2 - half[node.name]
            colour = _SKIP if (source, node.name) in projected else "black"
            if (source, node.name) in skips and lane[source] == lane[node.name]:  # identity shortcut: arc on the right
                out = x1 + _WIDTH / 2 + 0.25  # clear of the widest box on the lane
                _arrow(ax, [(x1 + half[source], y1), (out, y1), (out, y2), (x2 + half[node.name], y2)], _SKIP, 1.4)
                ax.text(out + 0.05, (y1 + y2) / 2, "identity", color=_SKIP, fontsize=6, rotation=90, va="center")
            elif level[node.name] // per_column != level[source] // per_column:  # into the next column
                gap_x, low = x1 + (column_width - lane[source] * _LANE) - _LANE / 2 + 0.25, -height + _ROW / 2
                _arrow(ax, [(x1, bottom), (x1, low), (gap_x, low), (gap_x, _ROW / 2), (x2, _ROW / 2), (x2, top)])
            elif y1 == y2:  # a parameter beside its reader
                _arrow(ax, [(x1 - half[source], y1), (side, y2)])
            elif x1 == x2 or x1 in spans.get(node.name, ()):
                _arrow(ax, [(x1, bottom), (x1, top)], colour)
            elif node.kind == "merge":  # down the branch's lane, then across into the merge
                _arrow(ax, [(x1, bottom), (x1, y2), (side, y2)], colour)
            else:  # a fork: across, then down into the branch
                mid = bottom - (_ROW - _HEIGHT) / 2
                _arrow(ax, [(x1, bottom), (x1, mid), (x2, mid), (x2, top)], colour)

    kinds = [k for k in KIND_COLOURS if any(node.kind == k for node in graph.nodes) and k not in ("merge", "other")]
    handles = [Patch(fc=KIND_COLOURS[k], ec="black", lw=0.6, label=k) for k in kinds]
    ax.legend(handles=handles, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(handles), fontsize=6,
              frameon=False, handlelength=1.2, columnspacing=0.8)
    ax.set_xlim(-_LANE / 2, width - _LANE / 2 + 0.3)
    ax.set_ylim(-height + _ROW / 2 - 0.1, _ROW / 2 + 0.05)
    ax.set_aspect("equal")
    ax.axis("off")
    total = sum(node.parameters for node in graph.nodes)
    ax.set_title(title or f"{graph.model_name}: {total:,} parameters", fontsize=9, pad=14)
    return fig
