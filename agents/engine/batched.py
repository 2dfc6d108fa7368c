"""Seed-batched off-policy training: K runs of one config (differing only in ``train.seed``) in one
process, their gradient updates stacked into one.

One update of the suite's small networks is mostly per-op overhead (kernel launches, Python, autograd
bookkeeping); K seeds whose parameters are stacked on a leading ``[K]`` dimension pay it once. The K
runs are ordinary :class:`~agents.engine.loops.Session` s built by the runner
(:func:`agents.engine.run.train_batched`), each with its own env, replay buffer (and its sampling
generator), collector, evaluator, logger and checkpointer; the family's ``stack_seeds`` learner
(SAC's :class:`agents.sac.SeedStack`) holds their agents as views of the stacked parameters.

Each iteration of :func:`off_policy_batched` is the iteration of :func:`agents.engine.loops.off_policy`
for every run, composed from the same :class:`~agents.engine.loops.OffPolicyRun` halves: after the
warm-up one stacked actor call picks every run's exploring action (``[K, N, ...]``, the K actors as
one batched network), every run steps its own envs with its action and inserts (a Python loop over the
K runs), then each due update samples one batch per run
from its own buffer and makes one stacked update; then every run reports (logs, evaluates and
checkpoints when due). All runs share one config, so they are in lockstep: the same step, warm-up,
update credit and cadences.

What equals K separate runs and what does not: each run's data (env, buffer draws) is its own, and
member k's update reads only member k's tensors (``tests/test_batched.py`` checks that changing one
seed's data leaves the others bit for bit). But the runs share torch's global generator (exploration
noise and the reparameterisation draws interleave across seeds), and a batched matmul may round
differently from K single ones, so a batched seed is not bit-equal to the same seed run alone: it is
the same experiment statistically. A batched sweep resumes bit for bit (each run's checkpoint holds
the global RNG state as the lockstep loop left it, and the runs are restored in seed order).
"""

from __future__ import annotations

from typing import Any

import torch

from agents.engine.loops import OffPolicyRun, Session


def off_policy_batched(sessions: list[Session], stack: Any) -> None:
    """Drive K lockstep off-policy sessions to ``total_steps``; ``stack.act(obs [K, N, ...], step=)``
    gives all K runs' exploring actions ``[K, N, ...]`` at once, ``stack.update(batches, step=)`` updates
    all K agents at once and returns each one's metrics."""
    runs = [OffPolicyRun(session) for session in sessions]
    batch_size = sessions[0].config.train.batch_size
    if len({(r.update_after, r.session.step, r.credit.credit) for r in runs}) > 1:
        raise RuntimeError("seed-batched runs are not in lockstep (different step, warm-up or update credit)")
    while not runs[0].done:
        if runs[0].warm:
            due = [run.collect() for run in runs]
        else:  # every run's exploring action from one stacked actor call: [K, N, ...]
            obs = torch.stack([run.session.collector.observation() for run in runs])
            actions = stack.act(obs, step=runs[0].session.step)
            due = [run.collect(action) for run, action in zip(runs, actions.unbind(0))]
        if len(set(due)) > 1:  # cannot happen with one config; a guard against silent drift
            raise RuntimeError(f"seed-batched runs fell out of lockstep (updates due: {due})")
        for _ in range(due[0]):
            batches = [run.session.buffer.sample(batch_size, step=run.session.step) for run in runs]
            for run, metrics in zip(runs, stack.update(batches, step=runs[0].session.step)):
                run.metrics.add(metrics)
        for run in runs:
            run.report()
