"""The signalised grid: SUMO's ``netgenerate`` builds it, this module reads its layout and writes the demand.

Runs in the parent process only (the simulations in the workers load the two files written here). Nothing here
imports libsumo or starts a simulation.

Layout of a ``rows x cols`` grid (``netgenerate --grid --grid.attach-length``): the ``rows * cols`` inner
junctions are the traffic lights; every fringe junction is a dead end joined to the grid by one attached edge, so
vehicles enter and leave there. One lane per direction, no turnarounds, no internal links (vehicles cross a
junction in one step, as in Flow's grid).

Orders (fixed, documented, the tensors follow them):

* lights: row-major from the south-west corner, ``light = row * cols + col`` (row 0 is the southern row);
* a light's four incoming edges: the edge arriving from the north, east, south, west (:data:`APPROACHES`);
* inflows: ``2 * (rows + cols)`` entry edges in the order of the authors' Flow setup (Bukharin et al.'s
  ``Env.py``): per column (west to east) the southbound entry from the north, per column the northbound entry
  from the south, per row (south to north) the eastbound entry from the west, per row the westbound entry from
  the east. Every vehicle drives straight through the grid to the opposite fringe.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ElementTree
from dataclasses import dataclass
from pathlib import Path

# Incoming-edge slots of a light: unit vector from the light towards the upstream node.
APPROACHES = ("north", "east", "south", "west")
_OFFSETS = {"north": (0, 1), "east": (1, 0), "south": (0, -1), "west": (-1, 0)}
NS, EW = 0, 1  # green axis of a light: north-south or east-west traffic moves
VEHICLE_SPACE = 7.5  # metres of lane one standing vehicle takes (length 5 + min gap 2.5): the queue capacity unit


class NetworkError(RuntimeError):
    """The network could not be built (missing binary, netgenerate failed); the message is one line."""


def sumo_binary(name: str) -> str:
    """Path of SUMO's ``name`` binary (``sumo``, ``netgenerate``) from the ``eclipse-sumo`` wheel or ``SUMO_HOME``.

    Raises :class:`NetworkError` naming the extra to install when it is absent.
    """
    candidates = []
    try:
        import sumo  # the eclipse-sumo wheel: binaries in sumo/bin

        candidates.append(Path(sumo.SUMO_HOME) / "bin" / name)
    except ImportError:
        pass
    if os.environ.get("SUMO_HOME"):
        candidates.append(Path(os.environ["SUMO_HOME"]) / "bin" / name)
    for path in candidates:
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
    found = shutil.which(name)
    if found:
        return found
    raise NetworkError(
        f"SUMO's {name} binary was not found (no eclipse-sumo wheel, no SUMO_HOME/bin/{name}, not on PATH): "
        "pip install -e .[traffic]"
    )


@dataclass(frozen=True)
class GridLayout:
    """What the simulations need to know about a generated grid (plain data: it travels to the workers).

    ``lights`` (light ids in light order); ``incoming[light]`` the four incoming edge ids (:data:`APPROACHES`
    order); ``states[light]`` the signal strings ``(NS green, NS yellow, EW green, EW yellow)`` over the light's
    controlled links; ``entries`` the entry edges (inflow order) and ``routes`` the straight route of each.
    """

    rows: int
    cols: int
    lights: tuple[str, ...]
    incoming: tuple[tuple[str, ...], ...]
    states: tuple[tuple[str, str, str, str], ...]
    entries: tuple[str, ...]
    routes: tuple[tuple[str, ...], ...]


def generate_grid(directory: Path, rows: int, cols: int, edge_length: float, speed_limit: float) -> Path:
    """Run ``netgenerate`` for a ``rows x cols`` signalised grid into ``directory``; return the net file path."""
    net = Path(directory) / "grid.net.xml"
    command = [
        sumo_binary("netgenerate"),
        "--grid",
        f"--grid.x-number={cols}",
        f"--grid.y-number={rows}",
        f"--grid.length={edge_length}",
        f"--grid.attach-length={edge_length}",
        "--default-junction-type=traffic_light",
        "--default.lanenumber=1",
        f"--default.speed={speed_limit}",
        "--no-turnarounds",
        "--no-internal-links",
        "--no-warnings",
        f"--output-file={net}",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=120)
    if result.returncode != 0 or not net.is_file():
        lines = [line.strip() for line in (result.stderr + result.stdout).splitlines() if line.strip()]
        message = next((line for line in lines if "rror" in line), lines[-1] if lines else "no output")
        raise NetworkError(f"netgenerate failed (exit {result.returncode}): {message}")
    return net


def read_layout(net_file: Path, rows: int, cols: int) -> GridLayout:
    """The lights, their incoming edges and signal strings, and the straight routes of a generated grid."""
    root = ElementTree.parse(net_file).getroot()
    nodes = {
        j.get("id"): (float(j.get("x")), float(j.get("y")), j.get("type"))
        for j in root.iter("junction")
        if j.get("type") != "internal"
    }
    edges = {
        e.get("id"): (e.get("from"), e.get("to"))
        for e in root.iter("edge")
        if e.get("function") != "internal" and e.get("from") is not None
    }
    lights = sorted((k for k, v in nodes.items() if v[2] == "traffic_light"), key=lambda k: (nodes[k][1], nodes[k][0]))
    if len(lights) != rows * cols:
        raise NetworkError(f"the generated grid has {len(lights)} traffic lights, expected {rows * cols}")

    def heading(src: str, dst: str) -> tuple[int, int]:
        dx, dy = nodes[dst][0] - nodes[src][0], nodes[dst][1] - nodes[src][1]
        return (int(dx > 0) - int(dx < 0), int(dy > 0) - int(dy < 0))

    incoming = []
    for light in lights:
        by_side = {}
        for edge, (src, dst) in edges.items():
            if dst == light:
                toward_upstream = heading(light, src)
                side = next(name for name, off in _OFFSETS.items() if off == toward_upstream)
                by_side[side] = edge
        if set(by_side) != set(APPROACHES):
            raise NetworkError(f"light {light} has incoming edges from {sorted(by_side)}, expected all four sides")
        incoming.append(tuple(by_side[side] for side in APPROACHES))

    # Signal strings over each light's controlled links: a link is green on the axis of its incoming edge.
    axis_of = {}
    for slots in incoming:
        for side, edge in zip(APPROACHES, slots):
            axis_of[edge] = NS if side in ("north", "south") else EW
    links: dict[str, dict[int, int]] = {light: {} for light in lights}
    for c in root.iter("connection"):
        tl = c.get("tl")
        if tl in links:
            links[tl][int(c.get("linkIndex"))] = axis_of[c.get("from")]
    states = []
    for light in lights:
        axes = [links[light][i] for i in range(len(links[light]))]
        states.append(
            tuple("".join(colour if a == axis else "r" for a in axes) for axis in (NS, EW) for colour in ("G", "y"))
        )

    # Entry edges (from a dead end into the grid) in the authors' inflow order, and their straight routes.
    out_of: dict[str, list[str]] = {}
    for edge, (src, _) in edges.items():
        out_of.setdefault(src, []).append(edge)
    xs = sorted({nodes[k][0] for k in lights})
    ys = sorted({nodes[k][1] for k in lights})
    entry_of = {}
    for edge, (src, dst) in edges.items():
        if nodes[src][2] == "dead_end":
            entry_of[(heading(src, dst), nodes[dst][0] if heading(src, dst)[0] == 0 else nodes[dst][1])] = edge
    order = (
        [((0, -1), x) for x in xs]  # southbound, per column, entering from the north
        + [((0, 1), x) for x in xs]  # northbound, per column, from the south
        + [((1, 0), y) for y in ys]  # eastbound, per row, from the west
        + [((-1, 0), y) for y in ys]  # westbound, per row, from the east
    )
    entries, routes = [], []
    for key in order:
        edge = entry_of[key]
        route = [edge]
        while nodes[edges[route[-1]][1]][2] != "dead_end":
            src, dst = edges[route[-1]]
            direction = heading(src, dst)
            route.append(next(e for e in out_of[dst] if heading(*edges[e]) == direction))
        entries.append(edge)
        routes.append(tuple(route))
    return GridLayout(rows, cols, tuple(lights), tuple(incoming), tuple(states), tuple(entries), tuple(routes))


def write_routes(
    path: Path,
    layout: GridLayout,
    inflows: list[float],
    vehicle_speed: float,
    arrivals: str = "regular",
    speed_dev: float = 0.1,
    end: float = 1e7,
) -> Path:
    """The demand file: one vehicle type (Flow's SUMO car-following defaults: IDM, accel 2.6, decel 4.5, tau 1,
    min gap 2.5, speed deviation 0.1) with maximum speed ``vehicle_speed``, entering at the highest safe speed up
    to it (SUMO's ``departSpeed="max"``: Flow's fixed entry speed would hold every vehicle out of an entry edge
    shorter than its braking distance while the light ahead is red), and one straight flow
    of ``inflows[i]`` vehicles/hour per entry edge (0 gives no flow). ``arrivals="regular"``: evenly spaced
    departures (Flow's ``vehs_per_hour``, the same every run); ``"poisson"``: each second a vehicle departs with
    probability ``inflows[i] / 3600`` (SUMO's ``probability`` flow, drawn from the run's ``--seed``)."""
    lines = [
        "<routes>",
        f'    <vType id="car" carFollowModel="IDM" accel="2.6" decel="4.5" tau="1.0" minGap="2.5" length="5"'
        f' maxSpeed="{vehicle_speed}" speedDev="{speed_dev}"/>',
    ]
    for i, route in enumerate(layout.routes):
        lines.append(f'    <route id="r{i}" edges="{" ".join(route)}"/>')
    for i, rate in enumerate(inflows):
        if rate > 0:
            demand = f'vehsPerHour="{rate}"' if arrivals == "regular" else f'probability="{min(rate / 3600, 1.0)}"'
            lines.append(
                f'    <flow id="in{i}" type="car" route="r{i}" begin="0" end="{end:g}" {demand}'
                ' departLane="free" departSpeed="max"/>'
            )
    lines.append("</routes>")
    Path(path).write_text("\n".join(lines) + "\n")
    return Path(path)
