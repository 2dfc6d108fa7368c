"""The traffic env's per-light measurements and reward on scripted vehicle data (a fake SUMO API, no SUMO needed):
queue threshold, mean waiting time, delay, counts, vehicles passed, emergency stops and the switch penalty, each
against a hand computation."""

import numpy as np
import pytest

from envs.traffic.network import GridLayout
from envs.traffic.simulation import VAR_ACCELERATION, VAR_ROAD_ID, VAR_SPEED, VAR_WAITING_TIME, GridSimulation

LAYOUT = GridLayout(
    rows=1,
    cols=1,
    lights=("A0",),
    incoming=(("n", "e", "s", "w"),),
    states=(("GGrr", "yyrr", "rrGG", "rryy"),),
    entries=(),
    routes=(),
)
N, E, S, W = range(4)


class FakeApi:
    """The calls GridSimulation makes, answering from a script of per-step vehicle data."""

    def __init__(self, script):
        self.script, self.t, self.shown = script, 0, []
        self.simulation = self
        self.vehicle = self
        self.trafficlight = self

    # simulation
    def load(self, args):
        self.t = 0

    def simulationStep(self):
        self.t += 1

    def getDepartedIDList(self):
        return ()

    # vehicle
    def subscribe(self, vehicle, variables):
        pass

    def getAllSubscriptionResults(self):
        return {
            v: {VAR_ROAD_ID: road, VAR_SPEED: speed, VAR_WAITING_TIME: wait, VAR_ACCELERATION: accel}
            for v, (road, speed, wait, accel) in self.script[self.t - 1].items()
        }

    # trafficlight
    def setRedYellowGreenState(self, light, state):
        self.shown.append(state)

    def close(self):
        pass


def test_features_and_reward_by_hand():
    script = [
        {  # step 1
            "v1": ("w", 0.5, 2.0, -5.0),  # queued (|v| <= 1), waiting 2 s, braking hard: an emergency stop
            "v2": ("w", 14.0, 0.0, 0.0),
            "v3": ("n", 0.0, 7.0, 0.0),
            "v4": ("out", 0.0, 9.0, -9.0),  # on an exit edge: seen by no light
        },
        {  # step 2: v1 crossed, v5 entered from the east
            "v1": ("out", 10.0, 0.0, 2.0),
            "v2": ("w", 12.0, 0.0, -2.0),
            "v3": ("n", 1.5, 0.0, 1.5),  # moving again: not queued
            "v5": ("e", 30.0, 0.0, 0.0),
        },
    ]
    api = FakeApi(script)
    sim = GridSimulation(api, LAYOUT, yellow=3, min_green=1, speed_limit=35.0)
    sim.restart([])
    features, since, reward, passed = sim.observe()
    assert not features[0, :16].any() and features[0, 16] == 0 and since[0] == 0 and reward[0] == 0
    assert passed[0] == 0

    features, since, reward, passed = sim.step(np.array([0]))
    queue, wait, delay, count = (features[0, 4 * k : 4 * k + 4] for k in range(4))
    assert queue.tolist() == [1, 0, 0, 1] and count.tolist() == [1, 0, 0, 2]
    assert wait.tolist() == [7, 0, 0, 1]  # (2 + 0) / 2 on the west edge
    delay_w = 1 - (0.5 + 14.0) / 2 / 35
    assert delay.tolist() == pytest.approx([1, 0, 0, delay_w])  # empty edges: 0
    expected = -0.5 * 2 - 0.5 * 8 - 0.5 * (1 + delay_w) + 0 - 0.25 * 1 - 0
    assert reward[0] == pytest.approx(expected) and since[0] == 1 and passed[0] == 0

    features, since, reward, passed = sim.step(np.array([1]))  # switch: yellow on north-south, -1
    queue, wait, delay, count = (features[0, 4 * k : 4 * k + 4] for k in range(4))
    assert queue.tolist() == [0, 0, 0, 0] and count.tolist() == [1, 1, 0, 1]
    delays = [1 - 1.5 / 35, 1 - 30 / 35, 0, 1 - 12 / 35]
    assert delay.tolist() == pytest.approx(delays)
    assert features[0, 16] == 1 and since[0] == 1 and api.shown[-1] == "yyrr"
    expected = -0.5 * 0 - 0.5 * 0 - 0.5 * sum(delays) + 1 - 0.25 * 0 - 1  # v1 passed the light
    assert reward[0] == pytest.approx(expected) and passed[0] == 1
