"""MADDPG, and ERNIE on top of it: deterministic actors, centralized critics, an adversarial smoothness penalty.

MADDPG: Lowe, Wu, Tamar, Harb, Abbeel, Mordatch, "Multi-Agent Actor-Critic for Mixed Cooperative-Competitive
Environments", NeurIPS 2017 (arXiv:1706.02275). ERNIE: Bukharin, Li, Yu, Zhang, Chen, Zuo, Zhang, Zhang, Zhao,
"Robust Multi-Agent Reinforcement Learning via Adversarial Regularization: Theoretical Foundation and Stable
Algorithms", NeurIPS 2023 (arXiv:2310.10810). Notes, settings and sources: docs/algorithms/ernie.md.

n agents, agent k observes o_k ``[D]`` and acts a_k = mu_k(o_k) ``[A]`` in the canonical box [-1, 1] (a tanh head).
Critic k sees everything: Q_k(o, a) with o = (o_1..o_n) ``[n D]`` and a = (a_1..a_n) ``[n A]``. For a batch
(o, a, r, o', d) with per-agent rewards r ``[B, n]`` (a team reward ``[B]`` is given to every agent):

    y_k      = r_k + gamma (1 - d) Qbar_k(o', mubar_1(o'_1), ..., mubar_n(o'_n))          targets: Polyak copies
    L_Q      = sum_k mean_b (Q_k(o, a) - y_k)^2
    L_mu     = sum_k [ -mean_b Q_k(o, a_1..mu_k(o_k)..a_n) + lambda R_k ]                  only slot k is mu_k's
    R_k      = mean_b max_{||delta|| <= eps} ||mu_k(o_k + delta) - mu_k(o_k)||^2          ERNIE (lambda > 0)

R_k is :func:`agents.robustness.robust.ernie_penalty` (K steps of projected gradient ascent; Stackelberg form by
default:
the actor descends the total derivative through the K ascent steps). ERNIE-A (optional, ``ernie_a_weight``) adds
lambda_A mean_b (Q_k(o, a) - Q_k(o, a'))^2 to the critic loss, a' the worst joint action with ``ernie_a_budget``
agents' actions changed (:func:`agents.robustness.robust.continuous_ernie_a_penalty`). The mean-field form (optional,
``ernie_mean_field``) moves only the atoms of the observation that describe the other agents, inside a
1-Wasserstein ball (:func:`agents.robustness.robust.mean_field_penalty`). Weight 0 never calls a penalty (the
attacks draw random numbers), so ``maddpg/...`` and ``ernie`` with weight 0 are the same run bit for bit.

The n actors and the n critics are each one batched network (:class:`~agents.engine.nets.EnsembleLinear`, one
``baddbmm`` per layer for all agents); ``shared_parameters`` uses one member for every agent, with the agent's one-hot
id appended to its inputs. Gradient norms are clipped per agent (each agent's own network, as in the reference where
every agent has its own optimizer); the actor step differentiates only the actors (``backward(inputs=...)``).

Trained by the shared off-policy loop (``agents.engine.loops.off_policy``) from the transition buffer: one
``update`` = one critic step and one actor step of every agent, then the Polyak step.

Deviations from the reference:

* Actions are canonical [-1, 1] (tanh) where the reference feeds MPE [0, 1] (the env adapter maps one onto the
  other), so the exploration std 0.2 here is 0.1 in MPE units. Exploration noise is Gaussian (the
  original MADDPG samples a Gumbel-softmax over discrete MPE actions); no pre-activation penalty on the actor.
* Observations and actions of agents with shorter vectors are zero-padded to the widest (the env's layout); the
  padded action components are never sent to the simulator, the critics just see them.
* The first ``train.update_after_steps`` transitions use uniform random actions (the shared loop's warm-up); the
  reference acts with its noisy policy from the start and updates once the buffer holds a batch.
* ERNIE's penalty is a per-sample mean in an explicit l2 ball, not the public code's batch Frobenius norm of raw
  gradient steps (see agents/robustness/robust.py); the penalty is applied to the networks that act (each actor).
"""

from __future__ import annotations

from agents.engine.config import ConfigError, RunConfig
from agents.engine.family import Family
from agents.maddpg.learner import MADDPG, AgentNets, MADDPGConfig, _clip_per_member, build
from agents.maddpg.presets import PRESETS, TASKS


def check(config: RunConfig) -> None:
    """The algorithm name never claims MADDPG for a regularized run: ``maddpg`` means weight 0. ``ernie``
    with weight 0 is allowed: it is ERNIE's switched-off control (MADDPG bit for bit), the weight-0 arm of
    a sweep over the weight."""
    agent = config.agent
    if config.algo == "maddpg" and (agent.ernie_weight != 0 or agent.ernie_a_weight != 0):
        raise ConfigError(
            f"algo maddpg runs without ERNIE's terms (ernie_weight={agent.ernie_weight:g}, "
            f"ernie_a_weight={agent.ernie_a_weight:g}); use an ernie/... preset for a regularized run"
        )


FAMILY = Family(presets=PRESETS, build_agent=build, multi_agent=True, check=check)

__all__ = ["FAMILY", "MADDPG", "AgentNets", "MADDPGConfig", "PRESETS", "TASKS", "build", "check", "_clip_per_member"]
