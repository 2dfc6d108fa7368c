"""Schedules: pure functions of the global env step (nothing is stored, so resume is trivial).

``Linear(start, end, steps)(t) = start + (end - start) * min(t / steps, 1)``;
``Piecewise([(t0, v0), (t1, v1), ...])`` interpolates linearly between points and holds the ends.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Constant:
    value: float

    def __call__(self, step: int) -> float:
        return self.value


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


@dataclass(frozen=True)
class Piecewise:
    points: tuple[tuple[int, float], ...]

    def __call__(self, step: int) -> float:
        pts = self.points
        if step <= pts[0][0]:
            return pts[0][1]
        for (t0, v0), (t1, v1) in zip(pts[:-1], pts[1:]):
            if step <= t1:
                return v0 + (v1 - v0) * (step - t0) / max(t1 - t0, 1)
        return pts[-1][1]
