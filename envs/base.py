"""The one environment protocol of the suite.

Every environment the agents see is a ``VecEnv``: ``num_envs`` copies stepped together, with
observations, rewards and flags as torch tensors on the run's device. Adapters in this package turn
gymnasium, PettingZoo, VMAS and the suite's own torch environments into this form; agents never see
the underlying objects.

Same-step autoreset: where an episode ended in a step, ``StepOut.obs`` already holds the first
observation of the next episode and ``StepOut.final_obs`` the true last observation of the finished
one (equal to ``obs`` elsewhere). A collector builds the transition's ``next_obs`` as ``final_obs``,
with no per-env Python loop.

``terminated`` (a true terminal state: do not bootstrap) and ``truncated`` (a time limit: bootstrap
from ``final_obs``) are kept apart.

Multi-agent envs add an agent dimension: obs ``[N, agents, D]``, a global ``state [N, S]``,
``avail_actions [N, agents, A]``, ``alive [N, agents]``, and a reward of shape ``[N]`` (team) or
``[N, agents]``; those extra tensors travel in ``StepOut.info``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, runtime_checkable

import torch


@dataclass(frozen=True)
class BoxSpec:
    """A continuous tensor space. For actions the canonical range is [-1, 1] (adapters rescale)."""

    shape: tuple[int, ...]
    low: float | tuple[float, ...] = -1.0
    high: float | tuple[float, ...] = 1.0
    dtype: torch.dtype = torch.float32
    # Actions only: the env's own bounds, where the adapter maps canonical [-1, 1] onto them
    # (native = center + half_range * clip(canonical, -1, 1)); None where the env acts in canonical units.
    native_low: tuple[float, ...] | None = None
    native_high: tuple[float, ...] | None = None

    @property
    def dim(self) -> int:
        """Number of scalars in one element (product of ``shape``)."""
        out = 1
        for s in self.shape:
            out *= s
        return out


@dataclass(frozen=True)
class DiscreteSpec:
    """``n`` choices, stored as int64 indices of shape ``shape`` (``()`` for one choice per env)."""

    n: int
    shape: tuple[int, ...] = ()
    dtype: torch.dtype = torch.int64


Spec = BoxSpec | DiscreteSpec


class StepOut(NamedTuple):
    """One batched step. Shapes for N envs (single-agent): obs ``[N, D]``, reward ``[N]``,
    terminated/truncated ``[N]`` bool, final_obs ``[N, D]``. ``info`` holds extra tensors
    (multi-agent masks and state, perturbation values ...), never Python objects per env."""

    obs: torch.Tensor
    reward: torch.Tensor
    terminated: torch.Tensor
    truncated: torch.Tensor
    final_obs: torch.Tensor
    info: dict[str, Any]


@runtime_checkable
class VecEnv(Protocol):
    """N environments stepped as one. See the module docstring for the autoreset contract."""

    num_envs: int
    device: torch.device
    obs_spec: Spec
    action_spec: Spec

    def reset(self, seed: int | None = None) -> torch.Tensor:
        """Reset every env; return obs ``[N, *obs_spec.shape]`` on ``device``."""
        ...

    def step(self, action: torch.Tensor) -> StepOut:
        """Apply ``action [N, *action_spec.shape]`` (canonical range) and autoreset finished envs."""
        ...

    def close(self) -> None:
        """Release worker processes and simulators."""
        ...
