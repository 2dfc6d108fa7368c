"""Checkpoints: atomic writes, checksums, ``weights_only`` loads, retention of the last k.

A checkpoint is one ``torch.save`` of plain data (tensors, numbers, strings, dicts, lists) written to
a temporary file in the same directory, fsynced, then renamed over the final name: a run killed
mid-write leaves the previous checkpoint intact. Loading uses ``torch.load(weights_only=True)``, so
a checkpoint can never run code.

Checksums: after the checkpoint, the SHA-256 of its bytes is written (atomically too) to a sidecar
``step_<N>.pt.sha256`` in ``sha256sum`` format, and every load checks the file against it before
``torch.load`` reads it: bytes overwritten after the write (a bad disk, a copy cut short, another
process) are refused, where ``torch.load`` reads most such files without complaint (tensor data is
stored uncompressed and unchecked). A sidecar rather than a hash inside the file: it is computed
over the exact bytes on disk, checked without parsing them, and leaves the checkpoint format as it
was. A checkpoint without a sidecar (written before checksums, or by a run killed between the two
renames) loads unverified, with a one-time note.

``Checkpointer.load`` is what a resume and ``evaluate.py`` use: a file the user chose must load or
the command stops (CheckpointError); otherwise the newest checkpoint that loads and passes its check
is used, each newer one that does not is named in a one-line warning with the reason.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import re
import sys
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import torch

from agents.engine.config import error_reason

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


def checksum_path(path: Path) -> Path:
    """The sidecar holding the SHA-256 of checkpoint ``path``: ``<name>.sha256``."""
    return Path(path).with_name(Path(path).name + ".sha256")


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_checksum(path: Path) -> None:
    """Write ``<path>.sha256`` (``sha256sum`` format: ``HEX  NAME``) for the file ``path`` as it is on disk."""
    line = f"{file_sha256(path)}  {Path(path).name}\n"
    write_atomic(checksum_path(path), lambda handle: handle.write(line), binary=False)


_UNVERIFIED_NOTED = False


def verify_checksum(path: Path) -> bool:
    """Check ``path`` against its sidecar: True when it matches, False when there is no sidecar (a
    checkpoint from before checksums: unverified, noted once per process); CheckpointError on a mismatch."""
    global _UNVERIFIED_NOTED
    sidecar = checksum_path(path)
    if not sidecar.is_file():
        if not _UNVERIFIED_NOTED:
            _UNVERIFIED_NOTED = True
            why = "written before checksums, or killed before its checksum"
            print(f"note: {path}: no checksum file ({why}); loaded unverified", file=sys.stderr)
        return False
    expected = sidecar.read_text(encoding="utf-8", errors="replace").split(maxsplit=1)
    if not expected or not re.fullmatch(r"[0-9a-f]{64}", expected[0]):
        raise CheckpointError(f"{path}: its checksum file {sidecar.name} is unreadable; cannot verify it")
    if file_sha256(path) != expected[0]:
        raise CheckpointError(f"{path}: checksum mismatch, the file changed after it was written (corrupted)")
    return True


def _reason(error: Exception) -> str:
    """Why ``torch.load`` refused a file, in our words (its own message may run to a paragraph and
    suggest ``weights_only=False``, which would let the file run code)."""
    text = str(error)
    if isinstance(error, pickle.UnpicklingError) or "weights_only" in text or "Unsupported global" in text:
        return "it holds objects other than plain data (a foreign or tampered file)"
    if "zip" in text.lower() or "archive" in text.lower() or isinstance(error, EOFError):
        return "not a complete torch file (truncated or corrupted)"
    return f"{type(error).__name__}: {error_reason(error)}"


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Verify (when it has a checksum), load and validate a checkpoint; CheckpointError says which file
    and why on any problem."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    verify_checksum(path)
    try:
        with warnings.catch_warnings():  # torch's own notes on a foreign file (pickle protocol ...)
            warnings.simplefilter("ignore")
            data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # truncated zip, foreign pickle, ...: one line for the user
        raise CheckpointError(f"{path}: not a readable checkpoint ({_reason(e)})") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not a regula checkpoint (missing format tag {FORMAT!r})")
    return data


def resume_target(path: Path) -> tuple[Path, Path | None]:
    """``(run_dir, chosen checkpoint or None)`` of what ``train.py --resume`` was given: a run directory
    (its newest usable checkpoint), or a file in ``RUN_DIR/checkpoints`` (that file; it must load)."""
    path = Path(path)
    if not (path.is_file() or path.suffix == ".pt"):
        return path, None
    if path.parent.name != "checkpoints":
        raise CheckpointError(f"{path}: --resume takes a run directory or a checkpoint in RUN_DIR/checkpoints/")
    return path.parent.parent, path


class Checkpointer:
    """Writes ``checkpoints/step_<N>.pt`` and keeps the newest ``keep`` of them."""

    def __init__(self, run_dir: Path, keep: int = 3):
        self.dir = Path(run_dir) / "checkpoints"
        self.keep = keep
        self.loaded: Path | None = None  # the file :meth:`load` read

    def existing(self) -> list[Path]:
        """Checkpoint files, oldest first."""
        if not self.dir.is_dir():
            return []
        found = [(int(m.group(1)), p) for p in self.dir.iterdir() if (m := _NAME.match(p.name))]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        """The newest checkpoint file, unread (see :meth:`latest_valid` for one that loads)."""
        files = self.existing()
        return files[-1] if files else None

    def latest_valid(self, map_location: str | torch.device = "cpu") -> tuple[Path, dict[str, Any]] | None:
        """``(path, data)`` of the newest checkpoint that loads and passes its checksum, or None when
        there is no checkpoint; each newer one that fails is named on stderr, one line with the reason.
        CheckpointError when there are checkpoints but none is usable."""
        files = self.existing()
        for path in reversed(files):
            try:
                return path, load_checkpoint(path, map_location)
            except CheckpointError as e:
                print(f"warning: {e}; trying the previous checkpoint", file=sys.stderr)
        if files:
            raise CheckpointError(f"{self.dir}: none of its {len(files)} checkpoint(s) is usable (see the warnings)")
        return None

    def load(self, chosen: Path | None = None, map_location: str | torch.device = "cpu") -> tuple[Path, dict]:
        """``(path, data)`` of the file ``chosen`` (it must load: CheckpointError otherwise, no fallback),
        else of :meth:`latest_valid`; CheckpointError naming the directory when it holds no checkpoint."""
        if chosen is not None:
            path, data = Path(chosen), load_checkpoint(chosen, map_location)
        else:
            found = self.latest_valid(map_location)
            if found is None:
                raise CheckpointError(f"{self.dir}: no checkpoint in this run directory")
            path, data = found
        self.loaded = path
        return path, data

    def save(self, step: int, payload: dict[str, Any]) -> Path:
        path = self.dir / f"step_{step:09d}.pt"
        checksum_path(path).unlink(missing_ok=True)  # a file of this name replaced: its old sum goes first
        save_atomic({"format": FORMAT, "step": step, **payload}, path)
        write_checksum(path)
        for old in self.existing()[: -self.keep] if self.keep > 0 else []:
            checksum_path(old).unlink(missing_ok=True)
            old.unlink(missing_ok=True)
        return path


class MemoryCheckpointer:
    """The checkpointer of an in-memory run: hands each payload (with its ``step``) to ``save``, if any."""

    def __init__(self, save: Callable[[int, dict[str, Any]], Any] | None = None):
        self.save_fn = save

    def save(self, step: int, payload: dict[str, Any]) -> None:
        if self.save_fn is not None:
            self.save_fn(step, {"step": step, **payload})
