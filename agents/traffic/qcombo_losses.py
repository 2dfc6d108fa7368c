"""QCOMBO's three losses as pure functions of Q-values (traffic-signal control, one binary action per light).

QCOMBO (Zhang, Yang and Zha, "Integrating independent and centralized multi-agent reinforcement learning for
traffic signal network optimization", arXiv:1909.10651) trains two Q-networks together: a local Q-net shared by
the lights, ``Q_loc(o_k, .)`` ``[2]`` on light k's observation, and a global Q-net on the global state with one
output per joint action, ``Q_glob(s, .)`` ``[2^N]``; a consistency term ties the mean of the lights' local values
to the global value of the joint action. It is the base learner of ERNIE's traffic experiments (Bukharin et al.,
NeurIPS 2023, arXiv:2310.10810), whose released code this follows for the loss layout and the joint-action index.

Shapes: B transitions, N lights; ``q_local [B, N, 2]``, ``actions [B, N]`` int in {0, 1}, ``rewards [B, N]`` the
per-light rewards, ``reward [B]`` the global reward, ``q_global [B, 2^N]``, ``terminated [B]`` bool (the traffic
env never terminates; a time limit is not a terminal state and bootstraps).

Losses (``sg`` = detached; the ``next_*`` Q-values are those of the *target* networks):

* local (independent) TD: ``L_ind = sum_k mean_b (Q_loc(o_k, a_k) - y_k)^2`` with
  ``y_k = sg[r_k + gamma (1 - d) max_a Qbar_loc(o'_k, a)]``;
* global TD: ``L_glob = mean_b (Q_glob(s, a) - y)^2`` with ``y = sg[r + gamma (1 - d) Qbar_glob(s', a_hat)]``,
  ``a_hat`` the joint greedy action of the (online) local net on the next observations;
* consistency: ``L_cons = mean_b (mean_k Q_loc(o_k, a_k) - Q_glob(s, a))^2``, gradients into both networks;
* total: ``L_ind + L_glob + beta L_cons`` (the authors' ``qcombo_lam`` beta = 1.7).

The joint action index puts light 0 in the most significant bit: ``index = sum_k a_k 2^(N - 1 - k)`` (the
authors' ``binary_coeff``).

Deviation from the authors' code: their TD targets come from the online networks without ``detach`` (residual
gradients) and their target copies are never synchronised; here every target is detached and comes from target
networks (``qcombo_loss_from_nets`` takes both), the standard DQN form. ERNIE's penalty is not part of this
module.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import torch

QCOMBO_BETA = 1.7  # the authors' consistency weight (config_qcombo.py: qcombo_lam)


class QcomboLosses(NamedTuple):
    """The three terms and their weighted sum (scalars)."""

    total: torch.Tensor
    local: torch.Tensor
    global_: torch.Tensor
    consistency: torch.Tensor


def joint_action_index(actions: torch.Tensor) -> torch.Tensor:
    """``[B, N]`` binary actions -> ``[B]`` int64 joint-action index, light 0 the most significant bit."""
    n = actions.shape[-1]
    weights = 2 ** torch.arange(n - 1, -1, -1, device=actions.device, dtype=torch.int64)
    return (actions.to(torch.int64) * weights).sum(-1)


def local_td_loss(
    q_local: torch.Tensor,
    actions: torch.Tensor,
    rewards: torch.Tensor,
    next_q_local_target: torch.Tensor,
    terminated: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """``sum_k mean_b (Q_loc(o_k, a_k) - sg[r_k + gamma (1 - d) max_a Qbar_loc(o'_k, a)])^2``."""
    taken = q_local.gather(-1, actions.to(torch.int64).unsqueeze(-1)).squeeze(-1)  # [B, N]
    alive = (~terminated.to(torch.bool)).to(q_local.dtype).unsqueeze(-1)  # [B, 1]
    target = (rewards + gamma * alive * next_q_local_target.max(-1).values).detach()
    return ((taken - target) ** 2).mean(0).sum()


def global_td_loss(
    q_global: torch.Tensor,
    actions: torch.Tensor,
    reward: torch.Tensor,
    next_q_global_target: torch.Tensor,
    next_greedy_actions: torch.Tensor,
    terminated: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """``mean_b (Q_glob(s, a) - sg[r + gamma (1 - d) Qbar_glob(s', a_hat)])^2``, ``a_hat`` ``[B, N]`` greedy."""
    taken = q_global.gather(-1, joint_action_index(actions).unsqueeze(-1)).squeeze(-1)  # [B]
    bootstrap = next_q_global_target.gather(-1, joint_action_index(next_greedy_actions).unsqueeze(-1)).squeeze(-1)
    alive = (~terminated.to(torch.bool)).to(q_global.dtype)
    target = (reward + gamma * alive * bootstrap).detach()
    return ((taken - target) ** 2).mean()


def consistency_loss(q_local: torch.Tensor, q_global: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """``mean_b (mean_k Q_loc(o_k, a_k) - Q_glob(s, a))^2`` (both sides keep their gradients)."""
    local_mean = q_local.gather(-1, actions.to(torch.int64).unsqueeze(-1)).squeeze(-1).mean(-1)  # [B]
    global_taken = q_global.gather(-1, joint_action_index(actions).unsqueeze(-1)).squeeze(-1)  # [B]
    return ((local_mean - global_taken) ** 2).mean()


def qcombo_loss(
    q_local: torch.Tensor,
    q_global: torch.Tensor,
    actions: torch.Tensor,
    rewards: torch.Tensor,
    reward: torch.Tensor,
    next_q_local_target: torch.Tensor,
    next_q_global_target: torch.Tensor,
    next_greedy_actions: torch.Tensor,
    terminated: torch.Tensor,
    gamma: float = 0.95,
    beta: float = QCOMBO_BETA,
) -> QcomboLosses:
    """``L_ind + L_glob + beta L_cons`` and its terms (shapes in the module docstring; gamma 0.95 the authors')."""
    local = local_td_loss(q_local, actions, rewards, next_q_local_target, terminated, gamma)
    global_ = global_td_loss(q_global, actions, reward, next_q_global_target, next_greedy_actions, terminated, gamma)
    consistency = consistency_loss(q_local, q_global, actions)
    return QcomboLosses(local + global_ + beta * consistency, local, global_, consistency)


def qcombo_loss_from_nets(
    local_net: Any,
    global_net: Any,
    local_target: Any,
    global_target: Any,
    batch: dict[str, torch.Tensor],
    gamma: float = 0.95,
    beta: float = QCOMBO_BETA,
) -> QcomboLosses:
    """:func:`qcombo_loss` on a replay batch: ``obs [B, N, D]``, ``state [B, S]``, ``actions [B, N]``,
    ``agent_reward [B, N]``, ``reward [B]``, ``next_obs``, ``next_state``, ``terminated [B]``.

    ``local_net`` maps ``[..., D]`` to ``[..., 2]`` (shared by the lights), ``global_net`` ``[B, S]`` to
    ``[B, 2^N]``; the ``*_target`` nets are their target copies. Targets are computed without gradients; the
    greedy next joint action comes from the online local net (the authors' choice), its value from the target
    global net.
    """
    q_local = local_net(batch["obs"])  # [B, N, 2]
    q_global = global_net(batch["state"])  # [B, 2^N]
    with torch.no_grad():
        next_greedy = local_net(batch["next_obs"]).argmax(-1)  # [B, N]
        next_q_local_target = local_target(batch["next_obs"])
        next_q_global_target = global_target(batch["next_state"])
    return qcombo_loss(
        q_local,
        q_global,
        batch["actions"],
        batch["agent_reward"],
        batch["reward"],
        next_q_local_target,
        next_q_global_target,
        next_greedy,
        batch["terminated"],
        gamma,
        beta,
    )
