"""EpisodeBuffer (padded episodes, filled mask, ring insert, own generator, state dict) and
EpisodeCollector (one episode per env, final rows, recurrent state carried, masks respected)."""

import pytest
import torch

from agents.engine.episodes import EpisodeBuffer, EpisodeCollector, episode_fields
from envs.predator_prey import PredatorPrey

FIELDS = {"x": ((2,), torch.float32), "filled": ((), torch.bool)}


def episodes(start, n, length=4):
    x = torch.arange(start, start + n, dtype=torch.float32)[:, None, None].expand(n, length, 2).clone()
    return {"x": x, "filled": torch.ones(n, length, dtype=torch.bool)}


def test_buffer_shapes_ring_insert_and_sampling():
    buf = EpisodeBuffer(FIELDS, capacity=5, max_len=4, seed=0)
    assert buf.storage["x"].shape == (5, 4, 2)
    buf.extend(episodes(0, 3))
    buf.extend(episodes(3, 3))  # wraps: episode 5 overwrites slot 0
    assert len(buf) == 5 and buf.cursor == 1
    assert buf.storage["x"][:, 0, 0].tolist() == [5.0, 1.0, 2.0, 3.0, 4.0]
    batch = buf.sample(64)
    assert batch["x"].shape == (64, 4, 2) and batch["filled"].shape == (64, 4)
    assert set(batch["x"][:, 0, 0].tolist()) <= {1.0, 2.0, 3.0, 4.0, 5.0}


def test_buffer_sampling_uses_its_own_generator_and_round_trips():
    a = EpisodeBuffer(FIELDS, capacity=8, max_len=4, seed=3)
    a.extend(episodes(0, 6))
    a.sample(2)
    state = a.state_dict()
    b = EpisodeBuffer(FIELDS, capacity=8, max_len=4, seed=99)
    b.load_state_dict(state)
    torch.manual_seed(0)
    first = a.sample(5)["x"]
    torch.manual_seed(1)  # the global RNG does not matter
    assert torch.equal(first, b.sample(5)["x"])
    b.extend(episodes(10, 1))
    assert len(b) == 7


def test_buffer_refuses_bad_inserts():
    with pytest.raises(ValueError):
        EpisodeBuffer({"x": ((1,), torch.float32)}, capacity=4, max_len=2)  # no filled mask
    buf = EpisodeBuffer(FIELDS, capacity=2, max_len=4)
    with pytest.raises(KeyError):
        buf.extend({"x": torch.zeros(1, 4, 2)})
    with pytest.raises(ValueError):
        buf.extend(episodes(0, 3))
    with pytest.raises(RuntimeError):
        buf.sample(1)


class RecordingAgent:
    """Random available actions; records the recurrent state it is handed (a step counter per env)."""

    def __init__(self, n_actions, seed=0):
        self.n_actions = n_actions
        self.generator = torch.Generator().manual_seed(seed)
        self.seen_states = []

    def initial_state(self, n):
        return torch.zeros(n)

    def act(self, obs, state, *, step, explore=True, avail_actions=None):
        self.seen_states.append(state.clone())
        flat = avail_actions.reshape(-1, self.n_actions).float()
        action = torch.multinomial(flat, 1, generator=self.generator).view(avail_actions.shape[:2])
        return action, state + 1


def test_collector_records_one_masked_episode_per_env():
    env = PredatorPrey(num_envs=6, grid_size=3, n_agents=3, n_stags=1, episode_limit=8, punishment=-1.0, seed=0)
    agent = RecordingAgent(env.n_actions)
    collector = EpisodeCollector(env, agent, seed=0)
    assert collector.fields == episode_fields(3, env.obs_dim, env.state_spec.shape[0], 6)
    ep, stats = collector.collect(step=0)
    assert ep["obs"].shape == (6, 9, 3, env.obs_dim) and ep["filled"].shape == (6, 9)
    assert [s.tolist() for s in agent.seen_states] == [[float(t)] * 6 for t in range(8)]  # state carried
    length = stats["length"]
    assert ((length >= 1) & (length <= 8)).all() and int(stats["steps"]) == int(length.sum())
    for i in range(6):  # rows: filled up to len, terminated only at the last real step
        n = int(length[i])
        assert ep["filled"][i, :n].all() and not ep["filled"][i, n:].any()
        assert not ep["terminated"][i, n:].any()
        if ep["terminated"][i].any():
            assert ep["terminated"][i, n - 1]
        else:
            assert n == 8  # only the time limit ends an episode without a terminal
        assert (ep["reward"][i, n:] == 0).all()
        # The recorded actions were available when taken.
        taken = ep["avail_actions"][i, :n].gather(-1, ep["actions"][i, :n, :, None])
        assert taken.all()
    assert torch.equal(stats["return"], ep["reward"].sum(1))


def test_collector_keeps_the_final_observation_of_a_finished_episode():
    env = PredatorPrey(num_envs=8, grid_size=3, n_agents=4, n_stags=1, episode_limit=10, seed=4)
    collector = EpisodeCollector(env, RecordingAgent(env.n_actions, seed=2), seed=4)
    ep, stats = collector.collect(step=0)
    ended = (stats["length"] < 10).nonzero().flatten().tolist()
    assert ended, "with 4 agents on a 3x3 grid some episode should end early"
    for i in ended:
        n = int(stats["length"][i])
        # A terminal state: every stag captured -> the state's stag grid is empty, the env then reset.
        stag_grid = ep["state"][i, n, 9:18]
        captured = stag_grid.sum() == 0
        frozen = ep["obs"][i, n, :, 12].sum() == 0  # own-cell agent channel: frozen agents vanish
        assert captured or frozen
        assert ep["state"][i, n, -1] == pytest.approx(n / 10)  # elapsed time of the finished episode
