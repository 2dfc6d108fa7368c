"""One SUMO simulation of the signalised grid: light control, per-light features and rewards (numpy).

:class:`GridSimulation` talks to SUMO through ``api``: the ``libsumo`` module (in a worker process, one
simulation per process) or a ``traci`` connection (one SUMO process per simulation); both offer the same calls.
Per step it sets the lights that change, advances SUMO by one second and reads every vehicle's road, speed,
waiting time and acceleration from one subscription result (vehicles are subscribed when they depart), so a step
costs a few API calls whatever the traffic.

Light control (per light, the authors' Flow env, ``MultiTrafficLightGridPOEnv._apply_rl_actions``): a light shows
the green of one axis (north-south or east-west). Action 1 asks to switch: it is honoured when the green has been
shown for at least ``min_green`` seconds, and the light then shows yellow on that axis for ``yellow`` seconds, then
green on the other axis. Action 0 keeps the phase; a request during yellow or before ``min_green`` is ignored.
"Time since the last change" counts seconds since the last yellow or green began.

Features per light and incoming edge (every vehicle on the edge; Flow looked at the 100 closest, more than a
400 m lane holds): queue = vehicles with ``|speed| <= 1`` m/s, mean waiting time = SUMO's waiting time (seconds
spent below 0.1 m/s since the vehicle last moved) summed over the edge's vehicles / their count, delay
``1 - mean speed / speed limit`` (0 on an empty edge), vehicle count.

Reward per light: ``-0.5 sum queue - 0.5 sum wait - 0.5 sum delay + passed - 0.25 emergency - switched`` over its
four incoming edges: ``passed`` = vehicles that were on an incoming edge after the previous step and left it in
this one, ``emergency`` = vehicles on an incoming edge whose last-step acceleration was ``<= -4.5`` m/s^2,
``switched`` = 1 when the light entered yellow in this step.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from envs.traffic.network import EW, NS, GridLayout

# traci.constants ids (equal in libsumo): the variables subscribed per vehicle.
VAR_ROAD_ID, VAR_SPEED, VAR_WAITING_TIME, VAR_ACCELERATION = 0x50, 0x40, 0x7A, 0x72
VEHICLE_VARS = (VAR_ROAD_ID, VAR_SPEED, VAR_WAITING_TIME, VAR_ACCELERATION)
QUEUE_SPEED = 1.0  # m/s: a vehicle at most this fast is queued (the authors' -1 <= v <= 1)
EMERGENCY_DECEL = -4.5  # m/s^2: an acceleration at most this is an emergency stop
FEATURES = 17  # per light: queue, wait, delay, count per incoming edge (4 x 4), green axis


class GridSimulation:
    """The grid's lights and measurements on one SUMO simulation reached through ``api`` (libsumo or traci).

    ``start(args)`` / ``restart(args)`` load SUMO with ``args`` (command line without the binary); ``step(actions)``
    takes ``[lights]`` ints (1 = switch) and returns ``(features [lights, 17], since_change [lights],
    reward [lights], passed [lights])`` raw (unnormalised; ``passed``: vehicles that crossed each light in this
    step); ``observe()`` the same for the current state with zero reward and zero passed.
    """

    def __init__(self, api: Any, layout: GridLayout, yellow: int, min_green: int, speed_limit: float):
        self.api, self.layout = api, layout
        self.yellow, self.min_green, self.speed_limit = int(yellow), int(min_green), float(speed_limit)
        self.n = len(layout.lights)
        self.slot_of = {edge: (i, k) for i, edges in enumerate(layout.incoming) for k, edge in enumerate(edges)}
        self.steps = 0

    # ------------------------------------------------------------------ episode
    def restart(self, args: list[str]) -> None:
        """(Re)load SUMO with ``args`` and put every light on north-south green."""
        self.api.load(args)
        self._begin()

    def _begin(self) -> None:
        self.axis = np.full(self.n, NS, np.int64)  # the axis whose green shows (or shows next, during yellow)
        self.in_yellow = np.zeros(self.n, bool)
        self.since = np.zeros(self.n, np.int64)  # seconds since the last change (yellow or green began)
        self.shown = [None] * self.n
        self.on_edge: dict[str, str] = {}  # vehicle -> incoming edge it was on after the previous step
        self.steps = 0  # 0: just loaded, no vehicle has departed (the API still holds the last run's results)
        for i in range(self.n):
            self._show(i, self.layout.states[i][0])

    def _show(self, i: int, state: str) -> None:
        if self.shown[i] != state:
            self.api.trafficlight.setRedYellowGreenState(self.layout.lights[i], state)
            self.shown[i] = state

    # ------------------------------------------------------------------ step
    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        switched = np.zeros(self.n, np.float64)
        for i in range(self.n):
            green, yellow_ns, green_ew, yellow_ew = self.layout.states[i]
            if self.in_yellow[i]:
                if self.since[i] >= self.yellow:  # yellow over: the other axis turns green
                    self.in_yellow[i] = False
                    self.since[i] = 0
                    self._show(i, green if self.axis[i] == NS else green_ew)
            elif actions[i] and self.since[i] >= self.min_green:
                self.in_yellow[i] = True
                self.since[i] = 0
                self._show(i, yellow_ns if self.axis[i] == NS else yellow_ew)
                self.axis[i] = EW if self.axis[i] == NS else NS
                switched[i] = 1.0
        self.api.simulationStep()
        self.since += 1
        self.steps += 1
        features, passed, emergency = self._measure()
        queue, wait, delay = features[:, 0:4], features[:, 4:8], features[:, 8:12]
        reward = -0.5 * queue.sum(1) - 0.5 * wait.sum(1) - 0.5 * delay.sum(1) + passed - 0.25 * emergency - switched
        return features, self.since.astype(np.float64), reward, passed

    def observe(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Features, times since the last change, zero rewards and zero vehicles passed of the current state (no
        vehicle moves)."""
        features, _, _ = self._measure(track=False)
        return features, self.since.astype(np.float64), np.zeros(self.n), np.zeros(self.n)

    def _measure(self, track: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Features ``[lights, 17]``, vehicles passed and emergency stops ``[lights]`` of the current state."""
        api = self.api
        results: dict[str, dict[int, Any]] = {}
        if self.steps > 0:  # right after a load the subscription results are still the previous run's
            for vehicle in api.simulation.getDepartedIDList():
                api.vehicle.subscribe(vehicle, VEHICLE_VARS)
            results = api.vehicle.getAllSubscriptionResults()
        count = np.zeros((self.n, 4))
        queue = np.zeros((self.n, 4))
        wait = np.zeros((self.n, 4))
        speed = np.zeros((self.n, 4))
        emergency = np.zeros(self.n)
        passed = np.zeros(self.n)
        on_edge: dict[str, str] = {}
        slot_of = self.slot_of
        for vehicle, values in results.items():
            edge = values[VAR_ROAD_ID]
            slot = slot_of.get(edge)
            if slot is None:
                continue
            on_edge[vehicle] = edge
            i, k = slot
            v = values[VAR_SPEED]
            count[i, k] += 1
            speed[i, k] += v
            wait[i, k] += values[VAR_WAITING_TIME]
            if -QUEUE_SPEED <= v <= QUEUE_SPEED:
                queue[i, k] += 1
            if values[VAR_ACCELERATION] <= EMERGENCY_DECEL:
                emergency[i] += 1
        if track:
            for vehicle, edge in self.on_edge.items():
                if on_edge.get(vehicle) != edge:
                    passed[slot_of[edge][0]] += 1
        self.on_edge = on_edge
        occupied = np.maximum(count, 1)
        delay = np.where(count > 0, 1.0 - speed / occupied / self.speed_limit, 0.0)
        features = np.concatenate([queue, wait / occupied, delay, count, self.axis[:, None].astype(float)], 1)
        return features, passed, emergency

    def signals(self) -> list[str]:
        """SUMO's current signal string of every light (read back, not the cached one)."""
        return [self.api.trafficlight.getRedYellowGreenState(light) for light in self.layout.lights]

    def close(self) -> None:
        try:
            self.api.close()
        except Exception:  # already closed or never started
            pass
