"""Episode replay, episode collection and the episodic loop: every family that learns from whole episodes.

The cooperative-MARL learners (recurrent agents over padded episodes) and the LM-prompt family
(fixed-length token episodes) share :class:`EpisodeBuffer`, :class:`EpisodeCollector` and
:func:`train_episodic`; a family brings its field layout (``fields``), the step-info tensors it records
(``info_fields``) and those its ``act`` takes (``act_fields``). The defaults are the multi-agent layout
below.

``EpisodeBuffer`` is the episode counterpart of :class:`agents.engine.buffers.TransitionBuffer`: the
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

from agents.engine.buffers import FieldSpec, Sampler, TransitionBuffer
from agents.engine.checkpoint import restore_generator
from agents.engine.logger import MetricAccumulator
from agents.engine.loops import (
    Cadence,
    EpisodicConfig,
    Session,
    report,
    resolve_beta,
    restore_session,
    run_sampler,
    train_learner,
)


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


class LatestEpisodeBuffer(EpisodeBuffer):
    """An episode buffer whose ``sample`` returns the newest episodes (``train.replay=latest``: RLPrompt's
    on-policy update, every update reads the batch just collected).

    ``sample(batch)`` gives the first ``batch`` of the episodes inserted by the last ``extend`` (cycled if
    it asks for more), in insertion order; it draws nothing from the generator and adds no ``index`` /
    ``weights`` entries (it is not a prioritized batch).
    """

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.latest = torch.zeros(0, dtype=torch.long, device=self.device)

    def extend(self, rows: dict[str, torch.Tensor]) -> None:
        n = next(iter(rows.values())).shape[0]
        self.latest = (torch.arange(n, device=self.device) + self.cursor) % self.capacity
        super().extend(rows)

    def sample(self, batch_size: int, *, step: int = 0) -> dict[str, torch.Tensor]:
        if self.latest.numel() == 0:
            raise RuntimeError("cannot sample from an empty buffer")
        index = self.latest[torch.arange(batch_size, device=self.device) % self.latest.numel()]
        return {name: store.index_select(0, index) for name, store in self.storage.items()}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "latest": self.latest.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.latest = state["latest"].to(self.device).clone()


# The replay of an episodic run (``train.replay`` where a loop config offers it): uniform, or the newest.
EPISODE_REPLAYS = {"uniform": EpisodeBuffer, "latest": LatestEpisodeBuffer}


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
        # The family's layout (fields, the step-info tensors recorded per step with their final_* value at
        # the episode's end, and those passed to ``act`` as keywords); by default the cooperative
        # multi-agent one (module table): the global state and the action mask.
        multi_agent = fields is None
        if multi_agent:
            fields = episode_fields(env.n_agents, env.obs_spec.shape[-1], env.state_spec.shape[0], env.n_actions)
        self.fields = fields
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


def make_episode_buffer(config: EpisodicConfig, fields: FieldSpec, env: Any, kind: type | None = None) -> EpisodeBuffer:
    """The run's episode buffer (``kind``, default :class:`EpisodeBuffer`), with a prioritized sampler when
    ``train.prioritized`` is set (its beta ramp is the loop's, see :func:`agents.engine.loops.resolve_beta`)."""
    sampler = run_sampler(config, config.buffer_episodes, env.device)
    kind = kind or EpisodeBuffer
    return kind(fields, config.buffer_episodes, env.episode_limit + 1, env.device, config.seed, sampler=sampler)


def episodic_components(
    config: EpisodicConfig, env: Any, agent: Any, *, eval_env: Any = None, layout: dict | None = None, buffer=None
) -> dict[str, Any]:
    """The named components of an episodic run: ``agent``, ``buffer``, ``collector`` and ``eval_collector``
    (on ``eval_env``, default ``env``); ``layout`` is the family's fields / info_fields / act_fields."""
    layout = layout or {}
    collector = EpisodeCollector(env, agent, seed=config.seed, **layout)
    eval_env = eval_env if eval_env is not None else env
    eval_collector = EpisodeCollector(eval_env, agent, seed=config.seed + 10_000, **layout)
    if buffer is None:
        buffer = make_episode_buffer(config, collector.fields, env)
    return {"agent": agent, "buffer": buffer, "collector": collector, "eval_collector": eval_collector}


def episodic(session: Session) -> None:
    """Collect one episode per env, insert, take ``updates_per_collect`` updates once the buffer holds
    ``update_after_episodes`` episodes; log, evaluate and checkpoint through :func:`report`.

    The clock counts real env steps (``filled``), read from the device once per collection (schedules
    need a Python int); nothing else syncs.
    """
    cfg: EpisodicConfig = session.config.train
    collector, buffer, agent = session.collector, session.buffer, session.agent
    extra = session.extra_state or {}
    counters = {"episodes": int(extra.get("episodes", 0)), "updates": int(extra.get("updates", 0))}
    loop_state = resolve_beta(session)
    metrics = MetricAccumulator()
    cadence = Cadence.of(cfg, session.step)
    while session.step < cfg.total_steps:
        batch, stats = collector.collect(step=session.step)
        buffer.extend(batch)
        session.step += int(stats["steps"])  # the one host sync per collection: the schedules' clock
        counters["episodes"] += session.env.num_envs
        if len(buffer) >= max(cfg.update_after_episodes, 1):
            train_learner(agent, buffer, cfg.updates_per_collect, cfg.batch_episodes, session.step, metrics)
            counters["updates"] += cfg.updates_per_collect
        rollout = {
            "rollout/ep_rew_mean": stats["return"].mean(),  # the suite's tags, as the off-policy loop's
            "rollout/ep_len_mean": stats["length"].float().mean(),
            "rollout/episodes": torch.tensor(counters["episodes"]),
        }
        report(
            session, cadence, lambda rollout=rollout: {**metrics.means(), **rollout}, lambda: {**counters, **loop_state}
        )


LogFn = Callable[[int, dict[str, torch.Tensor]], Any]
SaveFn = Callable[[int, dict[str, Any]], Any]


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
) -> dict[str, Any]:
    """Train ``agent`` on ``env`` in memory (no run directory: tests, benchmarks) with the one
    :func:`episodic` loop. ``log(step, metrics)`` gets dicts of 0-dim tensors; ``save(step, state)`` a
    checkpoint payload, which ``resume`` takes back. Returns ``{"steps", "episodes", "updates",
    "final_eval", "buffer"}``."""
    from types import SimpleNamespace

    from agents.engine.checkpoint import MemoryCheckpointer
    from agents.engine.logger import MemoryLogger

    memory = MemoryLogger(on_log=log)
    session = Session(
        config=SimpleNamespace(train=config),
        env=env,
        logger=memory,
        checkpointer=MemoryCheckpointer(save),
        evaluate=None,
        components=episodic_components(config, env, agent, eval_env=eval_env, buffer=buffer),
    )
    session.evaluate = lambda _agent, step: evaluate(session.components["eval_collector"], step)
    if resume is not None:
        restore_session(session, resume)
    try:
        episodic(session)
    finally:
        memory.close()
    counters = session.extra_state or {}
    return {
        "steps": session.step,
        "episodes": counters.get("episodes", 0),
        "updates": counters.get("updates", 0),
        "final_eval": memory.last_eval,
        "buffer": session.buffer,
    }
