"""What an evaluation condition sees (:class:`Context`) and the table helpers conditions print with."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from agents.engine.evaluation import episode_returns, evaluation_discount, summarize


def table(title: str, header: list[str], rows: list[list]) -> str:
    """A right-aligned plain-text table."""
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = lambda cells: "  ".join(str(c).rjust(w) for c, w in zip(cells, widths))  # noqa: E731
    return "\n".join([title, line(header), line(["-" * w for w in widths]), *map(line, rows)])


def cells(stats: dict[str, float]) -> list[str]:
    return [f"{stats['mean_reward']:.1f}", f"{stats['std_reward']:.1f}", f"{stats['min_reward']:.1f}"]


@dataclass
class Context:
    """What a condition sees: the loaded run (:class:`agents.engine.run.LoadedRun`) and the settings."""

    run: Any
    episodes: int
    seed: int
    explore: bool
    num_envs: int
    out_dir: Path
    extra: dict = field(default_factory=dict)

    @property
    def multi_agent(self) -> bool:
        """The run acts for several agents (its family says so)."""
        return self.run.multi_agent

    @cached_property
    def gamma(self) -> float | None:
        """The agent's discount where summaries carry the mean discounted return too (else None)."""
        return evaluation_discount(self.run.family, self.run.agent)

    def score(self, wrappers=()) -> dict[str, float]:
        """Summary of ``episodes`` episodes of the run's policy on fresh envs with ``wrappers`` added
        (with the mean discounted return where :attr:`gamma` is known)."""
        result = episode_returns(
            self.run.family,
            self.run.config,
            self.run.agent,
            self.episodes,
            seed=self.seed,
            explore=self.explore,
            step=self.run.step,
            num_envs=min(self.num_envs, self.episodes),
            wrappers=wrappers,
            gamma=self.gamma,
        )
        return summarize(result["returns"], result["lengths"], result.get("discounted_returns"))


def refuse_multi_agent(context: Context, what: str) -> None:
    from envs import EnvError

    if context.multi_agent:
        raise EnvError(f"{what} is not available for multi-agent runs yet ({context.run.config.algo})")
