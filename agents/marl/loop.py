"""The episodic off-policy loop of the MARL learners (PyMARL's ``run_sequential``).

    while t_env < total_steps:
        episodes <- collector.collect(step=t_env)          # one episode per env, GRU state kept
        buffer.extend(episodes); t_env += real steps
        if len(buffer) >= update_after_episodes: updates_per_collect x agent.update(buffer.sample(B), step=t_env)
        every eval_every env steps: greedy episodes at U[0, 1] on the eval env
        every checkpoint_every env steps: save(t_env, state)

The loop owns the clock (``t_env``), passes it to ``act`` and ``update`` (schedules are pure
functions of it), and hands metric tensors to ``log(step, metrics)``; turning them into floats is
the logger's job. ``t_env`` is read from the device once per collection (the clock must be a
Python int for the schedules); nothing else syncs.

Resume: ``save(step, state)`` receives everything needed to continue (agent, buffer, collectors
with their env generators, counters); passing that dict back as ``resume`` continues bit for bit
on CPU. The checkpoint of a step is taken after that step's periodic evaluation and before the
end-of-run evaluation, so a resumed run sees exactly the state of a straight one.

Deviations from the reference: none in the data flow; PyMARL trains once per ``batch_size_run``
episodes, here ``updates_per_collect`` per collection of ``num_envs`` episodes (1 and 1 by default).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from agents.core.episodes import EpisodeBuffer, EpisodeCollector
from agents.core.loops import EpisodicConfig, Every

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
) -> dict[str, Any]:
    """Train ``agent`` on the multi-agent ``env`` until ``total_steps`` env steps.

    ``log(step, metrics)`` gets dicts of 0-dim tensors; ``save(step, state)`` a checkpoint payload
    (``agent``, ``buffer``, ``collector``, ``eval_collector``, ``loop``); ``resume`` is such a
    payload to continue from. Returns ``{"steps", "episodes", "updates", "final_eval", "buffer"}``.
    """
    collector = EpisodeCollector(env, agent, seed=config.seed)
    eval_collector = EpisodeCollector(eval_env if eval_env is not None else env, agent, seed=config.seed + 10_000)
    if buffer is None:
        buffer = EpisodeBuffer(collector.fields, config.buffer_episodes, env.episode_limit + 1, env.device, config.seed)
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
            "loop": {"steps": t_env, "episodes": episodes, "updates": updates},
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
                metrics = agent.update(buffer.sample(config.batch_episodes), step=t_env)
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
            final = evaluate(eval_collector, t_env)
            log(t_env, final)
            eval_cadence.advance(t_env)
        if save is not None and (save_cadence.due(t_env) or at_end):
            save(t_env, state())
            save_cadence.advance(t_env)
    if final is None:  # the end-of-run evaluation, unless this step already had one
        final = evaluate(eval_collector, t_env)
        log(t_env, final)
    return {"steps": t_env, "episodes": episodes, "updates": updates, "final_eval": final, "buffer": buffer}
