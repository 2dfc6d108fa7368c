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

# The loop is the engine's (agents.engine.episodes); the MARL family and its tests use it from here.
from agents.engine.episodes import LogFn, SaveFn, evaluate, train_episodic
from agents.engine.loops import EpisodicConfig

__all__ = ["EpisodicConfig", "LogFn", "SaveFn", "evaluate", "train_episodic"]
