"""Episode replay, episode collection and the episodic loop: every family that learns from whole episodes.

The cooperative-MARL learners (recurrent agents over padded episodes) and the LM-prompt family
(fixed-length token episodes) share :class:`EpisodeBuffer`, :class:`EpisodeCollector` and
:func:`train_episodic`; a family brings its field layout (``fields``), the step-info tensors it records
(``info_fields``) and those its ``act`` takes (``act_fields``). The defaults are the multi-agent layout
below.

``EpisodeBuffer`` is the episode counterpart of :class:`agents.core.buffers.TransitionBuffer`: the
same field spec (``{name: (shape, dtype)}`` for one *time step*), storage ``[capacity, T+1, *shape]``
preallocated on the device, ``extend`` writing E episodes in one indexed copy per field, and
uniform sampling with ``torch.randint`` from the buffer's own generator. A ``filled [capacity, T+1]``
bool field marks the real transitions of each padded episode. With ``train.prioritized`` the buffer
samples whole episodes in proportion to their priorities (PyMARL2's episode-level prioritized replay;
the learner returns one TD error per episode, see :mod:`agents.marl.learner`).

``EpisodeCollector`` runs N multi-agent envs (:mod:`envs.multiagent`) for exactly ``episode_limit``
steps from a reset, recording one episode per env (PyMARL's parallel runner layout) and carrying
the agent's recurrent state. An env whose episode ended keeps stepping (it autoresets), but its
rows are masked out, so the loop has no data-dependent Python branch and no host sync per step.

Episode layout (time index t = 0..T, T = ``episode_limit``), the one the MARL learners read:

=================  =========================  =================================================
field              shape per step             meaning at row t
=================  =========================  =================================================
obs                ``[agents, D]``            observation at t (row ``len`` = the final obs)
state              ``[S]``                    global state at t (row ``len`` = final state)
avail_actions      ``[agents, A]`` bool       action mask at t (row ``len`` = final mask)
actions            ``[agents]`` int64         joint action taken at t (t < len)
reward             ``[]``                     team reward of step t
terminated         ``[]`` bool                step t ended in a true terminal state (no bootstrap)
filled             ``[]`` bool                t < len: row t is a real transition
=================  =========================  =================================================

Deviations from the reference: PyMARL's ``EpisodeBatch`` pads to ``episode_limit + 1`` and
stores the same fields; here the time limit is not a terminal (bootstrap from the final state), as
PyMARL does via its ``episode_limit`` info flag.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from agents.core.buffers import FieldSpec, Sampler, TransitionBuffer
from agents.core.checkpoint import restore_generator
from agents.core.loops import EpisodicConfig, Every, beta_horizon, prioritized_sampler, update_priorities


def episode_fields(n_agents: int, obs_dim: int, state_dim: int, n_actions: int) -> FieldSpec:
    """The field spec (one time step) of a cooperative multi-agent episode, see the module table."""
    return {
        "obs": ((n_agents, obs_dim), torch.float32),
        "state": ((state_dim,), torch.float32),
        "avail_actions": ((n_agents, n_actions), torch.bool),
        "actions": ((n_agents,), torch.int64),
        "reward": ((), torch.float32),
        "terminated": ((), torch.bool),
        "filled": ((), torch.bool),
    }


class EpisodeBuffer(TransitionBuffer):
    """A ring buffer of padded episodes: a TransitionBuffer whose rows are whole episodes.

    Each field of the one-step spec is stored as ``[capacity, max_len, *shape]`` (``max_len`` is
    ``episode_limit + 1``: the extra row holds the final observation). ``extend`` takes
    ``[E, max_len, *shape]`` tensors and ``sample`` returns ``[batch, max_len, *shape]``; insertion,
    sampling and resume are the TransitionBuffer's own. A ``sampler`` (prioritized replay) ranks
    whole episodes: one priority per episode row, batches with ``index [B]`` and ``weights [B]``.
    """

    def __init__(
        self,
        fields: FieldSpec,
        capacity: int,
        max_len: int,
        device: torch.device | str = "cpu",
        seed: int = 0,
        sampler: Sampler | None = None,
    ):
        if max_len <= 0:
            raise ValueError(f"max_len must be positive, got {max_len}")
        if "filled" not in fields:
            raise ValueError("an episode buffer needs a 'filled' field (the real-step mask)")
        self.max_len = int(max_len)
        episode_spec = {name: ((self.max_len, *shape), dtype) for name, (shape, dtype) in fields.items()}
        super().__init__(episode_spec, capacity, device=device, seed=seed, sampler=sampler)


def keep_rows(active: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """``new`` in the rows where ``active [N]`` is True, ``old`` elsewhere (any trailing shape)."""
    return torch.where(active.view(-1, *([1] * (new.dim() - 1))), new, old)


class EpisodeCollector:
    """Runs ``env.num_envs`` multi-agent envs for one episode each, keeping the agent's GRU state.

    The agent is called as ``agent.act(obs, state, step=, explore=, avail_actions=)`` and must
    return ``(actions [N, agents], new_state)``; ``agent.initial_state(N)`` gives the zero state.
    ``step`` passed to ``act`` is the env-step clock at the start of the collection (schedules are
    constant within one collection, as in PyMARL where ``t_env`` advances per episode).
    """

    def __init__(
        self,
        env: Any,
        agent: Any,
        seed: int | None = 0,
        *,
        fields: FieldSpec | None = None,
        info_fields: tuple[str, ...] | None = None,
        act_fields: tuple[str, ...] | None = None,
    ):
        self.env = env
        self.agent = agent
        self.num_envs = env.num_envs
        self.episode_limit = env.episode_limit
        self.device = env.device
        multi_agent = hasattr(env, "n_agents")
        # The family's layout; by default the cooperative multi-agent one (module table).
        if fields is None:
            fields = episode_fields(env.n_agents, env.obs_spec.shape[-1], env.state_spec.shape[0], env.n_actions)
        self.fields = fields
        # Step-info tensors recorded per step (with their final_* value at the episode's end) and those
        # passed to ``act`` as keywords: the multi-agent state and action mask by default.
        self.info_fields = (
            info_fields if info_fields is not None else (("state", "avail_actions") if multi_agent else ())
        )
        self.act_fields = act_fields if act_fields is not None else (("avail_actions",) if multi_agent else ())
        self._seed = seed  # the first reset is seeded; later ones continue the env's own generator

    def state_dict(self) -> dict[str, Any]:
        """Whether the first (seeded) reset happened, and the env's generator: a resumed run replays."""
        state: dict[str, Any] = {"seed": self._seed}
        generator = getattr(self.env, "generator", None)
        if generator is not None:
            state["env_generator"] = generator.get_state()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._seed = state["seed"]
        if "env_generator" in state:
            restore_generator(self.env.generator, state["env_generator"])

    def new_episodes(self) -> dict[str, torch.Tensor]:
        """Zeroed ``[N, T+1, ...]`` tensors for one collection."""
        n, length = self.num_envs, self.episode_limit + 1
        return {
            name: torch.zeros((n, length, *shape), dtype=dtype, device=self.device)
            for name, (shape, dtype) in self.fields.items()
        }

    @torch.no_grad()
    def collect(self, *, step: int, explore: bool = True) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """One episode per env. Returns ``(episodes [N, T+1, ...], stats)``.

        ``stats``: ``return [N]`` (undiscounted team return), ``length [N]`` (int64), ``steps``
        (0-dim int64, the number of real env steps collected, i.e. ``filled.sum()``).
        """
        obs = self.env.reset(seed=self._seed)
        self._seed = None
        info = self.env.current_info() if self.info_fields or self.act_fields else {}
        hidden = self.agent.initial_state(self.num_envs)
        ep = self.new_episodes()
        active = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)

        for t in range(self.episode_limit):
            # Rows of finished episodes keep their final obs/state/mask (written at t = len).
            for name, value in (("obs", obs), *((f, info[f]) for f in self.info_fields)):
                ep[name][:, t] = keep_rows(active, value, ep[name][:, t])
            extra = {name: info[name] for name in self.act_fields}
            actions, hidden = self.agent.act(obs, hidden, step=step, explore=explore, **extra)
            out = self.env.step(actions)
            ep["actions"][:, t] = keep_rows(active, actions, torch.zeros_like(actions))
            ep["reward"][:, t] = torch.where(active, out.reward, 0.0)
            ep["terminated"][:, t] = out.terminated & active
            ep["filled"][:, t] = active
            # The next row gets the true last observation of an episode that just ended.
            ep["obs"][:, t + 1] = out.final_obs
            for name in self.info_fields:
                ep[name][:, t + 1] = out.info[f"final_{name}"]
            active = active & ~(out.terminated | out.truncated)
            obs, info = out.obs, out.info
        stats = {
            "return": ep["reward"].sum(1),
            "length": ep["filled"].sum(1),
            "steps": ep["filled"].sum(),
        }
        return ep, stats


# --------------------------------------------------------------------------------------------------
# The episodic loop (every family that replays whole episodes: cooperative MARL, LM prompts)


LogFn = Callable[[int, dict[str, torch.Tensor]], Any]
SaveFn = Callable[[int, dict[str, Any]], Any]


def evaluate(collector: EpisodeCollector, step: int) -> dict[str, torch.Tensor]:
    """Greedy episodes (epsilon 0, fractions U[0, 1]): mean / min / max team return and length."""
    _, stats = collector.collect(step=step, explore=False)
    ret = stats["return"]
    return {
        "eval/mean_reward": ret.mean(),
        "eval/min_reward": ret.min(),
        "eval/max_reward": ret.max(),
        "eval/mean_ep_length": stats["length"].float().mean(),
    }


def train_episodic(
    env: Any,
    agent: Any,
    config: EpisodicConfig,
    *,
    eval_env: Any = None,
    buffer: EpisodeBuffer | None = None,
    log: LogFn | None = None,
    save: SaveFn | None = None,
    resume: dict[str, Any] | None = None,
    layout: dict[str, Any] | None = None,
    evaluate_fn: Callable[[EpisodeCollector, int], dict[str, torch.Tensor]] | None = None,
) -> dict[str, Any]:
    """Train ``agent`` on the multi-agent ``env`` until ``total_steps`` env steps.

    ``log(step, metrics)`` gets dicts of 0-dim tensors; ``save(step, state)`` a checkpoint payload
    (``agent``, ``buffer``, ``collector``, ``eval_collector``, ``loop``); ``resume`` is such a
    payload to continue from. Returns ``{"steps", "episodes", "updates", "final_eval", "buffer"}``.
    """
    layout = layout or {}  # the family's fields / info_fields / act_fields (default: multi-agent)
    evaluate_fn = evaluate_fn or evaluate
    collector = EpisodeCollector(env, agent, seed=config.seed, **layout)
    eval_env = eval_env if eval_env is not None else env
    eval_collector = EpisodeCollector(eval_env, agent, seed=config.seed + 10_000, **layout)
    prioritized = getattr(config, "prioritized", None)
    horizon = None  # prioritized replay: the beta ramp's length, chosen once per run and checkpointed
    if prioritized is not None:
        saved = (resume or {}).get("loop", {}).get("beta_steps")
        horizon = beta_horizon(prioritized, config.total_steps, saved)
    if buffer is None:
        sampler = None
        if prioritized is not None:
            sampler = prioritized_sampler(prioritized, config.buffer_episodes, env.device, horizon)
        buffer = EpisodeBuffer(
            collector.fields, config.buffer_episodes, env.episode_limit + 1, env.device, config.seed, sampler=sampler
        )
    elif prioritized is not None and buffer.sampler is None:
        buffer.use_sampler(prioritized_sampler(prioritized, buffer.capacity, buffer.device, horizon))
    t_env, episodes, updates = 0, 0, 0
    if resume is not None:
        agent.load_state_dict(resume["agent"])
        buffer.load_state_dict(resume["buffer"])
        collector.load_state_dict(resume["collector"])
        eval_collector.load_state_dict(resume["eval_collector"])
        t_env, episodes, updates = (int(resume["loop"][k]) for k in ("steps", "episodes", "updates"))
    log = log or (lambda step, metrics: None)

    def state() -> dict[str, Any]:
        return {
            "agent": agent.state_dict(),
            "buffer": buffer.state_dict(),
            "collector": collector.state_dict(),
            "eval_collector": eval_collector.state_dict(),
            "loop": {
                "steps": t_env,
                "episodes": episodes,
                "updates": updates,
                **({"beta_steps": horizon} if horizon is not None else {}),
            },
        }

    log_cadence, eval_cadence = Every(config.log_every, t_env), Every(config.eval_every, t_env)
    save_cadence = Every(config.checkpoint_every, t_env)
    final: dict[str, torch.Tensor] | None = None
    while t_env < config.total_steps:
        batch, stats = collector.collect(step=t_env)
        buffer.extend(batch)
        t_env += int(stats["steps"])  # the one host sync per collection: the schedules' clock
        episodes += env.num_envs
        metrics: dict[str, torch.Tensor] = {}
        if len(buffer) >= max(config.update_after_episodes, 1):
            for _ in range(config.updates_per_collect):
                replay = buffer.sample(config.batch_episodes, step=t_env)
                metrics = agent.update(replay, step=t_env)
                update_priorities(agent, buffer, replay, metrics)  # prioritized: the episodes' new priorities
                updates += 1
        at_end = t_env >= config.total_steps
        if log_cadence.due(t_env) or at_end:
            rollout = {
                "rollout/ep_rew_mean": stats["return"].mean(),  # the suite's tags, as the off-policy loop's
                "rollout/ep_len_mean": stats["length"].float().mean(),
                "rollout/episodes": torch.tensor(episodes),
            }
            log(t_env, {**metrics, **rollout})
            log_cadence.advance(t_env)
        final = None
        if eval_cadence.due(t_env):
            final = evaluate_fn(eval_collector, t_env)
            log(t_env, final)
            eval_cadence.advance(t_env)
        if save is not None and (save_cadence.due(t_env) or at_end):
            save(t_env, state())
            save_cadence.advance(t_env)
    if final is None:  # the end-of-run evaluation, unless this step already had one
        final = evaluate_fn(eval_collector, t_env)
        log(t_env, final)
    return {"steps": t_env, "episodes": episodes, "updates": updates, "final_eval": final, "buffer": buffer}
