import gymnasium as gym
import numpy as np
import pytest
import torch

from envs import EnvError, make_vec_env


def test_action_rescaled_from_canonical_range():
    env = make_vec_env("Pendulum-v1", 2)  # native bounds [-2, 2]
    out = env.env_action(torch.tensor([[1.0], [-0.5]]))
    assert np.allclose(out, [[2.0], [-1.0]])
    assert np.allclose(env.env_action(torch.tensor([[3.0], [-3.0]])), [[2.0], [-2.0]])  # clipped


def test_tensors_on_device_with_float_obs():
    env = make_vec_env("CartPole-v1", 3, seed=1)
    obs = env.reset(seed=1)
    assert obs.dtype == torch.float32 and obs.shape == (3, 4)
    out = env.step(torch.zeros(3, dtype=torch.int64))
    assert out.terminated.dtype == torch.bool and out.reward.shape == (3,)


@pytest.mark.parametrize("env_id", ["Pendulum-v1", "Hopper-v5"])
def test_env_state_round_trip_is_exact(env_id):
    env = make_vec_env(env_id, 2)
    env.reset(seed=0)
    dim = env.action_spec.shape[0]
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        env.step(torch.rand(2, dim, generator=gen) * 2 - 1)
    state = env.state_dict()
    actions = [torch.rand(2, dim, generator=gen) * 2 - 1 for _ in range(60)]
    first = [env.step(a) for a in actions]
    other = make_vec_env(env_id, 2)
    other.reset(seed=123)
    other.load_state_dict(state)
    second = [other.step(a) for a in actions]
    for a, b in zip(first, second):
        assert torch.equal(a.obs, b.obs) and torch.equal(a.reward, b.reward)


def test_unknown_env_names_closest():
    with pytest.raises(EnvError, match="Hopper-v5"):
        make_vec_env("Hopperr-v5")


def test_async_vectorization_steps():
    env = make_vec_env("Pendulum-v1", 2, vectorization="async", seed=0)
    try:
        env.reset(seed=0)
        out = env.step(torch.zeros(2, 1))
        assert out.obs.shape == (2, 3)
        assert env.state_dict() is None  # worker processes: resume restarts episodes instead
    finally:
        env.close()
    assert gym.__version__


def test_async_final_observation_is_the_true_last_observation():
    """Async workers report the same final observations, value for value, as the in-process stepping."""
    envs = {mode: make_vec_env("CartPole-v1", 2, vectorization=mode, seed=0) for mode in ("sync", "async")}
    try:
        obs = {mode: env.reset(seed=3) for mode, env in envs.items()}
        assert torch.equal(obs["sync"], obs["async"])
        ended = 0
        for t in range(40):
            action = torch.tensor([t % 2, 1])  # env 1 pushes one way and falls within a few dozen steps
            out = {mode: env.step(action) for mode, env in envs.items()}
            done = out["sync"].terminated | out["sync"].truncated
            assert torch.equal(done, out["async"].terminated | out["async"].truncated)
            assert torch.equal(out["sync"].final_obs, out["async"].final_obs)
            assert torch.equal(out["sync"].obs, out["async"].obs)
            if done.any():
                ended += int(done.sum())
                # where an episode ended, obs is the next episode's start and final_obs the fallen pole
                assert not torch.equal(out["async"].final_obs[done], out["async"].obs[done])
                assert (out["async"].final_obs[done][:, 2].abs() > 0.2).all() or (
                    out["async"].final_obs[done][:, 0].abs() > 2.4
                ).all()
        assert ended >= 1
    finally:
        for env in envs.values():
            env.close()
