"""Replay storage: preallocated device tensors, batched inserts, on-device sampling.

A buffer is declared by a *field spec*: ``{name: (shape, dtype)}`` for one row. Extra per-sample
fields (a temperature, a risk level, an adversary action) are just more entries of the spec, never
subclasses. Rows are written N at a time (one per env) and sampled uniformly with ``torch.randint``
from the buffer's own generator, so sampling is reproducible and does not touch the global RNG.

Sampling can instead be delegated to a *sampler* strategy (:class:`Sampler`; prioritized replay,
:class:`agents.engine.prioritized.PrioritizedSampler`). Without one (the default) the buffer draws
exactly as before, bit for bit. With one, ``sample`` adds two entries to the batch,
``index [B]`` (int64, the rows drawn) and ``weights [B]`` (float32 importance weights that
multiply each row's loss), and the learner hands new TD errors back through
``update_priorities(batch["index"], td_error)``.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

from agents.engine.checkpoint import restore_generator

FieldSpec = dict[str, tuple[tuple[int, ...], torch.dtype]]

SAMPLER_KEYS = ("index", "weights")  # batch entries a sampler adds; no field may use these names


class Sampler(Protocol):
    """How a buffer with a sampler draws rows (the uniform path needs none).

    ``capacity`` must equal the buffer's. ``state_dict()["priorities"]`` (if present) is laid out
    like the buffer's storage rows, so a buffer re-laid into another capacity can reorder it.
    """

    capacity: int

    def sample(
        self, size: int, batch_size: int, generator: torch.Generator, step: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``(index [B] int64 in [0, size), weights [B] float32)``."""

    def on_insert(self, index: torch.Tensor) -> None:
        """Rows ``index [N]`` were just (over)written."""

    def update(self, index: torch.Tensor, td_error: torch.Tensor) -> None:
        """New TD errors ``[B]`` for rows ``index [B]``."""

    def reset(self) -> None:
        """Forget every row (as freshly constructed)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class TransitionBuffer:
    """A ring buffer of single transitions.

    Storage per field is ``[capacity, *shape]``. ``extend`` writes ``[N, *shape]`` rows at once at
    positions ``(cursor + arange(N)) % capacity``; ``sample`` returns ``[batch, *shape]`` tensors.
    The cursor and fill level are Python ints: they change by the known N each insert, so tracking
    them costs no device sync.

    ``sampler``: None for uniform sampling, or a :class:`Sampler` (see :meth:`use_sampler`).
    """

    def __init__(
        self,
        fields: FieldSpec,
        capacity: int,
        device: torch.device | str = "cpu",
        seed: int = 0,
        sampler: Sampler | None = None,
    ):
        if capacity <= 0:
            raise ValueError(f"buffer capacity must be positive, got {capacity}")
        self.fields = dict(fields)
        self.capacity = int(capacity)
        self.device = torch.device(device)
        self.storage = {
            name: torch.zeros((self.capacity, *shape), dtype=dtype, device=self.device)
            for name, (shape, dtype) in self.fields.items()
        }
        self.cursor = 0
        self.size = 0
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.sampler: Sampler | None = None
        if sampler is not None:
            self.use_sampler(sampler)

    def use_sampler(self, sampler: Sampler) -> None:
        """Sample through ``sampler`` from now on. Rows already stored are announced to it as
        inserted (prioritized replay: they enter at its maximum priority). Subclasses whose
        constructor takes no sampler (the episode buffer) get one this way."""
        clash = [key for key in SAMPLER_KEYS if key in self.fields]
        if clash:
            raise ValueError(f"fields {clash} clash with the batch entries a sampler adds {list(SAMPLER_KEYS)}")
        if sampler.capacity != self.capacity:
            raise ValueError(f"sampler capacity {sampler.capacity} differs from the buffer's {self.capacity}")
        self.sampler = sampler
        if self.size:
            sampler.on_insert(torch.arange(self.size, device=self.device))

    def __len__(self) -> int:
        return self.size

    def extend(self, rows: dict[str, torch.Tensor]) -> None:
        """Write N rows (every field of the spec, each ``[N, *shape]``) in one indexed copy per field."""
        missing = self.fields.keys() - rows.keys()
        if missing:
            raise KeyError(f"buffer insert lacks fields {sorted(missing)}")
        n = next(iter(rows.values())).shape[0]
        if n > self.capacity:
            raise ValueError(f"cannot insert {n} rows into a buffer of capacity {self.capacity}")
        if self.cursor + n <= self.capacity:  # the common case: one contiguous slice
            for name, store in self.storage.items():
                store[self.cursor : self.cursor + n].copy_(rows[name])
        else:
            index = (torch.arange(n, device=self.device) + self.cursor) % self.capacity
            for name, store in self.storage.items():
                store.index_copy_(0, index, rows[name].to(store.dtype))
        if self.sampler is not None:
            self.sampler.on_insert((torch.arange(n, device=self.device) + self.cursor) % self.capacity)
        self.cursor = (self.cursor + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int, *, step: int = 0) -> dict[str, torch.Tensor]:
        """Sample with replacement of ``batch_size`` stored rows: uniform, or through the sampler.

        With a sampler the batch also holds ``index [B]`` and ``weights [B]``; ``step`` (the env
        step) feeds its schedules (the importance-weight exponent). The uniform path ignores it.
        """
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty buffer")
        if self.sampler is not None:
            index, weights = self.sampler.sample(self.size, batch_size, self.generator, step)
            batch = {name: store.index_select(0, index) for name, store in self.storage.items()}
            batch["index"], batch["weights"] = index, weights
            return batch
        index = torch.randint(0, self.size, (batch_size,), device=self.device, generator=self.generator)
        return {name: store.index_select(0, index) for name, store in self.storage.items()}

    def update_priorities(self, index: torch.Tensor, td_error: torch.Tensor) -> None:
        """Hand the sampler new TD errors ``td_error [B]`` of rows ``index [B]`` (``batch["index"]``).

        Call it after the update that computed them and before the next ``extend``: once the ring
        overwrites a row, its index names the new row.
        """
        if self.sampler is None:
            raise RuntimeError("update_priorities needs a buffer with a sampler (this one samples uniformly)")
        self.sampler.update(index, td_error)

    def state_dict(self) -> dict[str, Any]:
        """The filled rows as laid out in storage, the cursor and the generator state (and the
        sampler's state under ``"sampler"`` when there is one)."""
        state = {
            "storage": {name: store[: self.size].clone() for name, store in self.storage.items()},
            "cursor": self.cursor,
            "size": self.size,
            "capacity": self.capacity,
            "generator": self.generator.get_state(),
        }
        if self.sampler is not None:
            sampler_state = self.sampler.state_dict()
            if "priorities" in sampler_state:  # like the storage: the filled rows only
                sampler_state["priorities"] = sampler_state["priorities"][: self.size]
            state["sampler"] = sampler_state
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore rows. With the same capacity the layout is kept, so sampling continues exactly;
        into a different capacity (a resumed run with a longer horizon) rows are re-laid oldest
        first and only the newest ``capacity`` kept (and a sampler's priorities with them).
        A checkpoint without sampler state loaded into a buffer with a sampler announces every row
        as new; sampler state loaded into a uniform buffer is ignored."""
        size, cursor, saved_capacity = int(state["size"]), int(state["cursor"]), int(state["capacity"])
        if set(state["storage"]) != set(self.storage):
            raise ValueError(f"saved buffer fields {sorted(state['storage'])} differ from {sorted(self.storage)}")
        rows = state["storage"]
        sampler_state = state.get("sampler")
        for name, store in self.storage.items():
            if rows[name].shape[1:] != store.shape[1:]:
                want, got = tuple(store.shape[1:]), tuple(rows[name].shape[1:])
                raise ValueError(f"saved field {name!r} has shape {got}, expected {want}")
        if saved_capacity != self.capacity:
            # chronological order: a full ring starts at the cursor
            order = torch.arange(size)
            if size == saved_capacity:
                order = (order + cursor) % saved_capacity
            order = order[-self.capacity :]
            rows = {name: value[order] for name, value in rows.items()}
            size = order.numel()
            cursor = size % self.capacity
            if sampler_state is not None and "priorities" in sampler_state:
                priorities = sampler_state["priorities"]
                sampler_state = {**sampler_state, "priorities": priorities[order.to(priorities.device)]}
        for name, store in self.storage.items():
            store[:size].copy_(rows[name])
        self.cursor = cursor
        self.size = size
        restore_generator(self.generator, state["generator"])
        if self.sampler is not None:
            if sampler_state is not None:
                self.sampler.load_state_dict(sampler_state)
            else:
                self.sampler.reset()
                self.sampler.on_insert(torch.arange(size, device=self.device))
