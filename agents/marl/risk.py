"""Quantile-fraction samplers and the risk-level schedule of ROE.

ROE (Oh, Kim, Jeong, Yun, *Toward Risk-based Optimistic Exploration for Cooperative Multi-Agent
Reinforcement Learning*, AAMAS 2023, arXiv 2303.01768) is DFAC whose fraction sampler draws from
the upper region ``U[alpha_t, 1]`` instead of ``U[0, 1]``, with one ``alpha_t`` for every agent,
annealed on the env-step clock (spec sections 2.3, 3.5-3.7):

    alpha(t_env) = max(alpha_end, alpha_0 - (alpha_0 - alpha_end) * t_env / T_alpha)
    tau_k        = low + (high - low) * xi_k,   xi_k ~ U[0, 1] i.i.d.

A sampler is a strategy object: ``region(step) -> (low, high)`` and
``sample(shape, step=, generator=) -> taus [*shape]`` where the last axis of ``shape`` indexes the
K fractions and the leading axes index *samples* (env rows at acting time, (episode, time) pairs
in the learner) -- never agents: one draw set is broadcast to every agent of a sample (the
quantile mixture of DFAC needs shared fractions).

Every sampler draws exactly one ``torch.rand(shape)`` per call (the random-region variant one extra
``randint`` first), and ``low + (high - low) * xi`` with ``low = 0, high = 1`` returns ``xi`` bit for
bit, so ROE held at ``alpha = 0`` replays the uniform baseline exactly (tests/test_marl_learner.py).

Deviations from the reference: the authors' schedule class has an odd branch when start < finish
(never hit by ROE); here the ramp is a plain linear interpolation in both directions. The signed
and random variants are options, not ROE.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from agents.engine.schedules import Linear


def risk_schedule(start: float, end: float, anneal_steps: int) -> Linear:
    """``alpha(t)``: linear from ``start`` to ``end`` over ``anneal_steps`` env steps, then held."""
    return Linear(float(start), float(end), int(anneal_steps))


def _draw(shape: tuple[int, ...], low, high, generator: torch.Generator) -> torch.Tensor:
    xi = torch.rand(shape, generator=generator, device=generator.device)
    return low + (high - low) * xi


@dataclass(frozen=True)
class UniformTaus:
    """``tau ~ U[0, 1]``: the risk-neutral DFAC sampler (and every evaluation)."""

    def risk_level(self, step: int) -> float:
        return 0.0

    def region(self, step: int) -> tuple[float, float]:
        return 0.0, 1.0

    def sample(self, shape: tuple[int, ...], *, step: int, generator: torch.Generator) -> torch.Tensor:
        return _draw(shape, 0.0, 1.0, generator)


@dataclass(frozen=True)
class ShiftedUpperTaus:
    """ROE: ``tau ~ U[alpha(step), 1]``; ``alpha`` is clipped to [0, 1] (``alpha = 1`` gives tau = 1)."""

    schedule: Linear

    def risk_level(self, step: int) -> float:
        return min(max(self.schedule(step), 0.0), 1.0)

    def region(self, step: int) -> tuple[float, float]:
        return self.risk_level(step), 1.0

    def sample(self, shape: tuple[int, ...], *, step: int, generator: torch.Generator) -> torch.Tensor:
        low, high = self.region(step)
        return _draw(shape, low, high, generator)


@dataclass(frozen=True)
class SignedRegionTaus:
    """The authors' signed levels: ``rho >= 0`` -> ``[rho, 1]`` (seeking), ``rho < 0`` -> ``[0, |rho|]``
    (averse). A +1 -> -1 ramp passes [0, 1] at mid-time and then jumps to the averse ``[0, ~0]``."""

    schedule: Linear

    def risk_level(self, step: int) -> float:
        return min(max(self.schedule(step), -1.0), 1.0)

    def region(self, step: int) -> tuple[float, float]:
        rho = self.risk_level(step)
        return (rho, 1.0) if rho >= 0 else (0.0, -rho)

    def sample(self, shape: tuple[int, ...], *, step: int, generator: torch.Generator) -> torch.Tensor:
        low, high = self.region(step)
        return _draw(shape, low, high, generator)


@dataclass(frozen=True)
class RandomRegionTaus:
    """The authors' ``risk_level: random``: per call, one region among neutral [0, 1], averse
    [0, 0.25] and seeking [0.75, 1], chosen on the device and shared by the whole call."""

    def risk_level(self, step: int) -> float:
        return float("nan")  # not a function of the step

    def region(self, step: int) -> tuple[float, float]:
        return 0.0, 1.0  # the envelope of the three regions

    def sample(self, shape: tuple[int, ...], *, step: int, generator: torch.Generator) -> torch.Tensor:
        bounds = torch.tensor([[0.0, 1.0], [0.0, 0.25], [0.75, 1.0]], device=generator.device)
        pick = torch.randint(0, 3, (), generator=generator, device=generator.device)
        low, high = bounds[pick]
        return _draw(shape, low, high, generator)


FractionSampler = UniformTaus | ShiftedUpperTaus | SignedRegionTaus | RandomRegionTaus
SAMPLERS = ("uniform", "upper", "signed", "random")


def make_sampler(kind: str, risk_start: float = 1.0, risk_end: float = 0.0, risk_anneal_steps: int = 50_000):
    """Sampler by name: ``uniform`` (DFAC), ``upper`` (ROE), ``signed``, ``random``."""
    if kind == "uniform":
        return UniformTaus()
    schedule = risk_schedule(risk_start, risk_end, risk_anneal_steps)
    if kind == "upper":
        return ShiftedUpperTaus(schedule)
    if kind == "signed":
        return SignedRegionTaus(schedule)
    if kind == "random":
        return RandomRegionTaus()
    raise ValueError(f"unknown fraction sampler {kind!r}; known: {', '.join(SAMPLERS)}")
