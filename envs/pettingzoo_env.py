"""PettingZoo *parallel* envs as a ``MultiAgentVecEnv``; MPE (``mpe2``) ids ``mpe:SCENARIO``.

PettingZoo: Terry et al., NeurIPS 2021 (Datasets and Benchmarks), arXiv 2009.14471; the MPE scenarios
come from MADDPG, Lowe et al., NeurIPS 2017, arXiv 1706.02275.

:class:`PettingZooCopy` turns one ``ParallelEnv`` (agent-keyed dicts) into the arrays of
:class:`envs.multiagent_copies.MultiAgentCopy`; :class:`envs.multiagent_copies.MultiAgentCopies`
batches N of them (shapes there: obs ``[N, n, D]``, team reward ``[N]`` or per-agent rewards
``[N, n]`` with ``reward="agent"``, actions ``[N, n]`` or ``[N, n, A]``, ``state [N, S]``,
``avail_actions [N, n, A]``). :func:`make_pettingzoo_env` wraps any parallel-env factory;
:func:`make_mpe_env` builds ``mpe:simple_spread`` (``mpe2.simple_spread_v3``) and the other MPE
scenarios with ``max_cycles`` = ``episode_limit`` (25 by default, MPE's usual length), discrete
actions by default and mpe2's continuous actions with ``actions="continuous"``.

* Agents are ordered as ``possible_agents`` (``env.agent_names``). Discrete envs need the same
  ``Discrete`` action space for every agent.
* Continuous actions (``actions="continuous"``): every agent needs a 1-d ``Box``; the actions are
  canonical ``[-1, 1]``, ``[N, n, A]`` with ``A`` the widest agent's action, mapped onto each agent's
  box (mpe2: ``[0, 1]`` per component, so -1 -> 0 and +1 -> 1). A narrower agent uses the first
  components of its row; ``avail_actions`` marks them and the rest are dropped before the simulator.
* Observations of different lengths (MPE's tag, speaker-listener, crypto) are zero-padded at the end
  to the longest (``obs_dims`` gives each agent's own length).
* Global state: the env's ``state()`` when it has one (MPE: the agents' own, unpadded observations
  concatenated, ``[n * D]`` when they have one length), else the (padded) observations concatenated;
  ``global_state="obs"`` always concatenates (for MPE with one observation length the same vector,
  without computing the observations twice: about 1.1x the env steps/s).
* Masks: PettingZoo's ``action_mask`` (in the info dict, or an observation dict with
  ``observation`` / ``action_mask``) when present, else all actions available.
* Episode end: every agent terminates or truncates together (MPE); an env whose agents leave one by
  one is refused with a message (``alive`` is all True here).

MPE scenarios with continuous actions (mpe2 1.1; obs / action widths per agent, in agent order):

* ``simple_spread``: ``agent_0..N-1``, obs 18 (N = 3), actions 5 (no-op, -x, +x, -y, +y force);
  cooperative, every reward ``(1 - local_ratio) * global + local_ratio * own collision penalty``.
* ``simple_tag``: ``adversary_0..2`` (obs 16) then ``agent_0`` (obs 14), actions 5. Mixed: the
  predators share +10 per catch, the prey gets -10 per catch and a boundary penalty.
* ``simple_speaker_listener``: ``speaker_0`` (obs 3, actions 3: a message) then ``listener_0``
  (obs 11, actions 5: movement); cooperative, both get the listener's distance penalty.
* ``simple_crypto``: ``eve_0`` (the adversary, obs 4), ``bob_0`` (obs 8), ``alice_0`` (obs 8), actions
  4 each (a message). Alice and Bob share a reward, Eve is rewarded against them.

Every agent is a learner here (the env does not fix any agent's policy); in the mixed scenarios a
team reward adds up opposing rewards, so use ``reward="agent"`` and split the agents by name
(the ``adversary`` / ``eve`` prefixes) where the learner needs teams.

Deviations from the reference: (1) the team reward is the *sum* of the per-agent rewards
(EPyMARL's default ``reward_scalarisation``; ``team_reward="mean"`` gives the mean). In
``simple_spread`` every agent gets ``(1 - local_ratio) * global + local_ratio * own collision
penalty``, so the sum counts the shared term n times. (2) The episode limit is enforced by the
batching core as well as by ``max_cycles`` (the same step), and a truncation is never a termination.
(3) Continuous actions are canonical ``[-1, 1]`` (MADDPG implementations feed MPE ``[0, 1]``, e.g. a
sigmoid head), and agents of different widths share one padded action tensor.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from envs.multiagent import MultiAgentOptions
from envs.multiagent_copies import MARL_EXTRA_HINT, MultiAgentCopies

MPE_PACKAGE = "mpe2"


class PettingZooCopy:
    """One PettingZoo ``ParallelEnv`` as a :class:`~envs.multiagent_copies.MultiAgentCopy`.

    ``continuous``: the agents have 1-d ``Box`` action spaces; ``action_low`` / ``action_high``
    ``[n, A]`` hold their bounds (padded components: 0, never sent) and ``step`` takes ``[n, A]``.
    """

    def __init__(self, env: Any, name: str = "pettingzoo", global_state: str = "env", continuous: bool = False):
        if global_state not in ("env", "obs"):
            raise ValueError(f"{name}: global_state must be 'env' or 'obs', got {global_state!r}")
        self.env, self.name = env, name
        self.agents = list(env.possible_agents)
        self.n_agents = len(self.agents)
        self.continuous = continuous
        spaces = [env.action_space(agent) for agent in self.agents]
        self._used: np.ndarray | None = None  # [n, A] components each agent uses, where agents differ
        if continuous:
            shapes = [getattr(space, "shape", None) for space in spaces]
            if any(not hasattr(sp, "low") or sh is None or len(sh) != 1 for sp, sh in zip(spaces, shapes)):
                raise ValueError(f"{name}: continuous actions need a 1-d Box action space per agent, got {spaces}")
            self.action_dims = [int(shape[0]) for shape in shapes]
            self.n_actions = max(self.action_dims)
            self.action_low = np.zeros((self.n_agents, self.n_actions), np.float32)
            self.action_high = np.zeros((self.n_agents, self.n_actions), np.float32)
            used = np.zeros((self.n_agents, self.n_actions), bool)
            for row, (space, width) in enumerate(zip(spaces, self.action_dims)):
                self.action_low[row, :width], self.action_high[row, :width] = space.low, space.high
                used[row, :width] = True
            self._used = None if used.all() else used
        else:
            sizes = {int(getattr(space, "n", -1)) for space in spaces}
            if len(sizes) != 1 or -1 in sizes:
                raise ValueError(f"{name}: every agent needs the same Discrete action space, got {spaces}")
            self.n_actions = sizes.pop()
        # Observation lengths from the spaces; agents with shorter ones are zero-padded to the longest.
        space_of = getattr(env, "observation_space", None)
        self.obs_dims = [int(np.prod(space_of(a).shape)) for a in self.agents] if callable(space_of) else None
        self._pad = self.obs_dims is not None and len(set(self.obs_dims)) > 1
        self._has_state: bool | None = None if global_state == "env" else False  # None: try state() once
        self._mask: np.ndarray | None = None

    @property
    def np_random(self) -> np.random.Generator:
        return self.env.unwrapped.np_random

    def _arrays(self, obs: dict[str, Any], infos: dict[str, Any]) -> np.ndarray:
        """Agent-keyed obs (and masks) -> obs ``[n, D]`` float32; keeps the masks for ``avail_actions``."""
        per_agent = [obs[agent] for agent in self.agents]
        masks = [infos.get(agent, {}).get("action_mask") for agent in self.agents]
        if isinstance(per_agent[0], dict):  # {"observation": ..., "action_mask": ...}
            masks = [o.get("action_mask") for o in per_agent]
            per_agent = [o["observation"] for o in per_agent]
        self._mask = None if masks[0] is None else np.stack(masks).astype(bool)
        if self._pad:  # mixed observation lengths: zero-pad at the end to the longest
            out = np.zeros((self.n_agents, max(self.obs_dims)), np.float32)
            for row, o in enumerate(per_agent):
                flat = np.asarray(o, np.float32).reshape(-1)
                out[row, : flat.size] = flat
            return out
        try:
            return np.stack(per_agent).reshape(self.n_agents, -1).astype(np.float32, copy=False)
        except ValueError:
            shapes = {np.shape(o) for o in per_agent}
            raise ValueError(f"{self.name}: agents have different observation shapes {shapes}") from None

    def reset(self, seed: int | None) -> np.ndarray:
        obs, infos = self.env.reset(seed=seed)
        return self._arrays(obs, infos)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool, bool]:
        if self.continuous:  # [n, A] in simulator units; each agent gets its own components
            widths = zip(self.agents, self.action_dims)
            joint = {agent: actions[row, :width] for row, (agent, width) in enumerate(widths)}
        else:
            joint = {agent: int(a) for agent, a in zip(self.agents, actions.tolist())}
        obs, rewards, terminations, truncations, infos = self.env.step(joint)
        ends = {(bool(terminations[a]), bool(truncations[a])) for a in self.agents}
        if len(ends) != 1:
            raise ValueError(f"{self.name}: agents ended at different steps ({ends}); not supported")
        terminated, truncated = ends.pop()
        reward = np.array([rewards[agent] for agent in self.agents], np.float32)
        return self._arrays(obs, infos), reward, terminated, truncated

    def state(self) -> np.ndarray | None:
        if self._has_state is False:
            return None
        try:
            state = self.env.state()
        except (NotImplementedError, AttributeError):  # ParallelEnv.state() raises when not provided
            self._has_state = False
            return None
        self._has_state = True
        return np.asarray(state, np.float32).reshape(-1)

    def avail_actions(self) -> np.ndarray | None:
        return self._used if self.continuous else self._mask

    def close(self) -> None:
        self.env.close()


def make_pettingzoo_env(
    factory: Callable[[], Any],
    num_envs: int = 1,
    device: torch.device | str = "cpu",
    seed: int | None = 0,
    *,
    options: MultiAgentOptions | None = None,
    global_state: str = "env",
    name: str = "pettingzoo",
    **kwargs: Any,
) -> MultiAgentCopies:
    """``num_envs`` copies of ``factory()`` (a PettingZoo parallel env) as a ``MultiAgentVecEnv``.

    ``global_state``: ``"env"`` uses the env's ``state()`` where it has one, ``"obs"`` always
    concatenates the observations (the same vector for MPE, without computing it twice). The
    env-level options (``episode_limit`` 25, ``team_reward`` sum, ``reward``, ``actions``) come as
    keywords or as ``options`` (:meth:`envs.multiagent.MultiAgentOptions.resolve`); ``factory`` must
    build an env with the matching action kind.
    """
    opts, rest = MultiAgentOptions.resolve(
        options,
        num_envs=num_envs,
        device=device,
        seed=seed,
        defaults={"episode_limit": 25, "team_reward": "sum"},
        **kwargs,
    )
    if rest:
        raise TypeError(f"{name}: unknown options {sorted(rest)}")
    return MultiAgentCopies(lambda: PettingZooCopy(factory(), name, global_state, opts.continuous), opts, name)


def mpe_scenarios() -> dict[str, str]:
    """MPE scenario name -> ``mpe2`` module (``simple_spread`` -> ``mpe2.simple_spread_v3``)."""
    from envs import EnvError

    try:
        mpe2 = importlib.import_module(MPE_PACKAGE)
    except ImportError:
        raise EnvError(f"MPE envs need the optional package mpe2: {MARL_EXTRA_HINT}") from None
    import pkgutil

    modules = [m.name for m in pkgutil.iter_modules(mpe2.__path__) if re.search(r"_v\d+$", m.name)]
    return {m.rsplit("_v", 1)[0]: f"{MPE_PACKAGE}.{m}" for m in modules}


def make_mpe_env(
    env_id: str,
    num_envs: int = 1,
    device: torch.device | str = "cpu",
    seed: int | None = 0,
    *,
    options: MultiAgentOptions | None = None,
    global_state: str = "env",
    **kwargs: Any,
) -> MultiAgentCopies:
    """``mpe:SCENARIO`` -> N copies of ``mpe2.SCENARIO_vK.parallel_env`` (discrete or continuous actions).

    The env-level options (:class:`envs.multiagent.MultiAgentOptions`: ``episode_limit`` 25,
    ``team_reward`` sum, ``reward``, ``actions``) come as keywords or as ``options``; the other
    keywords go to the scenario (``N``, ``local_ratio`` for simple_spread). ``actions="continuous"``
    builds mpe2's ``continuous_actions=True`` env behind the canonical ``[-1, 1]`` box.
    """
    from envs import EnvError

    scenario = env_id.split(":", 1)[1] if env_id.startswith("mpe:") else env_id
    scenarios = mpe_scenarios()
    if scenario not in scenarios:
        close = difflib.get_close_matches(scenario, list(scenarios), n=3, cutoff=0.5)
        hint = f"; closest: {', '.join('mpe:' + c for c in close)}" if close else ""
        raise EnvError(f"unknown MPE env {env_id!r}{hint}")
    opts, scenario_options = MultiAgentOptions.resolve(
        options,
        num_envs=num_envs,
        device=device,
        seed=seed,
        defaults={"episode_limit": 25, "team_reward": "sum"},
        **kwargs,
    )
    module = importlib.import_module(scenarios[scenario])
    mpe_options = {
        **scenario_options,
        "max_cycles": int(opts.episode_limit),
        "continuous_actions": opts.continuous,
    }
    return make_pettingzoo_env(
        lambda: module.parallel_env(**mpe_options),
        options=opts,
        global_state=global_state,
        name=f"mpe:{scenario}",
    )
