"""Checkpoints: atomic writes, ``weights_only`` loads, retention of the last k.

A checkpoint is one ``torch.save`` of plain data (tensors, numbers, strings, dicts, lists) written to
a temporary file in the same directory, fsynced, then renamed over the final name: a run killed
mid-write leaves the previous checkpoint intact. Loading uses ``torch.load(weights_only=True)``, so
a checkpoint can never run code.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

FORMAT = "regula-checkpoint-v1"
_NAME = re.compile(r"^step_(\d+)\.pt$")


class CheckpointError(RuntimeError):
    """A checkpoint that cannot be used; the message names the file and the reason."""


def save_atomic(obj: Any, path: Path) -> None:
    """``torch.save`` to a temp file beside ``path``, fsync, then rename (atomic on POSIX)."""
    write_atomic(path, lambda handle: torch.save(obj, handle), binary=True)


def write_atomic(path: Path, write: Callable[[IO], Any], *, binary: bool) -> None:
    """Call ``write(handle)`` on a temp file beside ``path``, fsync, then rename it over ``path``: a run
    killed mid-write leaves the previous file intact (checkpoints, sweep manifests)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb" if binary else "w", **({} if binary else {"encoding": "utf-8"})) as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def restore_generator(generator: Any, state: Any) -> bool:
    """Set ``generator`` to a saved ``state``; False, leaving it at its seeded start, for another device's state.

    A CPU generator's state (5,056 bytes, Mersenne Twister) and a CUDA generator's (16 bytes, Philox
    seed and offset) cannot stand for each other, so a run trained on a GPU and loaded on the CPU
    (evaluation, or a resume elsewhere) draws a fresh seeded stream there instead of failing. Any
    other object with ``get_state`` / ``set_state`` (an env's own numpy streams) is restored as is.
    """
    if isinstance(state, torch.Tensor):
        state = state.cpu()
        if state.numel() != generator.get_state().numel():
            return False
    generator.set_state(state)
    return True


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load and validate a checkpoint; CheckpointError says which file and why on any problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle, ...: one line for the user
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(f"{path}: not a readable checkpoint ({reason[:200]})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a regula checkpoint (missing format tag {FORMAT!r})")
    return data


class Checkpointer:
    """Writes ``checkpoints/step_<N>.pt`` and keeps the newest ``keep`` of them."""

    def __init__(self, run_dir: Path, keep: int = 3):
        self.dir = Path(run_dir) / "checkpoints"
        self.keep = keep

    def existing(self) -> list[Path]:
        """Checkpoint files, oldest first."""
        if not self.dir.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.dir.iterdir() if (m := _NAME.match(p.name))]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        files = self.existing()
        return files[-1] if files else None

    def save(self, step: int, payload: dict[str, Any]) -> Path:
        path = self.dir / f"step_{step:09d}.pt"
        save_atomic({"format": FORMAT, "step": step, **payload}, path)
        for old in self.existing()[: -self.keep] if self.keep > 0 else []:
            old.unlink(missing_ok=True)
        return path


class MemoryCheckpointer:
    """The checkpointer of an in-memory run: hands each payload (with its ``step``) to ``save``, if any."""

    def __init__(self, save: Callable[[int, dict[str, Any]], Any] | None = None):
        self.save_fn = save

    def save(self, step: int, payload: dict[str, Any]) -> None:
        if self.save_fn is not None:
            self.save_fn(step, {"step": step, **payload})
