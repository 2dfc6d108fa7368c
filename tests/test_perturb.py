"""Tests for envs/perturb.py: observation/action noise and MuJoCo mass/friction scaling."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest

from envs.dmc import make_dmc
from envs.perturb import ActionNoise, ModelScaling, ObservationNoise, mujoco_model


class ConstantEnv(gym.Env):
    """Zero observations; records the actions it receives (to measure action noise exactly)."""

    def __init__(self, low=(-2.0, 0.0), high=(2.0, 10.0)):
        self.observation_space = gym.spaces.Box(-1.0, 1.0, shape=(4,), dtype=np.float32)
        self.action_space = gym.spaces.Box(np.array(low, np.float32), np.array(high, np.float32), dtype=np.float32)
        self.received: list[np.ndarray] = []

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(4, np.float32), {}

    def step(self, action):
        self.received.append(np.array(action))
        return np.zeros(4, np.float32), 0.0, False, False, {}


# ------------------------------------------------------------------ observation noise
def _noisy_observations(sigma, seed, steps=2000):
    env = ObservationNoise(ConstantEnv(), sigma=sigma, seed=seed)
    first, _ = env.reset()
    rows = [first] + [env.step(np.zeros(2))[0] for _ in range(steps - 1)]
    return np.stack(rows)


def test_observation_noise_has_the_requested_std():
    samples = _noisy_observations(sigma=0.3, seed=0)  # [2000, 4], the clean obs are zeros
    assert samples.dtype == np.float32
    np.testing.assert_allclose(samples.std(axis=0), 0.3, rtol=0.06)
    np.testing.assert_allclose(samples.mean(axis=0), 0.0, atol=0.03)


def test_observation_noise_per_dimension_sigma():
    samples = _noisy_observations(sigma=[0.0, 0.1, 1.0, 2.0], seed=1)
    np.testing.assert_array_equal(samples[:, 0], 0.0)
    np.testing.assert_allclose(samples[:, 1:].std(axis=0), [0.1, 1.0, 2.0], rtol=0.06)


def test_observation_noise_is_reproducible_and_reseeded_by_reset():
    np.testing.assert_array_equal(_noisy_observations(0.5, seed=3, steps=10), _noisy_observations(0.5, 3, 10))
    assert not np.array_equal(_noisy_observations(0.5, seed=3, steps=10), _noisy_observations(0.5, 4, 10))
    env = ObservationNoise(ConstantEnv(), sigma=0.5, seed=3)
    first = env.reset(seed=11)[0]
    env.step(np.zeros(2))
    np.testing.assert_array_equal(env.reset(seed=11)[0], first)  # same episode seed, same noise
    assert not np.array_equal(env.reset(seed=12)[0], first)


def test_observation_noise_rejects_negative_sigma():
    with pytest.raises(ValueError):
        ObservationNoise(ConstantEnv(), sigma=-0.1)


# ------------------------------------------------------------------ action noise
def test_action_noise_std_is_in_canonical_units():
    env = ActionNoise(ConstantEnv(low=(-2.0, 0.0), high=(2.0, 10.0)), sigma=0.1, seed=0)
    env.reset()
    center = np.array([0.0, 5.0], np.float32)
    for _ in range(2000):
        env.step(center)
    received = np.stack(env.unwrapped.received)
    # Half-ranges are 2 and 5, so the native std is 0.2 and 0.5; the center keeps clipping negligible.
    np.testing.assert_allclose(received.std(axis=0), [0.2, 0.5], rtol=0.06)
    np.testing.assert_allclose(received.mean(axis=0), center, atol=0.03)


def test_action_noise_clips_to_the_bounds():
    env = ActionNoise(ConstantEnv(), sigma=5.0, seed=0)
    env.reset()
    for _ in range(200):
        env.step(np.array([2.0, 10.0], np.float32))
    received = np.stack(env.unwrapped.received)
    assert np.all(received >= [-2.0, 0.0]) and np.all(received <= [2.0, 10.0])
    assert np.any(received[:, 0] == 2.0) and np.any(received[:, 0] < 2.0)


def test_zero_sigma_is_identity_on_pendulum():
    clean = gym.make("Pendulum-v1")
    wrapped = ActionNoise(ObservationNoise(gym.make("Pendulum-v1"), sigma=0.0, seed=0), sigma=0.0, seed=0)
    obs_clean, _ = clean.reset(seed=5)
    obs_wrapped, _ = wrapped.reset(seed=5)
    np.testing.assert_array_equal(obs_clean, obs_wrapped)
    for action in np.random.default_rng(0).uniform(-2, 2, size=(30, 1)).astype(np.float32):
        step_clean, step_wrapped = clean.step(action), wrapped.step(action)
        np.testing.assert_array_equal(step_clean[0], step_wrapped[0])
        assert step_clean[1] == step_wrapped[1]


def test_noise_wrappers_on_pendulum():
    clean = gym.make("Pendulum-v1")
    noisy_obs = ObservationNoise(gym.make("Pendulum-v1"), sigma=0.2, seed=0)
    obs_clean, _ = clean.reset(seed=5)
    obs_noisy, _ = noisy_obs.reset(seed=5)
    assert obs_noisy.shape == (3,) and obs_noisy.dtype == np.float32
    differences = [obs_noisy - obs_clean]
    for _ in range(300):
        action = np.zeros(1, np.float32)
        differences.append(noisy_obs.step(action)[0] - clean.step(action)[0])
    # Same seed and actions, so the underlying states agree and the difference is pure noise.
    np.testing.assert_allclose(np.std(differences), 0.2, rtol=0.1)

    noisy_action = ActionNoise(gym.make("Pendulum-v1"), sigma=0.5, seed=0)
    clean.reset(seed=5)
    noisy_action.reset(seed=5)
    obs_clean = clean.step(np.zeros(1, np.float32))[0]
    obs_noisy = noisy_action.step(np.zeros(1, np.float32))[0]
    assert not np.array_equal(obs_clean, obs_noisy)  # the torque was perturbed


# ------------------------------------------------------------------ model scaling
def test_mujoco_model_detection():
    assert mujoco_model(gym.make("Pendulum-v1")) is None
    with pytest.raises(TypeError, match="MuJoCo"):
        ModelScaling(gym.make("Pendulum-v1"), mass_scale=2.0)
    assert mujoco_model(gym.make("Hopper-v5")) is not None


def _dmc(name):
    return make_dmc(name)


def test_scaling_changes_the_model_and_restores_nominal_values():
    env = _dmc("cheetah-run")
    model = mujoco_model(env)
    mass, friction = model.body_mass.copy(), model.geom_friction.copy()
    subtree_mass = model.body_subtreemass.copy()

    wrapped = ModelScaling(env, mass_scale=2.0, friction_scale=0.5)
    np.testing.assert_allclose(model.body_mass, 2.0 * mass)
    np.testing.assert_allclose(model.geom_friction[:, 0], 0.5 * friction[:, 0])
    np.testing.assert_array_equal(model.geom_friction[:, 1:], friction[:, 1:])  # torsional, rolling untouched
    np.testing.assert_allclose(model.body_subtreemass, 2.0 * subtree_mass)  # derived constants follow

    # Something overwrites the model mid-episode: the next reset re-applies, without compounding.
    model.body_mass[:] = 123.0
    wrapped.reset(seed=0)
    wrapped.reset(seed=1)
    np.testing.assert_allclose(model.body_mass, 2.0 * mass)

    wrapped.set_scales(0.5, 1.5)
    np.testing.assert_allclose(model.body_mass, 0.5 * mass)
    np.testing.assert_allclose(model.geom_friction[:, 0], 1.5 * friction[:, 0])

    wrapped.close()  # restores the nominal values exactly
    np.testing.assert_array_equal(model.body_mass, mass)
    np.testing.assert_array_equal(model.geom_friction, friction)
    np.testing.assert_array_equal(model.body_subtreemass, subtree_mass)


def test_scaling_named_bodies_all_friction_columns_and_inertia():
    env = _dmc("cartpole-swingup")
    model = mujoco_model(env)
    mass, inertia, friction = model.body_mass.copy(), model.body_inertia.copy(), model.geom_friction.copy()
    pole = env.physics.model.name2id("pole_1", "body")
    ModelScaling(env, mass_scale=3.0, friction_scale=2.0, bodies=["pole_1"], friction_columns="all", scale_inertia=True)
    expected_mass = mass.copy()
    expected_mass[pole] *= 3.0
    np.testing.assert_allclose(model.body_mass, expected_mass)
    np.testing.assert_allclose(model.body_inertia[pole], 3.0 * inertia[pole])
    np.testing.assert_allclose(model.geom_friction, 2.0 * friction)
    with pytest.raises(ValueError, match="No body named"):
        ModelScaling(env, bodies=["no_such_body"])


def test_scaling_changes_the_dynamics():
    def final_obs(mass_scale):
        env = ModelScaling(_dmc("cartpole-swingup"), mass_scale=mass_scale)
        env.reset(seed=0)
        for _ in range(50):
            obs = env.step(np.ones(1, np.float32))[0]
        return obs

    np.testing.assert_array_equal(final_obs(1.0), final_obs(1.0))
    assert np.abs(final_obs(1.0) - final_obs(2.0)).max() > 1e-2


def test_scaling_on_gymnasium_hopper():
    env = gym.make("Hopper-v5")
    model = mujoco_model(env)
    friction = model.geom_friction.copy()
    wrapped = ModelScaling(env, mass_scale=1.0, friction_scale=0.25)
    wrapped.reset(seed=0)
    np.testing.assert_allclose(model.geom_friction[:, 0], 0.25 * friction[:, 0])
    wrapped.step(wrapped.action_space.sample())
    wrapped.restore()
    np.testing.assert_array_equal(model.geom_friction, friction)
