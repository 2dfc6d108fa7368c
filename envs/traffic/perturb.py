"""Malicious lights: an evaluation wrapper that flips each light's binary action with probability ``p``.

ERNIE's action-robustness protocol for traffic (Bukharin et al., NeurIPS 2023, arXiv 2310.10810; their code's
default ``p = 0.05``, the paper's 3% and 5%): every step, each light (or each light in ``lights``) independently
does the opposite of what its policy chose (switch <-> keep). A torch-level ``VecEnv`` wrapper in the form of
:mod:`envs.perturb_torch`, nameable in configs as ``{"name": "malicious_lights", "p": 0.05}``; it fits any
multi-agent env with two discrete actions per agent.

The flips are drawn from the wrapper's own generator, re-seeded from (seed, episode seed) at every seeded reset,
so two policies evaluated with the same seeds meet the same faulty steps. ``info["flipped"] [N, agents]`` marks
the actions that were flipped; the env (and so its reward, e.g. the switch penalty) sees the flipped action.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from envs.base import DiscreteSpec, StepOut
from envs.perturb_torch import VecEnvWrapper


class MaliciousLights(VecEnvWrapper):
    """Flip each agent's binary action with probability ``p`` (only agents at indices ``lights`` when given)."""

    def __init__(self, env: Any, p: float, lights: Sequence[int] | None = None, seed: int | None = None):
        super().__init__(env)
        spec = env.action_spec
        if not isinstance(spec, DiscreteSpec) or spec.n != 2 or len(spec.shape) != 1:
            raise ValueError(f"malicious_lights needs two discrete actions per agent, got {spec}")
        if not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"malicious_lights: p must be in [0, 1], got {p}")
        self.p, self.seed = float(p), seed
        n_agents = spec.shape[0]
        mask = torch.ones(n_agents, dtype=torch.bool)
        if lights is not None:
            if any(not 0 <= int(i) < n_agents for i in lights):
                raise ValueError(f"malicious_lights: light indices {list(lights)} outside 0..{n_agents - 1}")
            mask = torch.zeros(n_agents, dtype=torch.bool)
            mask[[int(i) for i in lights]] = True
        self.mask = mask.to(env.device)
        self.generator = torch.Generator(device=env.device)
        self.generator.manual_seed(0 if seed is None else int(seed))

    def reset(self, seed: int | None = None) -> torch.Tensor:
        if seed is not None:  # the same (wrapper seed, episode seed) pair gives the same flips
            self.generator.manual_seed((0 if self.seed is None else int(self.seed)) * 1_000_003 + int(seed))
        return self.env.reset(seed=seed)

    def step(self, action: torch.Tensor) -> StepOut:
        draw = torch.rand(action.shape, generator=self.generator, device=self.mask.device)
        flipped = (draw < self.p) & self.mask
        action = torch.where(flipped.to(action.device), 1 - action, action)
        out = self.env.step(action)
        out.info["flipped"] = flipped.to(out.reward.device)
        return out
