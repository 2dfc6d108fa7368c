"""Soft Q-learning losses for fixed-length token episodes: RLPrompt's v1 / v2 / v3 / v2_v3 and PIN's Monte-Carlo v1.

Papers: Deng et al., "RLPrompt: Optimizing Discrete Text Prompts with Reinforcement Learning",
EMNLP 2022 (arXiv 2205.12548), whose losses port Guo et al., "Efficient (Soft) Q-Learning for Text
Generation with Limited Good Data", Findings of EMNLP 2022 (arXiv 2106.07704); Choi et al., "Hard
Prompts Made Interpretable: Sparse Entropy Regularization for Prompt Tuning with RL" (PIN), ACL 2024
(arXiv 2407.14733), which replaces logsumexp by spmax in the same losses.

One episode writes tokens a_0 .. a_{T-1}; the reward r arrives after the last one (all other rewards
0). With a regularizer strategy (``agents.prompt.sparse``: softmax or sparsemax, temperature alpha):

    Q_t  = Q_theta(s_t, a_t)                 V_t  = alpha Omega*(Q_theta(s_t, .) / alpha)
    A_t  = Q_t - V_t                         Vb_t = alpha Omega*(Q_target(s_t, .) / alpha), no gradient
    (Omega* = logsumexp for softmax, so A_t = alpha log pi(a_t|s_t); spmax for sparsemax)

    per-step squared residual e_t^2, loss = mean_b sum_t e_bt^2    (sum over time, mean over batch)

    v1     e_t = Q_t - y_t,  y_t = gamma Vb_{t+1} (t < T-1),  y_{T-1} = r        one-step soft Bellman
    v1_mc  e_t = Q_t - gamma^{T-1-t} r                                            Monte-Carlo regression
    v2     e_t = A_t - (gamma Vb_{t+1} - Vb_t) (t < T-1),  A_{T-1} - (r - Vb_{T-1})   single-step PCL
    v3     e_t = sum_{k>=0} gamma^k A_{t+k} - (gamma^{T-1-t} r - Vb_t)             multi-step PCL
    v2_v3  1/2 (e2_t^2 + e3_t^2)                                                    RLPrompt's default

Why v2 / v3: the optimal regularized policy satisfies r_t + gamma V(s_{t+1}) - V(s_t) = A_t at every
step (path consistency); summing it along the rest of the episode (V = 0 after the last token)
gives v3. For sparsemax the same identity holds with A_t = Q_t - spmax, which is
pi_t - (1 + ||pi||^2) / 2 on the support.

Deviations from the reference: PIN's released commands call ``loss_impl=v1``, which in the PIN code
is the Monte-Carlo regression; RLPrompt's ``v1`` is the bootstrapped one-step target. Both exist
here under distinct names, ``v1_mc`` (PIN's released v1) and ``v1`` (RLPrompt's). RLPrompt's
reversed terms (``v2r``, ``v3r``) are inactive by default there and are not implemented. Only
fixed-length episodes are supported (no sequence-length masking). ``gamma`` discounts v3 too
(sum_k gamma^k A_{t+k} against gamma^{T-1-t} r - Vb_t, the discounted telescoping sum); the
references use gamma = 1 there, where the two agree.
"""

from __future__ import annotations

import torch
from torch import nn

from agents.engine.losses import polyak_update
from agents.prompt.sparse import Regularizer

LOSSES = ("v1", "v1_mc", "v2", "v3", "v2_v3")


def gather_actions(q: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """Q_t = q[b, t, a_bt]: q ``[B, T, V]``, actions ``[B, T]`` long -> ``[B, T]``."""
    return q.gather(-1, actions.unsqueeze(-1)).squeeze(-1)


def discounts_to_go(length: int, gamma: float, like: torch.Tensor) -> torch.Tensor:
    """gamma^{T-1-t} for t = 0..T-1: ``[T]`` (the reward's discount seen from step t)."""
    exponent = torch.arange(length - 1, -1, -1, device=like.device, dtype=like.dtype)
    return torch.as_tensor(gamma, dtype=like.dtype, device=like.device).pow(exponent)


def one_step_targets(target_value: torch.Tensor, reward: torch.Tensor, gamma: float) -> torch.Tensor:
    """y_t = gamma Vb_{t+1} for t < T-1 and y_{T-1} = r: target_value ``[B, T]``, reward ``[B]`` -> ``[B, T]``."""
    return torch.cat([gamma * target_value[:, 1:], reward.unsqueeze(-1).to(target_value.dtype)], dim=1)


def reverse_discounted_cumsum(x: torch.Tensor, gamma: float) -> torch.Tensor:
    """c_t = sum_{k>=0} gamma^k x_{t+k} along dim 1: ``[B, T] -> [B, T]`` (T is a prompt length, a few steps)."""
    steps = x.shape[1]
    t = torch.arange(steps, device=x.device)
    power = (t.unsqueeze(0) - t.unsqueeze(1)).to(x.dtype)  # [t, t'] = t' - t
    weight = torch.where(power >= 0, torch.as_tensor(gamma, dtype=x.dtype, device=x.device).pow(power.clamp(min=0)), 0)
    return x @ weight.T  # c[b, t] = sum_t' x[b, t'] weight[t, t']


def per_step_losses(
    q: torch.Tensor,
    q_target: torch.Tensor,
    actions: torch.Tensor,
    reward: torch.Tensor,
    regularizer: Regularizer,
    implementation: str = "v2_v3",
    gamma: float = 1.0,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Squared per-step residuals ``[B, T]`` of one loss and the quantities behind them.

    q ``[B, T, V]`` online Q-values (with gradient), q_target ``[B, T, V]`` target Q-values (detached
    here), actions ``[B, T]`` long, reward ``[B]`` (after the last token), mask ``[B, T, V]`` bool
    (True = allowed, the LM filter; the same mask serves the target since it depends only on the
    state) or None. Returns ``(losses [B, T], parts)`` with parts ``q_taken``, ``value``,
    ``target_value`` (each ``[B, T]``, detached).
    """
    if implementation not in LOSSES:
        raise ValueError(f"unknown loss {implementation!r}; choose from {', '.join(LOSSES)}")
    if q.shape != q_target.shape or q.dim() != 3 or actions.shape != q.shape[:2] or reward.shape != q.shape[:1]:
        raise ValueError(
            f"shapes: q {tuple(q.shape)} and q_target {tuple(q_target.shape)} must be [B, T, V], "
            f"actions {tuple(actions.shape)} [B, T], reward {tuple(reward.shape)} [B]"
        )
    reward = reward.to(q.dtype)
    q_taken = gather_actions(q, actions)  # [B, T]
    # the target network only supplies constants (its own gradient would chase the online one)
    target_value = regularizer.value(q_target.detach(), mask)  # [B, T]
    parts = {"q_taken": q_taken.detach(), "target_value": target_value}
    if implementation == "v1_mc":
        # PIN's released loss: no bootstrapping; the regularizer acts only through the behaviour policy
        losses = (q_taken - discounts_to_go(q.shape[1], gamma, q) * reward.unsqueeze(-1)).pow(2)
        parts["value"] = regularizer.value(q.detach(), mask)
        return losses, parts
    if implementation == "v1":
        losses = (q_taken - one_step_targets(target_value, reward, gamma)).pow(2)
        parts["value"] = regularizer.value(q.detach(), mask)
        return losses, parts
    value = regularizer.value(q, mask)  # [B, T], differentiable: A_t = Q_t - V_t
    advantage = q_taken - value
    parts["value"] = value.detach()
    terms = []
    if implementation in ("v2", "v2_v3"):
        # single-step path consistency: A_t = r_t + gamma Vb_{t+1} - Vb_t
        terms.append((advantage - (one_step_targets(target_value, reward, gamma) - target_value)).pow(2))
    if implementation in ("v3", "v2_v3"):
        # multi-step: the rest of the path, sum_k gamma^k A_{t+k} = gamma^{T-1-t} r - Vb_t
        to_go = discounts_to_go(q.shape[1], gamma, q) * reward.unsqueeze(-1)
        terms.append((reverse_discounted_cumsum(advantage, gamma) - (to_go - target_value)).pow(2))
    losses = terms[0] if len(terms) == 1 else 0.5 * (terms[0] + terms[1])
    return losses, parts


def soft_q_loss(
    q: torch.Tensor,
    q_target: torch.Tensor,
    actions: torch.Tensor,
    reward: torch.Tensor,
    regularizer: Regularizer,
    implementation: str = "v2_v3",
    gamma: float = 1.0,
    mask: torch.Tensor | None = None,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """loss = mean_b sum_t e_bt^2 for the chosen ``implementation`` (see the module docstring).

    Shapes as :func:`per_step_losses`. Returns the 0-dim loss and detached 0-dim metrics:
    ``train/q_taken``, ``train/value``, ``train/target_value`` (means), ``train/support_size`` (mean
    number of tokens with non-zero probability under the online policy; the sparse policy's
    naturalness diagnostic) and ``loss/per_step`` (mean over batch and time).
    """
    losses, parts = per_step_losses(q, q_target, actions, reward, regularizer, implementation, gamma, mask)
    loss = losses.sum(1).mean()
    metrics = {
        "train/q_taken": parts["q_taken"].mean(),
        "train/value": parts["value"].mean(),
        "train/target_value": parts["target_value"].mean(),
        "train/support_size": regularizer.support_size(q.detach(), mask).float().mean(),
        "loss/per_step": losses.detach().mean(),
    }
    return loss, metrics


def polyak_target(online: nn.Module, target: nn.Module, polyak: float) -> None:
    """theta_target <- (1 - polyak) theta_target + polyak theta_online over the parameters, in place.

    RLPrompt and PIN call it before every training step with polyak = 0.001; polyak = 1 is a copy.
    """
    polyak_update(online.parameters(), target.parameters(), polyak)
