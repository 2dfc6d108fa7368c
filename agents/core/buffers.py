"""Replay storage: preallocated device tensors, batched inserts, on-device sampling.

A buffer is declared by a *field spec*: ``{name: (shape, dtype)}`` for one row. Extra per-sample
fields (a temperature, a risk level, an adversary action) are just more entries of the spec, never
subclasses. Rows are written N at a time (one per env) and sampled uniformly with ``torch.randint``
from the buffer's own generator, so sampling is reproducible and does not touch the global RNG.
"""

from __future__ import annotations

from typing import Any

import torch

FieldSpec = dict[str, tuple[tuple[int, ...], torch.dtype]]


class TransitionBuffer:
    """A ring buffer of single transitions.

    Storage per field is ``[capacity, *shape]``. ``extend`` writes ``[N, *shape]`` rows at once at
    positions ``(cursor + arange(N)) % capacity``; ``sample`` returns ``[batch, *shape]`` tensors.
    The cursor and fill level are Python ints: they change by the known N each insert, so tracking
    them costs no device sync.
    """

    def __init__(self, fields: FieldSpec, capacity: int, device: torch.device | str = "cpu", seed: int = 0):
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
        self.cursor = (self.cursor + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, batch_size: int) -> dict[str, torch.Tensor]:
        """Uniform sample with replacement of ``batch_size`` stored rows."""
        if self.size == 0:
            raise RuntimeError("cannot sample from an empty buffer")
        index = torch.randint(0, self.size, (batch_size,), device=self.device, generator=self.generator)
        return {name: store.index_select(0, index) for name, store in self.storage.items()}

    def state_dict(self) -> dict[str, Any]:
        """The filled rows as laid out in storage, the cursor and the generator state."""
        return {
            "storage": {name: store[: self.size].clone() for name, store in self.storage.items()},
            "cursor": self.cursor,
            "size": self.size,
            "capacity": self.capacity,
            "generator": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore rows. With the same capacity the layout is kept, so sampling continues exactly;
        into a different capacity (a resumed run with a longer horizon) rows are re-laid oldest
        first and only the newest ``capacity`` kept."""
        size, cursor, saved_capacity = int(state["size"]), int(state["cursor"]), int(state["capacity"])
        if set(state["storage"]) != set(self.storage):
            raise ValueError(f"saved buffer fields {sorted(state['storage'])} differ from {sorted(self.storage)}")
        rows = state["storage"]
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
        for name, store in self.storage.items():
            store[:size].copy_(rows[name])
        self.cursor = cursor
        self.size = size
        self.generator.set_state(state["generator"])
