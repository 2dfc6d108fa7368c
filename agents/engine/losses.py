"""Shared pure math: TD targets, Polyak averaging, quantile regression.

Every function is pure (no module state) and documented with its equation and tensor shapes, so an
algorithm's loss reads as a composition of these.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch


def td_target(reward: torch.Tensor, terminated: torch.Tensor, next_value: torch.Tensor, gamma: float) -> torch.Tensor:
    """y = r + gamma * (1 - terminated) * V(s').

    Only ``terminated`` stops bootstrapping; a time-limit truncation still bootstraps from the true
    final observation. Shapes broadcast: reward ``[B]``, terminated ``[B]`` (bool or float),
    next_value ``[B]`` or ``[K, B]``.
    """
    return reward + gamma * (1.0 - terminated.to(reward.dtype)) * next_value


@torch.no_grad()
def polyak_update(online: Iterable[torch.Tensor], target: Iterable[torch.Tensor], polyak: float) -> None:
    """theta_target <- (1 - polyak) * theta_target + polyak * theta_online, in place, fused.

    ``polyak`` is the step size towards the online weights (SAC's tau, 0.005 by default).
    """
    target = list(target)
    torch._foreach_lerp_(target, list(online), polyak)


@torch.no_grad()
def hard_update(online: Iterable[torch.Tensor], target: Iterable[torch.Tensor]) -> None:
    """theta_target <- theta_online."""
    for t, o in zip(target, online):
        t.copy_(o)


def quantile_huber_loss(
    pred: torch.Tensor, target: torch.Tensor, taus: torch.Tensor, kappa: float = 1.0
) -> torch.Tensor:
    """Quantile-Huber loss of IQN / QR-DQN, per sample.

    pred ``[B, N]`` at fractions taus ``[B, N]``; target ``[B, M]`` (detached by the caller).
    u_ij = target_j - pred_i;  rho_tau(u) = |tau - 1{u < 0}| * L_kappa(u) / kappa;
    loss_b = sum_i mean_j rho_{tau_i}(u_ij). Returns ``[B]``.
    """
    u = target.unsqueeze(-2) - pred.unsqueeze(-1)  # [B, N, M]
    abs_u = u.abs()
    huber = torch.where(abs_u <= kappa, 0.5 * u.pow(2), kappa * (abs_u - 0.5 * kappa))
    weight = (taus.unsqueeze(-1) - (u.detach() < 0).to(u.dtype)).abs()
    return (weight * huber / kappa).mean(-1).sum(-1)
