"""Tests for envs/adversarial.py: the adversary's external forces on MuJoCo bodies (gymnasium and
DeepMind Control), its action layout through the vector adapter, its errors, and the temperature
observation wrapper (per-episode replay across autoresets, final observations, exact resume)."""

from __future__ import annotations

import io

import gymnasium as gym
import mujoco
import numpy as np
import pytest
import torch

from envs import make_vec_env
from envs.adversarial import FORCE_PLACEMENTS, AdversarialForce, AlphaObservation, mujoco_data
from envs.base import BoxSpec, StepOut
from envs.dmc import make_dmc
from envs.perturb import mujoco_model

PAPER_DMC_TASKS = ["dmc:cartpole-swingup", "dmc:walker-walk", "dmc:hopper-hop", "dmc:cheetah-run"]


def _build(task: str) -> gym.Env:
    return make_dmc(task) if task.startswith("dmc:") else gym.make(task)


def _body_id(env: gym.Env, name: str) -> int:
    return mujoco.mj_name2id(mujoco_model(env), mujoco.mjtObj.mjOBJ_BODY, name)


def _get_state(env: gym.Env) -> np.ndarray:
    model, data = mujoco_model(env), mujoco_data(env)
    spec = mujoco.mjtState.mjSTATE_INTEGRATION  # positions, velocities, warm start, controls, xfrc_applied
    state = np.empty(mujoco.mj_stateSize(model, spec))
    mujoco.mj_getState(model, data, state, spec)
    return state


def _set_state(env: gym.Env, state: np.ndarray) -> None:
    model, data = mujoco_model(env), mujoco_data(env)
    mujoco.mj_setState(model, data, state, mujoco.mjtState.mjSTATE_INTEGRATION)
    mujoco.mj_forward(model, data)


# ------------------------------------------------------------------ forces
@pytest.mark.parametrize("task", ["Hopper-v5", "dmc:cartpole-swingup"])
def test_nonzero_force_changes_the_next_state_and_zero_force_does_not(task):
    env = AdversarialForce(_build(task))
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    protagonist = env.protagonist_action_space
    zero_force = np.zeros(env.adversary_dim, np.float32)
    for _ in range(5):
        env.step(np.concatenate([rng.uniform(protagonist.low, protagonist.high), zero_force]))
    saved = _get_state(env)
    assert not np.any(mujoco_data(env).xfrc_applied)
    action = rng.uniform(protagonist.low, protagonist.high).astype(np.float32)

    obs_zero = env.step(np.concatenate([action, zero_force]))[0]
    _set_state(env, saved)
    obs_bare = env.env.step(action)[0]  # the env without the wrapper, from the same state
    np.testing.assert_array_equal(obs_zero, obs_bare)

    _set_state(env, saved)
    force = np.full(env.adversary_dim, 0.8 * env.force_limit, np.float32)
    force[1::2] *= -1.0  # (+F, -F) per body
    obs_force = env.step(np.concatenate([action, force]))[0]
    assert not np.allclose(obs_force, obs_zero)

    # The force sits in the chosen rows and columns, everything else is zero.
    expected = np.zeros_like(mujoco_data(env).xfrc_applied)
    columns = {"fx": 0, "fy": 1, "fz": 2, "tx": 3, "ty": 4, "tz": 5}
    index = 0
    for body in env.bodies:
        for component in env.components:
            expected[_body_id(env, body), columns[component]] = force[index]
            index += 1
    np.testing.assert_allclose(mujoco_data(env).xfrc_applied, expected, rtol=1e-6)
    # The next zero-force step clears it (the whole array is rewritten every step).
    env.step(np.concatenate([action, zero_force]))
    assert not np.any(mujoco_data(env).xfrc_applied)


def test_force_is_clipped_to_the_limit_and_cleared_by_reset():
    env = AdversarialForce(gym.make("InvertedPendulum-v5"), force_limit=3.0)
    env.reset(seed=0)
    env.step(np.array([0.0, 100.0, -100.0], np.float32))
    pole = _body_id(env, "pole")
    np.testing.assert_array_equal(mujoco_data(env).xfrc_applied[pole], [3.0, 0.0, -3.0, 0.0, 0.0, 0.0])
    env.reset()
    assert not np.any(mujoco_data(env).xfrc_applied)


def test_action_layout_through_the_vector_adapter():
    # Canonical [-1, 1] maps onto [protagonist bounds, +-force_limit]: 1 -> +F, -1 -> -F, 0 -> no force.
    vec = make_vec_env("InvertedPendulum-v5", 1, wrappers=[AdversarialForce])
    assert vec.action_spec.shape == (3,)
    vec.reset(seed=0)
    vec.step(torch.tensor([[0.0, 1.0, -1.0]]))
    inner = vec.vec.envs[0]
    limit = FORCE_PLACEMENTS["InvertedPendulum-v5"].force_limit
    np.testing.assert_array_equal(mujoco_data(inner).xfrc_applied[_body_id(inner, "pole")], [limit, 0, -limit, 0, 0, 0])
    vec.step(torch.tensor([[0.0, 0.0, 0.0]]))
    assert not np.any(mujoco_data(inner).xfrc_applied)
    vec.close()


@pytest.mark.parametrize(
    "task", ["InvertedPendulum-v5", "Hopper-v5", "HalfCheetah-v5", "Walker2d-v5", *PAPER_DMC_TASKS]
)
def test_force_placements_match_the_models(task):
    placement = FORCE_PLACEMENTS[task]
    base = _build(task)
    env = AdversarialForce(base)  # the task is inferred from the env
    assert env.task == task and env.force_limit == placement.force_limit
    assert env.adversary_dim == len(placement.bodies) * len(placement.components)
    assert env.protagonist_action_space == base.action_space
    n = base.action_space.shape[0]
    assert env.action_space.shape == (n + env.adversary_dim,)
    np.testing.assert_array_equal(env.action_space.low[:n], base.action_space.low)
    np.testing.assert_array_equal(env.action_space.high[n:], placement.force_limit)
    assert placement.temperature_scale > 0


@pytest.mark.slow
@pytest.mark.parametrize("task", sorted(t for t in FORCE_PLACEMENTS if t.startswith("dmc:")))
def test_every_dmc_placement_builds_and_steps(task):
    env = AdversarialForce(make_dmc(task))
    env.reset(seed=0)
    env.step(env.action_space.sample())
    assert np.count_nonzero(mujoco_data(env).xfrc_applied) <= env.adversary_dim


def test_custom_bodies_and_components():
    env = AdversarialForce(gym.make("Hopper-v5"), bodies=["torso", "foot"], force_limit=2.0, components=["fx"])
    assert env.adversary_dim == 2 and env.force_limit == 2.0
    env.reset(seed=0)
    env.step(np.array([0, 0, 0, 1.5, -0.5], np.float32))
    xfrc = mujoco_data(env).xfrc_applied
    assert xfrc[_body_id(env, "torso"), 0] == 1.5 and xfrc[_body_id(env, "foot"), 0] == -0.5
    assert np.count_nonzero(xfrc) == 2


def test_errors_are_clear():
    with pytest.raises(ValueError, match=r"No body named 'nose'.*'foot'"):
        AdversarialForce(gym.make("Hopper-v5"), bodies=["nose"])
    for bad in (0.0, -1.0, float("nan")):
        with pytest.raises(ValueError, match="force_limit must be"):
            AdversarialForce(gym.make("Hopper-v5"), force_limit=bad)
    with pytest.raises(ValueError, match="MuJoCo"):
        AdversarialForce(gym.make("CartPole-v1"))
    with pytest.raises(ValueError, match="No force placement for task 'Nope-v0'"):
        AdversarialForce(gym.make("Hopper-v5"), task="Nope-v0")
    with pytest.raises(ValueError, match="pass bodies= and force_limit="):
        AdversarialForce(gym.make("Ant-v5"))  # no table entry, nothing given
    with pytest.raises(ValueError, match="Unknown force components"):
        AdversarialForce(gym.make("Hopper-v5"), components=["fw"])
    env = AdversarialForce(gym.make("Hopper-v5"))
    env.reset(seed=0)
    with pytest.raises(ValueError, match="expects an action of shape"):
        env.step(np.zeros(3, np.float32))  # the protagonist part alone


# ------------------------------------------------------------------ temperature observation
class CountdownEnv:
    """A torch VecEnv: env i's episodes last ``lengths[i]`` steps (ending in truncation); obs = [i, t]."""

    def __init__(self, lengths):
        self.lengths = torch.tensor(lengths)
        self.num_envs = len(lengths)
        self.device = torch.device("cpu")
        self.obs_spec = BoxSpec(shape=(2,), low=(0.0, 0.0), high=(10.0, 10.0))
        self.action_spec = BoxSpec(shape=(1,))
        self.t = torch.zeros(self.num_envs, dtype=torch.int64)

    def _obs(self) -> torch.Tensor:
        return torch.stack([torch.arange(self.num_envs, dtype=torch.float32), self.t.float()], dim=-1)

    def reset(self, seed=None) -> torch.Tensor:
        self.t.zero_()
        return self._obs()

    def step(self, action) -> StepOut:
        self.t += 1
        done = self.t >= self.lengths
        final = self._obs()
        self.t = torch.where(done, torch.zeros_like(self.t), self.t)
        zeros = torch.zeros(self.num_envs, dtype=torch.bool)
        return StepOut(self._obs(), torch.ones(self.num_envs), zeros, done, final, {})

    def state_dict(self):
        return {"t": self.t.clone()}

    def load_state_dict(self, state):
        self.t = state["t"].clone()

    def close(self):
        pass


ALPHAS = [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]
# Env 0 ends episodes at steps 2, 4, 6; env 1 at steps 3, 6. Per step: (temperature of the stepped
# transition, alpha in obs, alpha in final_obs); the list wraps after its 6th entry.
TIMELINE = [
    ([0.1, 0.2], [0.1, 0.2], [0.1, 0.2]),
    ([0.1, 0.2], [0.3, 0.2], [0.1, 0.2]),
    ([0.3, 0.2], [0.3, 0.4], [0.3, 0.2]),
    ([0.3, 0.4], [0.5, 0.4], [0.3, 0.4]),
    ([0.5, 0.4], [0.5, 0.4], [0.5, 0.4]),
    ([0.5, 0.4], [0.6, 0.1], [0.5, 0.4]),
]


def _check_timeline(env: AlphaObservation, timeline) -> None:
    for temperature, obs_alpha, final_alpha in timeline:
        out = env.step(torch.zeros(env.num_envs, 1))
        assert torch.allclose(out.info["temperature"], torch.tensor(temperature))
        assert torch.allclose(out.obs[:, -1], torch.tensor(obs_alpha))
        assert torch.allclose(out.final_obs[:, -1], torch.tensor(final_alpha))


def test_alpha_observation_replays_the_list_across_autoresets():
    env = AlphaObservation(CountdownEnv([2, 3]))
    assert env.obs_spec.shape == (3,) and env.obs_spec.low[-1] == 0.0 and env.obs_spec.high[-1] == float("inf")
    env.set_alphas(torch.tensor(ALPHAS))
    obs = env.reset(seed=0)
    assert obs.shape == (2, 3) and torch.allclose(obs[:, -1], torch.tensor([0.1, 0.2]))
    assert torch.equal(obs[:, :2], torch.tensor([[0.0, 0.0], [1.0, 0.0]]))  # inner obs untouched
    _check_timeline(env, TIMELINE)
    # A new phase installs the same list: the same episodes get the same temperatures again.
    env.set_alphas(torch.tensor(ALPHAS))
    assert torch.allclose(env.reset()[:, -1], torch.tensor([0.1, 0.2]))
    _check_timeline(env, TIMELINE)


def test_alpha_observation_draws_fresh_values_when_the_list_runs_out():
    env = AlphaObservation(CountdownEnv([2, 3]), alphas=ALPHAS, sampler=lambda n: torch.full((n,), 9.0))
    env.reset()
    last = TIMELINE[-1]
    _check_timeline(env, TIMELINE[:-1] + [(last[0], [0.6, 9.0], last[2])])
    assert env.remaining == 0 and env.alphas.numel() == 7


def test_alpha_observation_needs_a_list():
    env = AlphaObservation(CountdownEnv([2]))
    with pytest.raises(RuntimeError, match="set_alphas"):
        env.reset()
    with pytest.raises(ValueError):
        env.set_alphas(torch.tensor([0.1, -0.1]))


def test_alpha_observation_state_round_trip():
    env = AlphaObservation(CountdownEnv([2, 3]), alphas=ALPHAS)
    env.reset()
    _check_timeline(env, TIMELINE[:3])
    buffer = io.BytesIO()
    torch.save(env.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    fresh = AlphaObservation(CountdownEnv([2, 3]), alphas=[7.0])
    fresh.reset()
    fresh.step(torch.zeros(2, 1))
    fresh.load_state_dict(state)
    _check_timeline(fresh, TIMELINE[3:])
    # An inner env that cannot save its state makes the whole state unsaveable.
    inner = CountdownEnv([2])
    inner.state_dict = lambda: None
    assert AlphaObservation(inner, alphas=ALPHAS).state_dict() is None


def test_alpha_observation_over_an_adversarial_mujoco_env():
    vec = AlphaObservation(make_vec_env("InvertedPendulum-v5", 2, wrappers=[AdversarialForce]), alphas=[0.05, 0.01])
    assert vec.obs_spec.shape == (5,) and vec.action_spec.shape == (3,)
    obs = vec.reset(seed=0)
    assert torch.allclose(obs[:, -1], torch.tensor([0.05, 0.01]))
    for _ in range(3):  # a checkpoint comes mid-run (gymnasium's env checker state is saved past its checks)
        vec.step(torch.zeros(2, 3))
    state = vec.state_dict()
    assert state["inner"] is not None
    actions = [torch.rand(2, 3, generator=torch.Generator().manual_seed(i)) * 2 - 1 for i in range(30)]
    first = [vec.step(a) for a in actions]
    vec.load_state_dict(state)
    second = [vec.step(a) for a in actions]
    for a, b in zip(first, second):
        assert torch.equal(a.obs, b.obs) and torch.equal(a.info["temperature"], b.info["temperature"])
    vec.close()
