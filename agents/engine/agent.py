"""The Agent contract. Its docstrings are the contract every algorithm of the suite follows.

An agent is built from specs and its own config slice, never from an env object. It never steps an
env and never owns a buffer: the collector calls ``act``, the loop calls ``update`` with a sampled
batch. Everything it returns from ``update`` is a detached 0-dim tensor; turning tensors into Python
floats happens only in the logger, so the hot path has no host syncs.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Agent(Protocol):
    """What the engine needs from an algorithm."""

    device: torch.device

    def act(self, obs: torch.Tensor, state: Any = None, *, step: int, explore: bool = True) -> tuple[torch.Tensor, Any]:
        """Batched action for ``obs [N, ...]`` under no-grad.

        ``state`` is the recurrent state (None for feed-forward agents). ``step`` is the global env
        step, fed to schedules (epsilon, risk level, temperature) and never stored. With
        ``explore=False`` the action is deterministic. Continuous actions are in [-1, 1].
        Returns ``(action [N, *action_shape], new_state)``.
        """
        ...

    def initial_state(self, num_envs: int) -> Any:
        """None, or the zero recurrent state for ``num_envs`` envs (rows reset on episode end)."""
        ...

    def update(self, batch: dict[str, torch.Tensor], *, step: int) -> dict[str, torch.Tensor]:
        """Exactly one update unit on ``batch``; owns its optimizers, targets and temperature.

        Returns detached 0-dim tensors named ``loss/...`` and ``train/...``.
        """
        ...

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue bit for bit: tensors, numbers, strings, dicts, lists."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Inverse of ``state_dict``."""
        ...


@runtime_checkable
class DifferentiablePolicy(Protocol):
    """A multi-agent learner whose deterministic joint policy can be differentiated (MADDPG, ERNIE):
    what observation attacks and the Lipschitz meter need."""

    n_agents: int

    def policy(self, obs: torch.Tensor) -> torch.Tensor:
        """obs ``[N, agents, D]`` -> actions ``[N, agents, A]`` in [-1, 1], differentiable in ``obs``."""
        ...


@runtime_checkable
class TeamCritic(Protocol):
    """A learner with a centralized critic of the joint action: what value-aimed attacks and adversarial
    malicious agents minimize."""

    def team_value(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """obs ``[N, agents, D]``, actions ``[N, agents, A]`` -> the team's value ``[N]``, differentiable."""
        ...


class NonFiniteLossError(RuntimeError):
    """Raised by the loop when a logged loss is NaN or infinite; the message names the loss."""
