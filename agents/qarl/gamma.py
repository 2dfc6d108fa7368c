"""The Gamma teacher's closed forms: KL between Gamma distributions, importance weights of pairs drawn
under an earlier Gamma, the effective sample size, the KL trust region on the shape, and the discounted
returns the teacher is fed (see :mod:`agents.qarl.teacher` for the curriculum that uses them)."""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import special


def gamma_kl(shape_p: float, shape_q: float, rate_p: float = 1.0, rate_q: float | None = None) -> float:
    """KL(Gamma(k_p, b_p) || Gamma(k_q, b_q)) for the shape/rate parametrization (pdf ∝ x^(k-1) e^(-b x)).

        KL = (k_p - k_q) psi(k_p) - lnGamma(k_p) + lnGamma(k_q) + k_q (ln b_p - ln b_q) + k_p (b_q - b_p) / b_p

    With one shared rate (``rate_q`` None means ``rate_q = rate_p``) the last two terms vanish, so the
    value does not depend on the rate. Scalars in, a float out (float64 throughout).
    """
    rate_q = rate_p if rate_q is None else rate_q
    kl = (shape_p - shape_q) * special.digamma(shape_p) - special.gammaln(shape_p) + special.gammaln(shape_q)
    kl += shape_q * (math.log(rate_p) - math.log(rate_q)) + shape_p * (rate_q - rate_p) / rate_p
    return float(kl)


def log_importance_weights(alphas: np.ndarray, shape: float, old_shape: float, rate: float) -> np.ndarray:
    """log w_i = log Gamma_pdf(alpha_i; k, b) - log Gamma_pdf(alpha_i; k_old, b) for ``alphas [M]`` (> 0).

        log w_i = (k - k_old) (ln alpha_i + ln b) - lnGamma(k) + lnGamma(k_old)

    Returns ``[M]`` float64.
    """
    alphas = np.asarray(alphas, dtype=np.float64)
    return (shape - old_shape) * (np.log(alphas) + math.log(rate)) - special.gammaln(shape) + special.gammaln(old_shape)


def importance_weighted_performance(
    alphas: np.ndarray, returns: np.ndarray, shape: float, old_shape: float, rate: float
) -> float:
    """J_hat(k) = 1/M sum_i w_i(k) J_i for pairs drawn from Gamma(k_old, b); ``alphas, returns [M]``.

    May be +-inf or nan when a weight overflows; callers treat a non-finite value as infeasible.
    """
    with np.errstate(over="ignore", invalid="ignore"):
        weights = np.exp(log_importance_weights(alphas, shape, old_shape, rate))
        return float(np.mean(weights * np.asarray(returns, dtype=np.float64)))


def effective_sample_size(alphas: np.ndarray, shape: float, old_shape: float, rate: float) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2 of the importance weights, in [1, M] (nan if they overflow)."""
    log_w = log_importance_weights(alphas, shape, old_shape, rate)
    log_w = log_w - np.max(log_w)  # the ratio is scale free, so shift for stability
    weights = np.exp(log_w)
    return float(weights.sum() ** 2 / np.square(weights).sum())


def last_true(predicate, good: float, bad: float, iterations: int = 80) -> float:
    """Bisection between ``good`` (predicate True) and ``bad`` (False); returns a point where it is True.

    Assumes one change of the predicate between them; 80 halvings reach float64 resolution for any
    interval the teacher uses, and the answer is always the ``good`` side, so it is feasible by
    construction (a root finder could land a hair outside the constraint).
    """
    for _ in range(iterations):
        middle = 0.5 * (good + bad)
        if middle in (good, bad):
            break
        if predicate(middle):
            good = middle
        else:
            bad = middle
    return good


def trust_region(old_shape: float, max_kl: float, min_shape: float) -> tuple[float, float]:
    """The interval ``[k_lo, k_hi]`` of shapes k >= ``min_shape`` with KL(Gamma(k, b) || Gamma(k_old, b)) <= eps.

    d/dk KL(k || k_old) = (k - k_old) psi'(k): the KL falls to 0 at k_old and rises on both sides,
    so each end is one bisection (the upper bracket found by doubling).
    """
    inside = lambda k: gamma_kl(k, old_shape) <= max_kl
    low = min_shape if inside(min_shape) else last_true(inside, old_shape, min_shape)
    upper = 2.0 * old_shape + 1.0
    while inside(upper) and upper < 1e15:
        upper *= 2.0
    high = upper if inside(upper) else last_true(inside, old_shape, upper)
    return low, high


def discounted_returns(
    rewards: torch.Tensor,
    dones: torch.Tensor,
    gamma: float,
    carry: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
    """Per-episode discounted return so far, for ``rewards [T, N]`` and episode-end flags ``dones [T, N]``.

        G[t, n] = sum_{j = start}^{t} gamma^(j - start) r[j, n]

    where ``start`` is the first step of the episode that step t belongs to (a step with ``dones``
    True is the last of its episode, terminated or truncated alike). ``G[dones]`` are the discounted
    returns of the episodes that ended in this chunk (the teacher's J_e), in time-major order.
    ``carry = (running sum [N], current discount gamma^t [N])`` continues episodes across chunks
    (None: every env starts an episode at row 0); the returned carry feeds the next call. Returns
    ``(G [T, N] float, carry)``; one vectorized step per row, no per-env loop.
    """
    if rewards.shape != dones.shape or rewards.dim() != 2:
        raise ValueError(f"rewards and dones must both be [T, N], got {tuple(rewards.shape)} and {tuple(dones.shape)}")
    num_envs = rewards.shape[1]
    if carry is None:
        running = torch.zeros(num_envs, dtype=rewards.dtype, device=rewards.device)
        discount = torch.ones(num_envs, dtype=rewards.dtype, device=rewards.device)
    else:
        running, discount = (c.to(rewards.dtype).clone() for c in carry)
    out = torch.empty_like(rewards)
    for t in range(rewards.shape[0]):
        running = running + discount * rewards[t]
        out[t] = running
        ended = dones[t].bool()
        # A finished episode restarts at the next row: sum 0, discount gamma^0.
        running = torch.where(ended, torch.zeros_like(running), running)
        discount = torch.where(ended, torch.ones_like(discount), discount * gamma)
    return out, (running, discount)
