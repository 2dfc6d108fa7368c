"""The multi-agent form of the VecEnv protocol, its shared options, and the factory for the suite's MARL envs.

The contract follows PyMARL's ``MultiAgentEnv`` (Samvelyan et al., "The StarCraft Multi-Agent
Challenge", AAMAS 2019, arXiv 1902.04043), batched and in torch.

A ``MultiAgentVecEnv`` is a :class:`envs.base.VecEnv` with an agent dimension (CTDE: the global
state is for the centralized learner only):

* ``obs`` ``[N, agents, D]`` float32 (every agent's local observation; agents with shorter
  observations are zero-padded to the longest, where an adapter allows mixed agents),
* ``reward`` ``[N]`` float32, the team reward (``reward="team"``, the default), or ``[N, agents]``,
  each agent's own reward (``reward="agent"``, for envs that have per-agent rewards),
* ``terminated`` / ``truncated`` ``[N]`` bool (episode-level; an episode ends for all agents),
* ``action`` given to ``step``: discrete envs (``actions="discrete"``, the default) take
  ``[N, agents]`` int64, one choice per agent, ``action_spec = DiscreteSpec(n_actions, (agents,))``;
  continuous envs (``actions="continuous"``) take ``[N, agents, A]`` float32 in the canonical
  ``[-1, 1]``, ``action_spec = BoxSpec((agents, A), -1, 1)``; the adapter clips to ``[-1, 1]`` and maps
  the box affinely onto the simulator's own bounds (-1 -> low, +1 -> high),
* ``info`` carries ``state [N, S]``, ``avail_actions [N, agents, A]`` bool and ``alive [N, agents]``
  bool of the *current* observation (post-reset where an episode ended), plus ``final_state`` and
  ``final_avail_actions``: the true last state / mask of a finished episode (equal to ``state`` /
  ``avail_actions`` elsewhere), the multi-agent counterpart of ``final_obs``.

``n_actions`` is ``A`` in both cases: the number of choices (discrete) or the width of an agent's
action vector (continuous). For continuous envs ``avail_actions [N, agents, A]`` marks the action
components an agent *uses*: all True when every agent has an ``A``-wide action; where agents differ
(MPE's speaker has 3 components, its listener 5) the vectors are padded to the widest and the padded
components, which the simulator never sees, are False. The key is kept so that the episode buffers
and the learners read one info layout for both action kinds.

``reset`` returns obs; the matching state and masks are then read from :meth:`MultiAgentVecEnv.
current_info` so that ``reset`` keeps the single-agent signature.

:class:`MultiAgentOptions` bundles the env-level keywords every multi-agent factory shares
(``num_envs``, ``device``, ``seed``, ``episode_limit``, ``team_reward``, ``reward``, ``actions``);
:func:`make_marl_env` and every family factory take them as keywords (as before) or as one
``options=`` object.

Deviations from the reference: PyMARL's ``MultiAgentEnv`` is a single env with Python-side
``get_obs_agent`` / ``get_state`` calls; here N copies live in batched tensors and the masks travel
with every step. PyMARL has discrete actions only; continuous actions follow the suite's single-agent
convention (canonical ``[-1, 1]``) rather than MADDPG's ``[0, 1]`` (MPE) or VMAS's force units.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import torch

from envs.base import BoxSpec, DiscreteSpec, StepOut


def _doc(text: str, default: Any) -> Any:
    """A dataclass field with a one-line doc in its metadata (the form of ``agents.engine.config.doc``, which
    ``envs`` may not import)."""
    return field(default=default, metadata={"doc": text})


REWARD_MODES = ("team", "agent")
ACTION_KINDS = ("discrete", "continuous")
TEAM_REWARDS = ("sum", "mean")


@dataclass(frozen=True)
class MultiAgentOptions:
    """The env-level options every multi-agent factory shares (the rest of a factory's keywords go to the
    scenario). ``None`` means the family's default, filled in by :meth:`resolve`."""

    num_envs: int = _doc("env copies stepped together", 1)
    device: Any = _doc("torch device of every tensor the env returns (str or torch.device)", "cpu")
    seed: int | None = _doc("seed of the first reset (copy i of a numpy simulator gets seed + i)", 0)
    episode_limit: int | None = _doc(
        "truncation step (VMAS calls it max_steps); None: the family's default (MPE 25, VMAS 100, lbforaging "
        "the registered limit)",
        None,
    )
    team_reward: str | None = _doc(
        "how reward='team' reduces the per-agent rewards: 'sum' or 'mean'; None: the family's default (VMAS "
        "mean, PettingZoo and lbforaging sum)",
        None,
    )
    reward: str = _doc("'team': reward [N]; 'agent': each agent's own reward, [N, agents]", "team")
    actions: str = _doc("'discrete': int64 [N, agents]; 'continuous': float32 [N, agents, A] in [-1, 1]", "discrete")

    def __post_init__(self) -> None:
        if self.reward not in REWARD_MODES:
            raise ValueError(f"reward must be one of {REWARD_MODES}, got {self.reward!r}")
        if self.actions not in ACTION_KINDS:
            raise ValueError(f"actions must be one of {ACTION_KINDS}, got {self.actions!r}")
        if self.team_reward is not None and self.team_reward not in TEAM_REWARDS:
            raise ValueError(f"team_reward must be 'sum' or 'mean', got {self.team_reward!r}")
        if self.episode_limit is not None and int(self.episode_limit) <= 0:
            raise ValueError(f"episode_limit (max_steps) must be a positive step count, got {self.episode_limit}")
        if int(self.num_envs) <= 0:
            raise ValueError(f"num_envs must be positive, got {self.num_envs}")

    @property
    def continuous(self) -> bool:
        return self.actions == "continuous"

    @classmethod
    def resolve(
        cls,
        options: MultiAgentOptions | None = None,
        *,
        num_envs: int = 1,
        device: torch.device | str = "cpu",
        seed: int | None = 0,
        defaults: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> tuple[MultiAgentOptions, dict[str, Any]]:
        """Split a factory call into (options, scenario options).

        Keywords naming a field (``episode_limit``, its VMAS alias ``max_steps``, ``team_reward``,
        ``reward``, ``actions``) override ``options``; ``num_envs`` / ``device`` / ``seed`` override it
        where they differ from their defaults (1, cpu, 0), so ``make(env_id, options=o)`` takes all of
        them from ``o``. ``defaults`` fills the fields left ``None`` (the family's episode limit and
        team reduction). Every other keyword is returned for the scenario. The flag
        ``continuous_actions`` of mpe2 and VMAS is not an option here (it raises
        NotImplementedError naming ``actions='continuous'``; ``continuous_actions=False`` is accepted).
        """
        kwargs = dict(kwargs)
        changes: dict[str, Any] = {}
        for key, value, default in (("num_envs", num_envs, 1), ("device", device, "cpu"), ("seed", seed, 0)):
            at_default = str(torch.device(value)) == default if key == "device" else value == default
            if options is None or not at_default:
                changes[key] = value
        if kwargs.pop("continuous_actions", False):
            raise NotImplementedError(
                "continuous_actions=True is not an option of the suite's multi-agent envs: ask for continuous "
                "actions with actions='continuous' (Box actions in [-1, 1])"
            )
        if "max_steps" in kwargs:  # VMAS's name of the episode limit
            if "episode_limit" in kwargs:
                raise ValueError("give the episode limit once: episode_limit or max_steps, not both")
            kwargs["episode_limit"] = kwargs.pop("max_steps")
        for name in MULTI_AGENT_KEYS - {"num_envs", "device", "seed"}:
            if name in kwargs:
                changes[name] = kwargs.pop(name)
        resolved = dataclasses.replace(options if options is not None else cls(), **changes)
        fill = {k: v for k, v in (defaults or {}).items() if getattr(resolved, k) is None}
        return (dataclasses.replace(resolved, **fill) if fill else resolved), kwargs


MULTI_AGENT_KEYS = frozenset(f.name for f in dataclasses.fields(MultiAgentOptions))


@runtime_checkable
class MultiAgentVecEnv(Protocol):
    """N multi-agent envs stepped as one (see the module docstring for shapes).

    Adapters of third-party simulators also expose ``agent_names`` (the agent order), ``obs_dims``
    (each agent's own observation length, the rest of its row being zero padding),
    ``multi_agent_options`` (their resolved :class:`MultiAgentOptions`) and, for continuous actions,
    ``action_dims`` (each agent's own action width) and ``action_low`` / ``action_high`` ``[agents, A]``
    (the simulator's bounds that -1 / +1 map to); they are not part of the protocol so that the
    suite's own games need not carry them.
    """

    num_envs: int
    device: torch.device
    n_agents: int
    n_actions: int
    episode_limit: int
    obs_spec: BoxSpec  # shape (agents, D)
    state_spec: BoxSpec  # shape (S,)
    action_spec: DiscreteSpec | BoxSpec  # discrete: n = n_actions, shape (agents,); continuous: (agents, A)

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Reset every env; return obs ``[N, agents, D]``."""
        ...

    def current_info(self) -> dict[str, torch.Tensor]:
        """``state``, ``avail_actions`` and ``alive`` of the current observation."""
        ...

    def step(self, action: torch.Tensor) -> StepOut:
        """Apply joint actions (``[N, agents]`` int64 or ``[N, agents, A]`` float32) and autoreset finished envs."""
        ...

    def close(self) -> None: ...


def make_generator(device: torch.device, seed: int | None) -> torch.Generator:
    """The env's own generator (never the global RNG, so agents and envs draw independently)."""
    generator = torch.Generator(device=device)
    generator.manual_seed(0 if seed is None else int(seed))
    return generator


def canonical_to_bounds(action: torch.Tensor, low: torch.Tensor, high: torch.Tensor) -> torch.Tensor:
    """Map canonical actions ``[..., agents, A]`` in ``[-1, 1]`` onto ``[low, high]`` (``[agents, A]`` each).

    ``a_env = c + h * clip(a, -1, 1)`` with ``c = (high + low) / 2``, ``h = (high - low) / 2``: -1 -> low,
    +1 -> high, 0 -> the middle. Written around the centre (not ``low + (a + 1) h``) so that a symmetric
    box ``[-u, u]`` maps exactly (``a_env = u * a``); the final clamp keeps rounding from stepping outside
    a box whose ends are not exact binary fractions (VMAS asserts on that).
    """
    centre, half = (high + low) / 2, (high - low) / 2
    return torch.clamp(centre + half * action.clamp(-1.0, 1.0), low, high)


def finalize_info(
    info_next: dict[str, torch.Tensor], info_final: dict[str, torch.Tensor], done: torch.Tensor
) -> dict[str, Any]:
    """Info dict of a step: current (post-reset) tensors plus ``final_state`` / ``final_avail_actions``.

    ``info_final`` holds the tensors of the pre-reset last observation; ``done [N]`` selects rows.
    """
    out: dict[str, Any] = dict(info_next)
    out["final_state"] = torch.where(done[:, None], info_final["state"], info_next["state"])
    out["final_avail_actions"] = torch.where(
        done[:, None, None], info_final["avail_actions"], info_next["avail_actions"]
    )
    return out


# id -> "module:function" taking (num_envs, device, seed, **options): the form of envs.NATIVE_ENVS, so
# the suite's factory can register these with ``NATIVE_ENVS.update(MARL_ENVS)``.
MARL_ENVS: dict[str, str] = {
    "matrix": "envs.matrix_games:make_matrix_game",
    "matrix:wqmix": "envs.matrix_games:make_wqmix",
    "matrix:climbing": "envs.matrix_games:make_climbing",
    "matrix:penalty": "envs.matrix_games:make_penalty",
    "predator-prey": "envs.predator_prey:PredatorPrey",
}

# id prefix -> "module:function" taking (env_id, num_envs, device, seed, *, options=None, **options): adapters
# of third-party simulators whose ids name a scenario (``vmas:navigation``).
MARL_ENV_PREFIXES: dict[str, str] = {
    "vmas:": "envs.vmas_env:make_vmas_env",
    "mpe:": "envs.pettingzoo_env:make_mpe_env",
    "lbf:": "envs.lbforaging_env:make_lbf_env",
    "traffic:": "envs.traffic:make_traffic_marl_env",
}


def make_marl_env(
    env_id: str,
    num_envs: int = 1,
    device: torch.device | str = "cpu",
    seed: int | None = 0,
    *,
    options: MultiAgentOptions | None = None,
    **kwargs: Any,
) -> MultiAgentVecEnv:
    """Build one of the suite's multi-agent envs by id (see ``MARL_ENVS``).

    ``matrix`` takes ``payoff=`` (or ``game=``); ``matrix:GAME`` is a named table (``payoff=`` still
    overrides it); ``predator-prey`` takes the options of :class:`envs.predator_prey.PredatorPrey`;
    ``vmas:SCENARIO`` those of :class:`envs.vmas_env.VmasEnv`; ``mpe:SCENARIO`` (PettingZoo MPE) those
    of :func:`envs.pettingzoo_env.make_mpe_env`; ``lbf:Foraging-...`` those of
    :func:`envs.lbforaging_env.make_lbf_env`; ``traffic:grid`` (SUMO signal control) those of
    :func:`envs.traffic.make_traffic_env` (see ``MARL_ENV_PREFIXES``). The env-level keywords
    (:class:`MultiAgentOptions`) may come as keywords or as one ``options=`` object (keywords win, see
    :meth:`MultiAgentOptions.resolve`). The suite's own games have a team reward and discrete actions
    only: ``reward='agent'`` or ``actions='continuous'`` fail there with a message.
    """
    import importlib

    for prefix, target in MARL_ENV_PREFIXES.items():  # third-party families: "vmas:SCENARIO" ...
        if env_id.startswith(prefix):
            module, fn = target.split(":")
            return getattr(importlib.import_module(module), fn)(
                env_id, num_envs=num_envs, device=device, seed=seed, options=options, **kwargs
            )
    if env_id not in MARL_ENVS:
        raise ValueError(f"unknown multi-agent env {env_id!r}; known: {', '.join(MARL_ENVS)}")
    if options is not None or not MULTI_AGENT_KEYS.isdisjoint(kwargs) or "max_steps" in kwargs:
        opts, kwargs = MultiAgentOptions.resolve(options, num_envs=num_envs, device=device, seed=seed, **kwargs)
        if opts.reward != "team" or opts.continuous:
            raise ValueError(
                f"{env_id} has a team reward and discrete actions only (reward='team', actions='discrete')"
            )
        num_envs, device, seed = opts.num_envs, opts.device, opts.seed
        # The suite's games take their own keywords; the limit and reduction pass through where set.
        kwargs.update({k: getattr(opts, k) for k in ("episode_limit", "team_reward") if getattr(opts, k) is not None})
    module, fn = MARL_ENVS[env_id].split(":")
    return getattr(importlib.import_module(module), fn)(num_envs=num_envs, device=device, seed=seed, **kwargs)
