import torch

from agents.engine.collect import Collector, EpisodeStats
from envs import make_vec_env


def test_episode_stats_ring_by_hand():
    stats = EpisodeStats(num_envs=3, device=torch.device("cpu"), window=2)
    stats.record(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([False, True, False]))
    stats.record(torch.tensor([1.0, 1.0, 1.0]), torch.tensor([True, False, True]))
    # finished: env1 (2.0, len 1), env0 (2.0, len 2), env2 (4.0, len 2); the window keeps the last 2
    assert int(stats.finished) == 3
    summary = stats.summary()
    assert sorted(stats.recent_return[:2].tolist()) == [2.0, 4.0]
    assert torch.isclose(summary["rollout/ep_rew_mean"], torch.tensor(3.0))
    assert torch.isclose(summary["rollout/ep_len_mean"], torch.tensor(2.0))
    assert stats.running_return.tolist() == [0.0, 1.0, 0.0]


def test_summary_is_nan_before_any_episode():
    stats = EpisodeStats(2, torch.device("cpu"))
    assert torch.isnan(stats.summary()["rollout/ep_rew_mean"])


class ZeroAgent:
    def initial_state(self, n):
        return None

    def act(self, obs, state=None, *, step, explore=True):
        return torch.zeros(obs.shape[0], 1), state


def test_collector_next_obs_is_true_final_observation():
    env = make_vec_env("Pendulum-v1", 2, seed=0)
    collector = Collector(env, ZeroAgent(), seed=0)
    for _ in range(199):
        rows = collector.step(0)
        assert torch.equal(rows["next_obs"], collector.obs)  # mid-episode: next_obs is the new obs
    rows = collector.step(0)  # step 200: time limit
    assert bool(env_truncated_all(collector))
    assert not torch.equal(rows["next_obs"], collector.obs)  # obs was reset, next_obs is the last state
    assert not rows["terminated"].any()  # a time limit is not a terminal state
    assert int(collector.stats.finished) == 2


def env_truncated_all(collector):
    return collector.stats.recent_length[:2].eq(200).all()
