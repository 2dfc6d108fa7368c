"""Schedules: pure functions of the global env step (nothing is stored, so resume is trivial).

``Linear(start, end, steps, begin)(t) = start + (end - start) * clip((t - begin) / steps, 0, 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Linear:
    start: float
    end: float
    steps: int
    begin: int = 0  # the step at which the ramp starts

    def __call__(self, step: int) -> float:
        if self.steps <= 0:
            return self.end
        frac = min(max((step - self.begin) / self.steps, 0.0), 1.0)
        return self.start + (self.end - self.start) * frac
