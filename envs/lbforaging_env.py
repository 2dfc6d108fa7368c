"""Level-based foraging (``lbforaging``, Papoudakis et al., NeurIPS 2021 benchmarks) as a ``MultiAgentVecEnv``.

Env ids are ``lbf:GYM_ID`` (``lbf:Foraging-6x6-2p-1f-coop-v3``, ``lbf:Foraging-8x8-2p-2f-coop-v3``):
lbforaging's gymnasium ids, a multi-agent env with ``Tuple`` observation and action spaces.
:class:`ForagingCopy` turns one into the arrays of :class:`envs.multiagent_copies.MultiAgentCopy`;
the batching (shapes, seeding, same-step autoreset) is :class:`envs.multiagent_copies.MultiAgentCopies`:
obs ``[N, n, D]``, team reward ``[N]`` (or each agent's own, ``[N, n]``, with ``reward="agent"``),
actions ``[N, n]`` in ``[0, 6)`` (none, north, south, west, east, load), ``state [N, n * D]``,
``avail_actions [N, n, 6]``. Discrete actions only.

Options (``env.options.X=``): ``penalty`` (subtracted from each agent taking part in a failed load;
registered 0.0; the ROE experiments use 0, 0.2 and 0.5), ``episode_limit`` (default the
registered ``max_episode_steps``, 50), ``team_reward`` (``sum``), ``reward`` (``team``), ``action_masks``
(false), and any other ``ForagingEnv`` argument (``normalize_reward``, ``sight`` ...); the env-level
ones may also come as one :class:`envs.multiagent.MultiAgentOptions` (``options=``).

Deviations from the reference: (1) lbforaging returns ``done`` both when the food is gone and at
the step limit, and never ``truncated``; here ``terminated`` is "no food left" (the env's own
success condition, read from its field) and reaching the limit otherwise is a truncation, so the
learner bootstraps there. (2) Team reward = sum of the per-agent rewards (EPyMARL's
default scalarisation); lbforaging normalises the rewards so that the team return is the loaded
fraction of the food levels (1 when everything is loaded; with ``-coop`` ids every food needs all
agents). (3) Global state = the agents' observations concatenated (as in EPyMARL; lbforaging has
no ``state()``). (4) All actions are available by default, as in EPyMARL (lbforaging turns an invalid
action into "none"); ``action_masks=true`` exposes lbforaging's per-agent valid actions instead.
(5) Before each reset the agents' positions are cleared: lbforaging's spawn also avoids the cells
where agents not yet placed stood in the previous episode, which makes a reset depend on that
episode and not only on the generator (so a resumed run could not replay it); without the leftover
positions every cell the rules allow is open.
"""

from __future__ import annotations

import difflib
from typing import Any

import numpy as np
import torch

from envs.multiagent import MultiAgentOptions
from envs.multiagent_copies import MARL_EXTRA_HINT, MultiAgentCopies


class ForagingCopy:
    """One lbforaging ``ForagingEnv`` (tuple spaces) as a :class:`~envs.multiagent_copies.MultiAgentCopy`."""

    def __init__(self, env: Any, action_masks: bool = False):
        self.env = env
        self.foraging = env.unwrapped
        self.n_agents = int(self.foraging.n_agents)
        self.n_actions = int(env.action_space[0].n)
        self.action_masks = action_masks

    @property
    def np_random(self) -> np.random.Generator:
        return self.foraging.np_random

    def reset(self, seed: int | None) -> np.ndarray:
        for player in self.foraging.players:  # the layout then depends on the generator alone (deviation 5)
            player.position = None
        obs, _ = self.env.reset(seed=seed)
        return np.stack(obs).astype(np.float32, copy=False)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool, bool]:
        obs, rewards, _done, _, _ = self.env.step(tuple(actions.tolist()))
        terminated = not self.foraging.field.any()  # all food loaded; the step limit is a truncation
        return np.stack(obs).astype(np.float32, copy=False), np.asarray(rewards, np.float32), terminated, False

    def state(self) -> None:
        return None  # the batching core concatenates the observations

    def avail_actions(self) -> np.ndarray | None:
        if not self.action_masks:
            return None
        valid = self.foraging._valid_actions  # player -> list of lbforaging Actions
        mask = np.zeros((self.n_agents, self.n_actions), bool)
        for row, player in enumerate(self.foraging.players):
            mask[row, [action.value for action in valid[player]]] = True
        return mask

    def close(self) -> None:
        self.env.close()


def make_lbf_env(
    env_id: str,
    num_envs: int = 1,
    device: torch.device | str = "cpu",
    seed: int | None = 0,
    *,
    options: MultiAgentOptions | None = None,
    action_masks: bool = False,
    **kwargs: Any,
) -> MultiAgentCopies:
    """``lbf:Foraging-...-v3`` -> N copies as a ``MultiAgentVecEnv``.

    The env-level options (``episode_limit``, ``team_reward`` sum, ``reward``) come as keywords or as
    ``options``; the other keywords go to ``ForagingEnv`` (``penalty`` ...).
    """
    import gymnasium

    from envs import EnvError

    try:
        import lbforaging  # noqa: F401  (registers the Foraging-* ids)
    except ImportError:
        raise EnvError(f"lbforaging envs need the optional package lbforaging: {MARL_EXTRA_HINT}") from None
    gym_id = env_id.split(":", 1)[1] if env_id.startswith("lbf:") else env_id
    if gym_id not in gymnasium.registry or not gym_id.startswith("Foraging"):
        known = [k for k in gymnasium.registry if k.startswith("Foraging")]
        close = difflib.get_close_matches(gym_id, known, n=3, cutoff=0.5)
        hint = f"; closest: {', '.join('lbf:' + c for c in close)}" if close else ""
        raise EnvError(f"unknown lbforaging env {env_id!r}{hint}")
    registered = int(gymnasium.spec(gym_id).kwargs["max_episode_steps"])
    opts, env_options = MultiAgentOptions.resolve(
        options,
        num_envs=num_envs,
        device=device,
        seed=seed,
        defaults={"episode_limit": registered, "team_reward": "sum"},
        **kwargs,
    )
    if opts.continuous:
        raise ValueError(f"{env_id}: lbforaging has discrete actions only (actions='discrete')")
    limit = int(opts.episode_limit)

    def make_copy() -> ForagingCopy:
        # Not make(..., max_episode_steps=): gymnasium would take it for its TimeLimit wrapper.
        env = gymnasium.make(gym_id, disable_env_checker=True, **env_options)
        env.unwrapped._max_episode_steps = limit
        return ForagingCopy(env, action_masks=action_masks)

    return MultiAgentCopies(make_copy, opts, name=f"lbf:{gym_id}")
