"""Tests for envs/dmc.py: DeepMind Control tasks behind the gymnasium API."""

from __future__ import annotations

import numpy as np
import pytest

from envs.dmc import DMC_TASKS, DMCEnv, make_dmc, split_task_name


def test_task_list_is_the_26_erc_tasks():
    assert len(DMC_TASKS) == 26
    assert len(set(DMC_TASKS)) == 26
    assert {"cheetah-run", "cartpole-swingup", "ball_in_cup-catch", "finger-turn_hard", "swimmer-swimmer15"} <= set(
        DMC_TASKS
    )


def test_split_task_name():
    assert split_task_name("ball_in_cup-catch") == ("ball_in_cup", "catch")
    assert split_task_name("dmc:finger-turn_hard") == ("finger", "turn_hard")
    with pytest.raises(ValueError, match="domain-task"):
        split_task_name("cheetah")
    with pytest.raises(ValueError, match="Unknown DMC task"):
        split_task_name("cheetah-fly")


@pytest.mark.parametrize(
    ("name", "obs_dim", "action_dim"),
    [("cartpole-swingup", 5, 1), ("cheetah-run", 17, 6), ("ball_in_cup-catch", 8, 2), ("finger-turn_hard", 12, 2)],
)
def test_shapes_dtypes_and_bounds(name, obs_dim, action_dim):
    env = make_dmc(name)
    obs, _ = env.reset(seed=0)
    assert isinstance(env, DMCEnv)
    assert obs.shape == (obs_dim,) and obs.dtype == np.float32
    assert env.observation_space.shape == (obs_dim,)
    assert env.observation_space.contains(obs)
    assert env.action_space.shape == (action_dim,) and env.action_space.dtype == np.float32
    np.testing.assert_array_equal(env.action_space.low, -1.0)
    np.testing.assert_array_equal(env.action_space.high, 1.0)
    next_obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
    assert next_obs.shape == (obs_dim,) and next_obs.dtype == np.float32
    assert isinstance(reward, float) and 0.0 <= reward <= 1.0
    assert terminated is False and truncated is False
    env.close()


def test_flattening_follows_the_observation_dict_order():
    env = make_dmc("cartpole-swingup")
    obs, _ = env.reset(seed=0)
    time_step_obs = env.dm_env.task.get_observation(env.physics)
    expected = np.concatenate([np.ravel(time_step_obs["position"]), np.ravel(time_step_obs["velocity"])])
    np.testing.assert_allclose(obs, expected.astype(np.float32))


def test_episode_truncates_at_1000_steps_and_never_terminates():
    env = make_dmc("cartpole-swingup")
    env.reset(seed=0)
    action = np.zeros(1, dtype=np.float32)
    for step in range(1, 1001):
        _, _, terminated, truncated, _ = env.step(action)
        assert not terminated
        assert truncated == (step == 1000), f"truncated={truncated} at step {step}"
    # dm_control starts a new episode after the last step; a gymnasium user resets explicitly.
    obs, _ = env.reset()
    assert obs.shape == (5,)


def test_short_time_limit_is_respected():
    # task_kwargs reach suite.load; the step limit follows the time limit (pendulum: 0.02 s steps).
    env = make_dmc("pendulum-swingup", task_kwargs={"time_limit": 0.2})
    env.reset(seed=0)
    flags = [env.step(np.zeros(1))[3] for _ in range(env.max_episode_steps)]
    assert env.max_episode_steps == 10 and flags[-1] and not any(flags[:-1])


def test_seeding_gives_identical_first_obs_and_trajectory():
    env_a, env_b = make_dmc("reacher-easy"), make_dmc("reacher-easy")  # random arm pose and target
    obs_a, _ = env_a.reset(seed=7)
    obs_b, _ = env_b.reset(seed=7)
    np.testing.assert_array_equal(obs_a, obs_b)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(20, 2))
    for action in actions:
        step_a, step_b = env_a.step(action), env_b.step(action)
        np.testing.assert_array_equal(step_a[0], step_b[0])
        assert step_a[1] == step_b[1]
    # Reseeding the same env reproduces the first obs; another seed and an unseeded reset differ.
    np.testing.assert_array_equal(env_a.reset(seed=7)[0], obs_a)
    assert not np.array_equal(env_a.reset(seed=8)[0], obs_a)
    assert not np.array_equal(env_b.reset()[0], obs_b)


def test_actions_are_clipped_to_the_bounds():
    env_a, env_b = make_dmc("cartpole-swingup"), make_dmc("cartpole-swingup")
    env_a.reset(seed=1)
    env_b.reset(seed=1)
    for _ in range(5):
        obs_a = env_a.step(np.array([5.0]))[0]
        obs_b = env_b.step(np.array([1.0]))[0]
    np.testing.assert_array_equal(obs_a, obs_b)


def test_mujoco_model_is_the_live_model():
    env = make_dmc("cartpole-swingup")
    model = env.mujoco_model
    assert type(model).__module__.startswith("mujoco")
    pole = env.physics.model.name2id("pole_1", "body")
    original = float(env.physics.named.model.body_mass["pole_1"])
    model.body_mass[pole] = 3.0 * original
    assert float(env.physics.named.model.body_mass["pole_1"]) == pytest.approx(3.0 * original)


def test_passes_gymnasium_env_checker():
    from gymnasium.utils.env_checker import check_env

    check_env(make_dmc("point_mass-easy"), skip_render_check=True)


def test_all_26_tasks_construct_with_1000_step_episodes():
    # Construction is about 0.1 s per task, so this is not marked slow.
    for name in DMC_TASKS:
        env = make_dmc(name)
        obs, _ = env.reset(seed=0)
        assert obs.dtype == np.float32 and obs.shape == env.observation_space.shape, name
        assert np.all(np.isfinite(obs)), name
        assert env.max_episode_steps == 1000, name
        np.testing.assert_array_equal(env.action_space.low, -1.0, err_msg=name)
        np.testing.assert_array_equal(env.action_space.high, 1.0, err_msg=name)
        env.close()


def _osmesa_available() -> bool:
    import ctypes.util
    import os

    return os.environ.get("MUJOCO_GL", "osmesa") == "osmesa" and ctypes.util.find_library("OSMesa") is not None


@pytest.mark.skipif(not _osmesa_available(), reason="headless rendering needs libosmesa6 (apt-get install libosmesa6)")
def test_render_and_record_episode(tmp_path):
    import imageio.v2 as imageio

    from envs.video import record_episode

    env = make_dmc("cartpole-swingup", render_height=48, render_width=64)
    env.reset(seed=0)
    frame = env.render()
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8 and frame.std() > 0  # not a blank image
    env.close()
    assert make_dmc("cartpole-swingup", render_mode=None).render() is None

    out = record_episode(
        lambda: make_dmc("cartpole-swingup", render_height=48, render_width=64),
        lambda obs: np.ones(1, np.float32),
        tmp_path / "video" / "cartpole.mp4",
        max_steps=9,
    )
    assert out["frames"] == 10  # the reset frame plus one per step
    reader = imageio.get_reader(out["path"])
    assert reader.count_frames() == 10 and reader.get_meta_data()["fps"] == 100  # control rate of cartpole
    reader.close()


@pytest.mark.parametrize("name", ["reacher-easy", "swimmer-swimmer6"])  # tasks with a random target in the model
def test_env_state_round_trip_continues_bit_for_bit(name):
    actions = np.random.default_rng(0).uniform(-1, 1, size=(10, 2 if name == "reacher-easy" else 5))
    original = make_dmc(name, task_kwargs={"time_limit": 0.3 if name == "reacher-easy" else 0.45})  # 15 steps
    original.reset(seed=3)
    for action in actions[:5]:
        original.step(action)
    state = original.get_env_state()

    resumed = make_dmc(name, task_kwargs={"time_limit": 0.3 if name == "reacher-easy" else 0.45})
    resumed.reset(seed=99)  # a different episode, overwritten by the restore
    resumed.set_env_state(state)
    for action in actions[5:]:
        step_a, step_b = original.step(action), resumed.step(action)
        np.testing.assert_array_equal(step_a[0], step_b[0])
        assert step_a[1:4] == step_b[1:4]
    assert original.max_episode_steps > 10
    for _ in range(original.max_episode_steps - 10):  # the time limit (step counter) is restored too
        truncated_a, truncated_b = original.step(actions[0])[3], resumed.step(actions[0])[3]
        assert truncated_a == truncated_b
    assert truncated_a
    # The task's random state is restored: unseeded resets draw the same initial state and target.
    np.testing.assert_array_equal(original.reset()[0], resumed.reset()[0])
