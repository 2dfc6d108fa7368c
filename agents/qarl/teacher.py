"""QARL's temperature teacher: a self-paced, KL-constrained curriculum over the adversary's temperature.

Paper: Reddi, Tölle, Peters, Chalvatzaki, D'Eramo, "Robust Adversarial Reinforcement Learning via
Bounded Rationality Curricula", ICLR 2024 (arXiv:2311.01642). The teacher follows self-paced
deep RL (Klink et al., "A Probabilistic Interpretation of Self-Paced Learning with Applications to
Reinforcement Learning", JMLR 2021).

The adversary's entropy temperature alpha is drawn once per episode from ``p_k = Gamma(k, b)``
(shape k, *fixed* rate b; mean k/b, variance k/b^2). Training starts near-random (k0 = 50, b = 1000:
mean 0.05) and moves towards the almost rational target ``p_T = Gamma(k_T, b)`` (k_T = 1: mean
0.001). After every M (temperature, discounted return) pairs (alpha_i, J_i), all drawn from the
current ``p_{k_old}``, the teacher solves

    minimize_k   KL(Gamma(k, b) || Gamma(k_T, b))
    subject to   KL(Gamma(k, b) || Gamma(k_old, b)) <= eps                  (trust region)
                 J_hat(k) = 1/M sum_i w_i(k) J_i >= xi                      (performance floor)
                 k >= k_min
    w_i(k) = Gamma_pdf(alpha_i; k, b) / Gamma_pdf(alpha_i; k_old, b)
    log w_i = (k - k_old) (ln alpha_i + ln b) - lnGamma(k) + lnGamma(k_old)

with the same-rate closed form ``KL(Gamma(k1, b) || Gamma(k2, b)) = (k1 - k2) psi(k1) - lnGamma(k1)
+ lnGamma(k2)``. Gate: the problem is only solved when the plain mean return J_hat(k_old) reaches xi
(this sets a "threshold reached once" flag); otherwise the distribution stays where it is. The
teacher never moves back towards higher temperatures.

Curriculum variants (``TeacherConfig.variant``; the paper's ablations):

- ``self_paced``: the above (QARL).
- ``single``: the same teacher, but one draw per call of ``sample`` shared by every episode.
- ``homogeneous``: the same teacher; the learner would also use alpha as the protagonist's temperature.
  QARL's phase loop refuses it (``agents.qarl.loop.check``): an ablation, not QARL.
- ``force``: the same teacher; ``force_budget`` maps a draw to a force limit
  ``F = clip((-alpha + m0 + mT) F_max / m0, 0, F_max)`` with m0 = k0/b and mT = k_T/b (a baseline
  whose curriculum grows the adversary's force instead of its rationality). QARL's phase loop refuses
  it: it needs a plain SAC adversary and a per-episode force limit.
- ``linear``: one alpha for every episode, falling linearly from k0/b to k_T/b over the first
  ``linear_fraction`` of training (``set_progress``, which the phase loop calls with env steps done /
  total at the start of every iteration), then flat. ``update`` never changes it.
- ``point``: one alpha, starting at k0/b; every update whose mean return exceeds xi lowers it by
  ``point_step`` (default 1/b, i.e. 0.001 at b = 1000), never below ``point_floor``.

Deviations from the reference: the authors solve the problem with scipy's ``trust-constr``
(``solver="trust_constr"`` runs it, with analytic derivatives; being an interior-point method it stops
just inside the trust region, KL ~ 0.49 instead of 0.5). The default is a bracketed 1-D search, which
the problem admits and which is exact and deterministic. KL(. || k_old) falls and then rises in k (its
derivative is (k - k_old) psi'(k)), so the trust region is an interval [k_lo, k_hi] around k_old,
found by bisection; the objective is unimodal with its minimum at k_T, so without the performance
floor the answer is k_T clipped into that interval. The floor is checked on a grid along the
segment from k_old to that point, and the move stops at the first crossing of xi (refined by
bisection): the point a feasible-path solver started at k_old reaches (the reference keeps its
iterates feasible). Every accepted k satisfies both constraints exactly, so the reference's
fallbacks (accept an unsuccessful solve only if feasible and improving; keep k on an exception)
reduce to "keep k when no feasible move exists". Non-finite importance weights (a tiny alpha under a
large shape change) count as infeasible. The reference drops the lower bound on k once
KL(p_k_old || p_T) <= 0.01; a 1-D search towards k_T never approaches the bound, so it is always on.
Samples come from ``torch._standard_gamma`` (the sampler behind ``torch.distributions.Gamma``),
which takes a ``torch.Generator``; samples are not clipped (the reference's bounds are infinite).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from scipy import special

from agents.engine.config import Config, ConfigError, check_finite, doc, validate
from agents.qarl.gamma import (
    effective_sample_size,
    gamma_kl,
    importance_weighted_performance,
    last_true,
    log_importance_weights,
    trust_region,
)

VARIANTS = ("self_paced", "linear", "point", "single", "homogeneous", "force")
SOLVERS = ("bracket", "trust_constr")
# Variants whose distribution is moved by the self-paced Gamma update.
_GAMMA_VARIANTS = ("self_paced", "single", "homogeneous", "force")


@dataclass(frozen=True)
class TeacherConfig(Config):
    """Settings of the adversary-temperature curriculum (defaults: the authors' code, rewards in [0, 1])."""

    variant: str = doc(
        "curriculum: self_paced (QARL), single, homogeneous, force, linear or point", "self_paced", choices=VARIANTS
    )
    rate: float = doc(
        "Gamma rate b, fixed; temperatures scale as 1/b, so use 1000/c for a per-step reward scale c", 1000.0, gt=0
    )
    initial_shape: float = doc("initial Gamma shape k0; initial mean temperature k0/b", 50.0, gt=0)
    target_shape: float = doc("target Gamma shape k_T; the curriculum moves towards Gamma(k_T, b)", 1.0, gt=0)
    max_kl: float = doc("trust region eps: KL(new || old) of one update is at most this", 0.5, gt=0)
    threshold: float = doc(
        "performance floor xi (discounted-return units): the teacher moves only when the mean return of the pairs "
        "reaches it",
        10.0,
        check=check_finite,
    )
    min_pairs: int = doc("(temperature, return) pairs per teacher update M; the pairs are cleared after it", 30, ge=1)
    max_pairs: int = doc("most recent pairs kept while waiting for an update (>= min_pairs)", 100, ge=1)
    min_shape: float = doc("lower bound on the shape k", 1e-8, gt=0)
    solver: str = doc(
        "update solver: 'bracket' (exact 1-D search) or 'trust_constr' (scipy's trust-constr, as the authors)",
        "bracket",
        choices=SOLVERS,
    )
    search_points: int = doc("bracket solver: grid points on which the floor is checked along a move", 65, ge=2)
    linear_fraction: float = doc(
        "linear variant: fraction of training over which the temperature falls from k0/b to k_T/b",
        2.0 / 3.0,
        gt=0,
        le=1,
    )
    point_step: float | None = doc(
        "point variant: temperature decrement per update whose mean return exceeds xi; None means 1/b", None, gt=0
    )
    point_floor: float = doc("point variant: lowest temperature", 1e-8, ge=0)

    def check(self) -> None:
        """Cross-field rules (single-field ranges are checked by ``validate``): ConfigError naming the keys."""
        if self.max_pairs < self.min_pairs:
            raise ConfigError(f"teacher.max_pairs={self.max_pairs} must be >= teacher.min_pairs={self.min_pairs}")
        if self.initial_shape < self.min_shape or self.target_shape < self.min_shape:
            raise ConfigError(f"teacher.initial_shape and teacher.target_shape must be >= min_shape={self.min_shape}")


# --------------------------------------------------------------------------------------------------
# The teacher


class GammaTeacher:
    """The adversary-temperature curriculum; see the module docstring.

    ``sample(count, generator)`` draws the temperatures of the next episodes; ``update(alphas,
    returns)`` records the pairs of finished episodes and, once ``min_pairs`` have accumulated, runs
    one update and clears them. ``state_dict`` holds only numbers and CPU tensors.
    """

    def __init__(self, config: TeacherConfig | None = None):
        self.config = config or TeacherConfig()
        validate(self.config)  # built in code or from overrides: the same one-line errors
        cfg = self.config
        self.shape = float(cfg.initial_shape)
        self.threshold_reached = False
        self.point_alpha = cfg.initial_shape / cfg.rate
        self.progress = 0.0
        self.updates = 0  # teacher updates run (gate evaluated), accepted or not
        self._alphas = torch.zeros(0, dtype=torch.float64)
        self._returns = torch.zeros(0, dtype=torch.float64)

    # ---------------------------------------------------------------- distribution
    @property
    def rate(self) -> float:
        return float(self.config.rate)

    @property
    def mean_alpha(self) -> float:
        """The temperature the current curriculum centres on: k/b, or the variant's single alpha."""
        if self.config.variant == "linear":
            return self._linear_alpha()
        if self.config.variant == "point":
            return self.point_alpha
        return self.shape / self.rate

    def _linear_alpha(self) -> float:
        cfg = self.config
        start, end = cfg.initial_shape / cfg.rate, cfg.target_shape / cfg.rate
        fraction = min(self.progress / cfg.linear_fraction, 1.0)
        return start + (end - start) * fraction

    def set_progress(self, fraction: float) -> None:
        """Tell the linear variant how far training is (env steps done / total), clipped to [0, 1]."""
        self.progress = float(min(max(fraction, 0.0), 1.0))

    def sample(self, count: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Temperatures for the next ``count`` episodes: ``[count]`` float32 on the CPU.

        Gamma variants draw ``alpha = X / b`` with ``X ~ Gamma(k, 1)`` (``single``: one draw repeated);
        ``linear`` and ``point`` repeat their current alpha and draw nothing.
        """
        variant = self.config.variant
        if variant in ("linear", "point"):
            return torch.full((count,), self.mean_alpha, dtype=torch.float32)
        draws = 1 if variant == "single" else count
        concentration = torch.full((draws,), self.shape, dtype=torch.float64)
        alphas = torch._standard_gamma(concentration, generator=generator) / self.rate
        return alphas.expand(count).float().clone() if variant == "single" else alphas.float()

    def force_budget(self, alphas: torch.Tensor, force_max: float) -> torch.Tensor:
        """Force-curriculum variant: ``F = clip((-alpha + m0 + mT) F_max / m0, 0, F_max)``, same shape as alphas.

        m0 = k0/b, mT = k_T/b: the initial mean temperature gives F ~ F_max mT/m0 (small), the target
        mean gives F_max; the lower the temperature, the stronger the adversary.
        """
        cfg = self.config
        start, end = cfg.initial_shape / cfg.rate, cfg.target_shape / cfg.rate
        return ((-alphas + start + end) * (force_max / start)).clamp(0.0, force_max)

    # ---------------------------------------------------------------- update
    def kl_to_target(self, shape: float | None = None) -> float:
        """KL(Gamma(k, b) || Gamma(k_T, b)) for the current (or given) shape."""
        return gamma_kl(self.shape if shape is None else shape, self.config.target_shape)

    def update(self, alphas: Any, returns: Any) -> dict[str, float]:
        """Record pairs ``alphas [E]``, ``returns [E]`` (discounted protagonist returns) and maybe update.

        Once ``min_pairs`` pairs are held (at most the ``max_pairs`` most recent), the variant's update
        runs on them and they are cleared. Returns floats: ``updated`` (1 if an update ran), ``accepted``
        (1 if it changed the curriculum), ``kl`` (KL(new || old), 0 when unchanged), ``kl_target``
        (KL(new || target)), ``performance`` (mean return of the pairs, J_hat(k_old); nan while
        waiting), ``performance_new`` (J_hat at the new shape), ``floor`` (xi), ``shape`` (k),
        ``scale`` (1/b), ``mean_alpha``, ``pairs`` (pairs used or held), ``threshold_reached``, and
        ``ess`` (effective sample size of the weights at the new shape).
        """
        alphas = torch.as_tensor(alphas, dtype=torch.float64).detach().cpu().flatten()
        returns = torch.as_tensor(returns, dtype=torch.float64).detach().cpu().flatten()
        if alphas.shape != returns.shape:
            raise ValueError(
                f"alphas and returns must have the same length, got {alphas.numel()} and {returns.numel()}"
            )
        self._alphas = torch.cat([self._alphas, alphas])[-self.config.max_pairs :]
        self._returns = torch.cat([self._returns, returns])[-self.config.max_pairs :]
        held = int(self._alphas.numel())
        if held < self.config.min_pairs:
            return self._report(updated=False, accepted=False, old_shape=self.shape, performance=math.nan, pairs=held)
        pair_alphas, pair_returns = self._alphas.numpy(), self._returns.numpy()
        self._alphas = self._alphas[:0]
        self._returns = self._returns[:0]
        self.updates += 1
        performance = float(pair_returns.mean())
        old_shape = self.shape
        variant = self.config.variant
        accepted = False
        if variant == "point":
            if performance > self.config.threshold:
                self.threshold_reached = True
                step = self.config.point_step if self.config.point_step is not None else 1.0 / self.rate
                new_alpha = max(self.point_alpha - step, self.config.point_floor)
                accepted = new_alpha != self.point_alpha
                self.point_alpha = new_alpha
        elif variant in _GAMMA_VARIANTS and performance >= self.config.threshold:
            self.threshold_reached = True
            new_shape = self.solve(pair_alphas, pair_returns)
            accepted = new_shape != old_shape
            self.shape = new_shape
        # linear: the schedule is set by progress, never by returns.
        return self._report(
            updated=True,
            accepted=accepted,
            old_shape=old_shape,
            performance=performance,
            pairs=len(pair_alphas),
            pair_data=(pair_alphas, pair_returns),
        )

    def solve(self, alphas: np.ndarray, returns: np.ndarray) -> float:
        """The new shape from pairs ``alphas, returns [M]`` drawn under the current shape (config ``solver``).

        Returns the current shape when no move is feasible (performance below the floor at the first
        step, weights that blow up, or a failed solve).
        """
        alphas = np.maximum(np.asarray(alphas, dtype=np.float64), np.finfo(np.float64).tiny)  # float32 underflow
        returns = np.asarray(returns, dtype=np.float64)
        if self.config.solver == "trust_constr":
            return self._solve_trust_constr(alphas, returns)
        return self._solve_bracket(alphas, returns)

    def _solve_bracket(self, alphas: np.ndarray, returns: np.ndarray) -> float:
        """The bracketed search of the module docstring, from the current shape."""
        cfg = self.config
        old = self.shape
        low, high = trust_region(old, cfg.max_kl, cfg.min_shape)
        goal = min(max(cfg.target_shape, low), high)  # KL to the target is unimodal with its minimum at k_T
        if goal == old:
            return old

        def feasible(k: float) -> bool:
            value = importance_weighted_performance(alphas, returns, k, old, cfg.rate)
            return math.isfinite(value) and value >= cfg.threshold and gamma_kl(k, old) <= cfg.max_kl

        # Walk from k_old towards the goal; stop at the first point where the floor fails.
        path = np.linspace(old, goal, cfg.search_points)
        previous = old
        for k in path[1:]:
            k = float(k)
            if not feasible(k):
                return last_true(feasible, previous, k)
            previous = k
        return float(goal)

    def _solve_trust_constr(self, alphas: np.ndarray, returns: np.ndarray) -> float:
        """scipy's ``trust-constr`` from the current shape, with analytic derivatives (the authors' solver).

            d/dk KL(k || k2)  = (k - k2) psi'(k)
            d/dk J_hat(k)     = 1/M sum_i w_i(k) (ln alpha_i + ln b - psi(k)) J_i

        Both constraints and the bound are kept feasible along the iterates (gtol 1e-4, xtol 1e-6).
        Accepts a successful result; an unsuccessful one only if it satisfies both constraints and
        improves the objective; keeps the current shape on any exception.
        """
        from scipy.optimize import Bounds, NonlinearConstraint, minimize

        cfg = self.config
        old = self.shape
        log_terms = np.log(alphas) + math.log(cfg.rate)

        def objective(x: np.ndarray) -> tuple[float, np.ndarray]:
            return gamma_kl(x[0], cfg.target_shape), np.array([(x[0] - cfg.target_shape) * special.polygamma(1, x[0])])

        def performance(x: np.ndarray) -> float:
            return importance_weighted_performance(alphas, returns, x[0], old, cfg.rate)

        def performance_jac(x: np.ndarray) -> np.ndarray:
            weights = np.exp(log_importance_weights(alphas, x[0], old, cfg.rate))
            return np.array([np.mean(weights * (log_terms - special.digamma(x[0])) * returns)])

        trust = NonlinearConstraint(
            lambda x: gamma_kl(x[0], old),
            -np.inf,
            cfg.max_kl,
            jac=lambda x: np.array([(x[0] - old) * special.polygamma(1, x[0])]),
            keep_feasible=True,
        )
        floor = NonlinearConstraint(performance, cfg.threshold, np.inf, jac=performance_jac, keep_feasible=True)
        try:
            with np.errstate(all="ignore"):
                result = minimize(
                    objective,
                    np.array([old]),
                    method="trust-constr",
                    jac=True,
                    bounds=Bounds(cfg.min_shape, np.inf, keep_feasible=True),
                    constraints=[trust, floor],
                    options={"gtol": 1e-4, "xtol": 1e-6},
                )
        except Exception:  # the reference's fallback: keep the old distribution
            return old
        new = float(result.x[0])
        if not math.isfinite(new) or new < cfg.min_shape:
            return old
        if result.success:
            return new
        feasible = gamma_kl(new, old) <= cfg.max_kl and performance(result.x) >= cfg.threshold
        return new if feasible and objective(result.x)[0] < objective(np.array([old]))[0] else old

    def _report(
        self,
        *,
        updated: bool,
        accepted: bool,
        old_shape: float,
        performance: float,
        pairs: int,
        pair_data: tuple[np.ndarray, np.ndarray] | None = None,
    ) -> dict[str, float]:
        shape = self.shape
        performance_new, ess = math.nan, math.nan
        if pair_data is not None:
            alphas = np.maximum(pair_data[0], np.finfo(np.float64).tiny)
            performance_new = importance_weighted_performance(alphas, pair_data[1], shape, old_shape, self.rate)
            ess = effective_sample_size(alphas, shape, old_shape, self.rate)
        return {
            "updated": float(updated),
            "accepted": float(accepted),
            "kl": gamma_kl(shape, old_shape),
            "kl_target": self.kl_to_target(),
            "performance": float(performance),
            "performance_new": float(performance_new),
            "floor": float(self.config.threshold),
            "shape": shape,
            "scale": 1.0 / self.rate,
            "mean_alpha": self.mean_alpha,
            "pairs": float(pairs),
            "threshold_reached": float(self.threshold_reached),
            "ess": float(ess),
        }

    # ---------------------------------------------------------------- exact resume
    def state_dict(self) -> dict[str, Any]:
        """Numbers and CPU tensors only, so it survives ``torch.load(weights_only=True)``."""
        return {
            "shape": self.shape,
            "threshold_reached": self.threshold_reached,
            "point_alpha": self.point_alpha,
            "progress": self.progress,
            "updates": self.updates,
            "alphas": self._alphas.clone(),
            "returns": self._returns.clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of ``state_dict``."""
        self.shape = float(state["shape"])
        self.threshold_reached = bool(state["threshold_reached"])
        self.point_alpha = float(state["point_alpha"])
        self.progress = float(state["progress"])
        self.updates = int(state["updates"])
        self._alphas = torch.as_tensor(state["alphas"], dtype=torch.float64).clone()
        self._returns = torch.as_tensor(state["returns"], dtype=torch.float64).clone()
