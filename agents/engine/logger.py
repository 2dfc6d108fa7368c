"""Logging: TensorBoard events, ``metrics.jsonl`` and a progress bar (or plain progress lines).

This is the only place where tensors become Python floats: metrics arrive as 0-dim tensors, are
accumulated on the device between log points, and are read back once per log interval.

Where the progress bar cannot be drawn (stderr is not a terminal: a batch job, ``nohup``, a CI log)
the logger prints a plain line instead every ``plain_every`` seconds of wall-clock time (step of
total, speed, last evaluation return), and one more when it closes.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from pathlib import Path

import torch


class MetricAccumulator:
    """Means of tensor metrics between log points.

    ``add`` only appends references (no tensor op per update, so it costs nothing in the hot loop);
    ``means`` stacks each key once and averages on the device.
    """

    def __init__(self):
        self.values: dict[str, list[torch.Tensor]] = {}

    def add(self, metrics: dict[str, torch.Tensor]) -> None:
        for key, value in metrics.items():
            self.values.setdefault(key, []).append(value)

    def means(self) -> dict[str, torch.Tensor]:
        out = {k: torch.stack(v).detach().to(torch.float32).mean() for k, v in self.values.items()}
        self.values.clear()
        return out


def drop_rows_after(path: Path, step: int) -> None:
    """Keep the rows of a ``metrics.jsonl`` up to ``step`` (a line cut short by a kill goes too);
    rewritten atomically."""
    if not path.exists():
        return
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if row.get("step", 0) <= step:
            kept.append(line + "\n")
    tmp = path.with_suffix(".jsonl.tmp")
    tmp.write_text("".join(kept), encoding="utf-8")
    os.replace(tmp, path)


class Logger:
    """Writes scalars to TensorBoard and ``metrics.jsonl`` and drives a progress bar.

    ``log(step, metrics)`` takes tensors or numbers; it returns the floats it wrote so the caller
    can check them (e.g. the loop's NaN guard) without a second host sync.
    """

    def __init__(
        self,
        run_dir: Path,
        total_steps: int,
        start_step: int = 0,
        progress: bool = True,
        *,
        plain_every: float = 30.0,
        clock=time.monotonic,
    ):
        """``start_step > 0`` resumes a run from its checkpoint at that step: what the killed process
        logged after it is dropped (TensorBoard's ``purge_step``, and the rows of ``metrics.jsonl``),
        so the resumed run's metrics appear once, as in a straight run. With ``progress`` and no
        terminal for the bar, a plain progress line goes to stderr every ``plain_every`` seconds of
        ``clock``."""
        from torch.utils.tensorboard import SummaryWriter

        self.run_dir = Path(run_dir)
        self.writer = SummaryWriter(str(self.run_dir), purge_step=start_step + 1 if start_step > 0 else None)
        if start_step > 0:
            drop_rows_after(self.run_dir / "metrics.jsonl", start_step)
        self.jsonl = open(self.run_dir / "metrics.jsonl", "a", encoding="utf-8")
        self.total_steps = total_steps
        self.bar = None
        if progress:
            from tqdm import tqdm

            self.bar = tqdm(
                total=total_steps,
                initial=start_step,
                unit="step",
                dynamic_ncols=True,
                file=sys.stderr,
                disable=None,  # tqdm disables itself when stderr is not a terminal... unless forced below
                mininterval=1.0,
            )
        self.last_time = time.perf_counter()
        self.last_step = start_step
        self.last_eval: float | None = None
        # the bar is off because stderr is not a terminal: plain lines at a steady wall-clock interval
        self.plain = progress and (self.bar is None or bool(self.bar.disable))
        self.plain_every, self.clock = plain_every, clock
        self.plain_time, self.plain_step = clock(), start_step

    def log(self, step: int, metrics: dict[str, torch.Tensor | float]) -> dict[str, float]:
        now = time.perf_counter()
        values = {k: float(v) for k, v in metrics.items()}  # the one host sync of the interval
        if step > self.last_step:
            values["time/fps"] = (step - self.last_step) / max(now - self.last_time, 1e-9)
        self.last_time, self.last_step = now, step
        for key, value in values.items():
            if math.isfinite(value):
                self.writer.add_scalar(key, value, step)
        self.jsonl.write(json.dumps({"step": step, "time": time.time(), **values}) + "\n")
        self.jsonl.flush()
        if math.isfinite(values.get("eval/mean_reward", math.nan)):
            self.last_eval = values["eval/mean_reward"]
        if self.plain and self.clock() - self.plain_time >= self.plain_every:
            self.plain_line()
        if self.bar is not None:
            postfix = {}
            if math.isfinite(values.get("rollout/ep_rew_mean", math.nan)):
                postfix["return"] = f"{values['rollout/ep_rew_mean']:.1f}"
            if "eval/mean_reward" in values:
                postfix["eval"] = f"{values['eval/mean_reward']:.1f}"
            if "time/fps" in values:
                postfix["fps"] = f"{values['time/fps']:.0f}"
            self.bar.set_postfix(postfix, refresh=False)
            self.bar.n = step
            self.bar.refresh()
        return values

    def histogram(self, tag: str, values: torch.Tensor, step: int) -> None:
        """A TensorBoard histogram (e.g. the temperatures drawn for a phase); not in metrics.jsonl."""
        self.writer.add_histogram(tag, values.detach().float().cpu(), step)

    def text(self, tag: str, text: str, step: int) -> None:
        """A TensorBoard text entry (e.g. the best prompt so far); not in metrics.jsonl."""
        self.writer.add_text(tag, text, step)

    def message(self, text: str) -> None:
        """A line for the user that does not break the progress bar."""
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print(text, file=sys.stderr)

    def plain_line(self) -> None:
        """``step 12,000/100,000 (12%), 850 steps/s, last eval return -150.3`` on stderr (speed since the
        previous line)."""
        now = self.clock()
        fps = (self.last_step - self.plain_step) / max(now - self.plain_time, 1e-9)
        percent = 100.0 * self.last_step / max(self.total_steps, 1)
        evaluation = "no evaluation yet" if self.last_eval is None else f"last eval return {self.last_eval:.1f}"
        print(
            f"step {self.last_step:,}/{self.total_steps:,} ({percent:.0f}%), {fps:,.0f} steps/s, {evaluation}",
            file=sys.stderr,
            flush=True,
        )
        self.plain_time, self.plain_step = now, self.last_step

    def close(self) -> None:
        if self.plain and self.last_step > self.plain_step:
            self.plain_line()  # where the run stopped, for a log read afterwards
        if self.bar is not None:
            self.bar.close()
        self.writer.flush()
        self.writer.close()
        self.jsonl.close()


class MemoryLogger:
    """The logger of a run that writes nothing (in-memory training: tests, benchmarks, an evaluation's
    fresh adversary): an optional progress bar, ``on_log(step, metrics)`` callbacks, and the newest
    evaluation metrics in ``last_eval``. Same methods as :class:`Logger`."""

    def __init__(self, total_steps: int = 0, *, progress: bool = False, label: str | None = None, on_log=None):
        from tqdm import tqdm

        self.on_log, self.last_eval = on_log, None
        self.bar = tqdm(total=total_steps, unit="step", desc=label, disable=not progress, mininterval=1.0, leave=False)

    def log(self, step: int, metrics: dict[str, torch.Tensor | float]) -> dict[str, float]:
        if "eval/mean_reward" in metrics:
            self.last_eval = metrics
        if self.on_log is not None:
            self.on_log(step, metrics)
        self.bar.n = step
        self.bar.refresh()
        return {k: float(v) for k, v in metrics.items() if "loss/" in k}  # what the NaN guard reads

    def histogram(self, tag: str, values: torch.Tensor, step: int) -> None:
        pass

    def text(self, tag: str, text: str, step: int) -> None:
        pass

    def message(self, text: str) -> None:
        self.bar.write(text, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()


def final_evaluation(run_dir: Path) -> tuple[int, float] | None:
    """``(step, eval/mean_reward)`` of the last evaluation in ``run_dir/metrics.jsonl``, None when the
    run has none (the end-of-run summary of ``train.py``)."""
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return None
    found = None
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        value = row.get("eval/mean_reward") if isinstance(row, dict) else None
        if isinstance(value, (int, float)) and math.isfinite(value):
            found = (int(row.get("step", 0)), float(value))
    return found
