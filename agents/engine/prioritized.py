"""Prioritized experience replay: a device-resident sum tree and a proportional sampling strategy.

Paper: Schaul, Quan, Antonoglou, Silver, "Prioritized Experience Replay", ICLR 2016
(arXiv:1511.05952), the proportional variant. Row i of a buffer is sampled with probability

    p_i  = (|delta_i| + eps)^alpha                        (priority from the last TD error of row i)
    P(i) = p_i / sum_k p_k
    w_i  = (N P(i))^-beta / max_j w_j                     (importance weight, multiplies row i's loss)

with N the number of stored rows and beta annealed towards 1 over training. New rows enter at the
largest priority seen so far: their TD error is unknown, and this makes them likely to be replayed
soon, which measures it.

The sum tree (:class:`SumTree`) is a two-level tree of torch tensors on the buffer's device:
leaves are grouped ``fanout`` at a time, each group keeps the inclusive prefix sums of its leaves,
and the root keeps the exclusive prefix of the group totals. A whole batch descends at once: one
``torch.searchsorted`` on the root's prefix picks each sample's group, one gather fetches the
``[batch, fanout]`` prefix rows of those groups, and one batched ``torch.searchsorted`` picks the
leaf. A batch of leaf writes recomputes the prefix rows of the touched groups and the root's prefix.
Nothing loops over samples in Python and nothing reads a value back to the host, so sampling and
updates never synchronize with a GPU. Every sum is recomputed from the leaves (never adjusted by a
difference), so rounding errors do not accumulate over millions of updates.

:class:`PrioritizedSampler` is the strategy object that a
:class:`agents.engine.buffers.TransitionBuffer` (and so an episode buffer) consults instead of its
uniform ``torch.randint``: ``on_insert`` gives new rows the running maximum priority, ``sample``
draws stratified indices and importance weights, ``update`` writes new priorities from TD errors.

Deviations from the reference:

- Weights are normalized by the largest weight *in the batch* (as DeepMind's Dopamine and most
  implementations do), not over the whole buffer (OpenAI Baselines keeps a min-tree for that). The
  batch maximum needs no second tree and keeps weights in (0, 1]; with it N and the total mass
  cancel: ``w_i = (p_i / min_j p_j)^-beta`` over the batch's rows j.
- The tree has two levels of wide fanout (a million leaves: 31250 groups of 32) with prefix sums
  inside each group, rather than binary and twenty levels deep, so a batched descent is a handful
  of kernels. Sampling probabilities are the same.
- The running maximum priority never decreases (as in OpenAI Baselines); rows overwritten by the
  ring also enter at it.
- The tree is float64: prefix sums over a million float32 priorities would lose low-order mass.
- The paper anneals beta to 1 at the end of learning; here beta is any schedule of the env step
  (:class:`agents.engine.schedules.Linear` by default), so the end point is a setting.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from agents.engine.config import doc
from agents.engine.schedules import Linear

# PyTorch's CPU searchsorted splits work over threads from 200 queries on. A batch search is a few
# microseconds of work, less than waking a second thread; when the other core is busy the wake-up
# stalls for milliseconds (measured: p90 8 ms with 2 threads on a loaded 2-core machine). Chunks of
# at most this many queries run inline. Only speed depends on it, never the result.
SERIAL_QUERIES = 192


def searchsorted(boundaries: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``torch.searchsorted(boundaries, values)`` (left side), on CPU with several threads in
    chunks of ``SERIAL_QUERIES`` queries (along dim 0 of both for batched ``[B, F]`` boundaries)."""
    if values.device.type != "cpu" or values.shape[0] <= SERIAL_QUERIES or torch.get_num_threads() == 1:
        return torch.searchsorted(boundaries, values)
    chunks = values.split(SERIAL_QUERIES)
    if boundaries.dim() == 1:
        return torch.cat([torch.searchsorted(boundaries, chunk) for chunk in chunks])
    return torch.cat([torch.searchsorted(b, v) for b, v in zip(boundaries.split(SERIAL_QUERIES), chunks)])


class SumTree:
    """Priorities of ``capacity`` rows in a two-level sum tree of float64 tensors on ``device``.

    The root's children are G groups of ``fanout`` leaves each (the last group padded with zeros).
    Stored, with G = ceil(capacity / fanout):

    - ``values [G, fanout]``      the leaf priorities p_i (padding and empty rows are 0)
    - ``cumulative [G, fanout]``  inclusive prefix sums inside each group, c_gj = sum_{k<=j} p_gk
    - ``totals [G]``              each group's sum (= ``cumulative[:, -1]``)
    - ``top [G + 1]``             exclusive prefix of the group sums: ``top[0] = 0``, ``top[G]`` = total

    A batch of writes (:meth:`set`) recomputes the touched groups' prefix rows from their leaves and
    the top prefix over all groups: ``O(batch * fanout + G)`` work, a fixed number of kernels and no
    host sync. A batch of searches (:meth:`find`) is one ``searchsorted`` on ``top``, one gather of
    ``[batch, fanout]`` prefix rows and one batched ``searchsorted`` in them. The rows are
    contiguous and fetched independently, which matters on CPU: a binary search over all leaves
    would chain a cache miss per level. The default fanout, the power of two at or above
    ``sqrt(capacity / 1024)`` (at least 16), balances the random row gathers against the sequential
    top prefix; a million rows get 32 leaves per group and 31250 groups, the fastest of 8 to 128
    in ``benchmarks/per_cost.py`` (sampling cost is flat across them, updates are not).
    """

    def __init__(self, capacity: int, device: torch.device | str = "cpu", fanout: int | None = None):
        if capacity <= 0:
            raise ValueError(f"sum tree capacity must be positive, got {capacity}")
        if fanout is None:
            fanout = max(16, 1 << max(0, math.ceil(math.log2(math.sqrt(capacity / 1024)))))
        if fanout < 1:
            raise ValueError(f"sum tree fanout must be positive, got {fanout}")
        self.capacity = int(capacity)
        self.fanout = int(fanout)
        self.device = torch.device(device)
        self.groups = math.ceil(self.capacity / self.fanout)
        float64 = dict(dtype=torch.float64, device=self.device)
        self.values = torch.zeros(self.groups, self.fanout, **float64)
        self.cumulative = torch.zeros(self.groups, self.fanout, **float64)
        self.totals = torch.zeros(self.groups, **float64)
        self.top = torch.zeros(self.groups + 1, **float64)
        # scratch for last_write_wins: the batch position of each leaf's last write
        self._last = torch.full((self.capacity,), -1, dtype=torch.int64, device=self.device)
        self._positions = torch.arange(0, dtype=torch.int64, device=self.device)
        self._ends = torch.arange(0, dtype=torch.float64, device=self.device)

    @property
    def total(self) -> torch.Tensor:
        """Sum of all priorities, 0-dim (a view, no host read)."""
        return self.top[-1]

    @property
    def leaves(self) -> torch.Tensor:
        """The priorities ``[capacity]`` (a view)."""
        return self.values.view(-1)[: self.capacity]

    def get(self, index: torch.Tensor) -> torch.Tensor:
        """Priorities of rows ``index [B]`` -> ``[B]`` (a new tensor)."""
        return self.values.view(-1).index_select(0, index)

    def _arange(self, n: int) -> torch.Tensor:
        if self._positions.shape[0] < n:  # grows once to the largest batch seen
            self._positions = torch.arange(n, dtype=torch.int64, device=self.device)
        return self._positions[:n]

    def _segment_ends(self, n: int) -> torch.Tensor:
        """``[1, 2, ..., n]`` as float64, cached per batch size (one kernel fewer per sample)."""
        if self._ends.shape[0] != n:
            self._ends = torch.arange(1, n + 1, dtype=torch.float64, device=self.device)
        return self._ends

    def last_write_wins(self, index: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
        """Values ``[B]`` such that every occurrence of a repeated leaf in ``index [B]`` carries the
        value of that leaf's *last* occurrence in the batch.

        A plain ``index_put_`` leaves the order among duplicates unspecified (on CUDA it is), so
        this makes a batched write equal to writing the batch in order. Per leaf, the largest batch
        position is kept with a ``scatter_reduce(amax)`` into a capacity-sized scratch (amax does
        not depend on order). Shapes stay fixed, so there is no host sync.
        """
        positions = self._arange(index.shape[0])
        self._last.index_fill_(0, index, -1)
        self._last.scatter_reduce_(0, index, positions, reduce="amax")
        return value.index_select(0, self._last.index_select(0, index))

    def set(self, index: torch.Tensor, priority: torch.Tensor, *, distinct: bool = False) -> None:
        """Write ``priority [B]`` at leaves ``index [B]``; for a repeated index the last value wins.

        Then the touched groups' prefix rows and totals are recomputed from their leaves (a group
        touched twice writes the same row twice) and the top prefix over all G groups.
        ``distinct=True`` promises no repeated index (a ring insert) and skips the deduplication.
        """
        priority = priority.to(torch.float64)
        if not distinct:
            priority = self.last_write_wins(index, priority)
        self.values.view(-1).index_put_((index,), priority)
        group = torch.div(index, self.fanout, rounding_mode="floor")  # [B]
        rows = self.values.index_select(0, group).cumsum_(1)  # [B, fanout]
        # index_copy_ rather than index_put_: the latter spreads [B, fanout] over threads on CPU
        self.cumulative.index_copy_(0, group, rows)
        self.totals.index_put_((group,), rows[:, -1])
        torch.cumsum(self.totals, 0, out=self.top[1:])

    def rebuild(self, priority: torch.Tensor) -> None:
        """Set leaves ``0..n-1`` from ``priority [n]``, zero the rest and recompute every group.

        Uses the same row-wise operations as :meth:`set`, so the result equals reaching these
        priorities through writes, bit for bit on CPU.
        """
        self.values.zero_()
        self.values.view(-1)[: priority.shape[0]].copy_(priority)
        torch.cumsum(self.values, 1, out=self.cumulative)
        self.totals.copy_(self.cumulative[:, -1])
        torch.cumsum(self.totals, 0, out=self.top[1:])

    def find(self, mass: torch.Tensor) -> torch.Tensor:
        """Leaf index ``[B]`` for each target ``mass [B]`` in ``(0, total]``: the i with
        ``sum_{k<i} p_k < mass <= sum_{k<=i} p_k``, so leaf i is hit with probability p_i / total.

        The group g with ``top[g] < mass <= top[g + 1]`` (``top[0] = 0 < mass``), then in its prefix
        row the first ``c_gj >= mass - top[g]``. Prefix sums only reach a positive target on a
        positive leaf, so an empty row or padding is never returned. Both targets are clamped to
        their range's sum, which rounding can exceed in the last bit.
        """
        mass = torch.minimum(mass, self.total)
        # first inclusive prefix top[g + 1] >= mass is group g: mass > 0 = top[0] rules out g = -1
        group = searchsorted(self.top[1:], mass)  # [B]
        mass = mass.sub_(self.top.index_select(0, group))  # in place: mass is our own tensor now
        rows = self.cumulative.index_select(0, group)  # [B, fanout]
        mass = torch.minimum(mass, rows[:, -1]).unsqueeze_(1)  # [B, 1]
        leaf = searchsorted(rows, mass).squeeze_(1)  # first prefix >= mass
        return leaf.add_(group, alpha=self.fanout)

    def stratified(self, batch_size: int, generator: torch.Generator) -> torch.Tensor:
        """Leaf indices ``[B]``: one uniform draw in each of B equal segments of the total mass.

        u_b = (b + 1 - r_b) * total / B with r_b ~ U[0, 1) lies in ``(b total/B, (b+1) total/B]``,
        never 0, so :meth:`find` never stops on an empty leaf. The indices come out sorted by leaf.
        """
        r = torch.rand(batch_size, dtype=torch.float64, device=self.device, generator=generator)
        segment = torch.sub(self._segment_ends(batch_size), r)  # [B], b + 1 - r_b
        return self.find(segment.mul_(self.total / batch_size))


BetaSchedule = Callable[[int], float]


class PrioritizedSampler:
    """Proportional prioritized sampling (Schaul et al. 2016) for a ring buffer of ``capacity`` rows.

    ``alpha`` sets how strongly priorities skew sampling (0: uniform), ``beta`` (a float or a
    schedule ``step -> float``) how fully importance weights correct for it, ``eps`` keeps rows
    with zero TD error sampleable. All state lives on ``device``; the running maximum priority is a
    0-dim tensor, so inserts and updates never read a value back to the host.
    """

    def __init__(
        self,
        capacity: int,
        device: torch.device | str = "cpu",
        *,
        alpha: float = 0.6,
        beta: float | BetaSchedule = 0.4,
        eps: float = 1e-6,
        fanout: int | None = None,
    ):
        if alpha < 0:
            raise ValueError(f"alpha must be >= 0, got {alpha}")
        if eps <= 0:
            raise ValueError(f"eps must be positive (a zero TD error would make a row unsampleable), got {eps}")
        self.capacity = int(capacity)
        self.device = torch.device(device)
        self.alpha = float(alpha)
        self.beta = beta
        self.eps = float(eps)
        self.tree = SumTree(self.capacity, self.device, fanout=fanout)
        self.max_priority = torch.ones((), dtype=torch.float64, device=self.device)  # p of unseen rows

    def beta_at(self, step: int) -> float:
        """beta at env step ``step`` (a pure function of the step: nothing to save on resume)."""
        return float(self.beta(step)) if callable(self.beta) else float(self.beta)

    def priority(self, td_error: torch.Tensor) -> torch.Tensor:
        """p = (|delta| + eps)^alpha, ``[B] -> [B]`` float64."""
        return (td_error.detach().to(torch.float64).abs() + self.eps).pow(self.alpha)

    def on_insert(self, index: torch.Tensor) -> None:
        """Rows ``index [N]`` were (over)written: they enter at the running maximum priority."""
        # every row gets the same value, so even a repeated index could not conflict: no dedup
        self.tree.set(index, self.max_priority.expand(index.shape[0]), distinct=True)

    def sample(
        self, size: int, batch_size: int, generator: torch.Generator, step: int = 0
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Stratified proportional draw of ``batch_size`` of the first ``size`` rows.

        Returns ``(index [B] int64, weights [B] float32)`` with weights
        w_b = (N P(b))^-beta / max_j w_j = (p_b / min_j p_j)^-beta, the max over this batch.
        Rows beyond ``size`` have priority 0 and are never drawn; ``size`` only guards emptiness.
        """
        if size <= 0:
            raise RuntimeError("cannot sample from an empty buffer")
        index = self.tree.stratified(batch_size, generator)
        priority = self.tree.get(index)  # [B], a fresh tensor: safe to scale in place
        weights = priority.div_(priority.min()).pow_(-self.beta_at(step))
        return index, weights.to(torch.float32)

    def update(self, index: torch.Tensor, td_error: torch.Tensor) -> None:
        """New priorities ``(|td_error| + eps)^alpha`` for rows ``index [B]`` (``td_error [B]``, any
        float dtype, detached here, finite: a NaN would poison the sums). A row repeated in ``index``
        takes its last TD error. Call it before inserting new rows: an index sampled before a ring
        overwrite would now name a new row.
        """
        priority = self.priority(td_error.reshape(-1))
        self.tree.set(index.reshape(-1), priority)
        torch.maximum(self.max_priority, priority.max(), out=self.max_priority)

    def reset(self) -> None:
        """Forget every row: all priorities 0, the running maximum back to 1."""
        self.tree.rebuild(self.tree.values.new_zeros(0))
        self.max_priority.fill_(1.0)

    def state_dict(self) -> dict[str, Any]:
        """Leaf priorities ``[capacity]`` (laid out like the buffer's rows) and the running maximum.
        Nothing else: beta is a function of the step, the random draws use the buffer's generator."""
        return {"priorities": self.tree.leaves.clone(), "max_priority": self.max_priority.clone()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore priorities (``[n]`` with n <= capacity; the tree is rebuilt from them)."""
        priorities = state["priorities"].to(device=self.device, dtype=torch.float64)
        if priorities.shape[0] > self.capacity:
            raise ValueError(f"saved priorities hold {priorities.shape[0]} rows, capacity is {self.capacity}")
        self.tree.rebuild(priorities)
        self.max_priority.copy_(state["max_priority"])


@dataclass(frozen=True)
class PrioritizedConfig:
    """Proportional prioritized replay settings (Schaul et al. 2016, Atari values as defaults)."""

    alpha: float = doc("priority exponent: p = (|TD error| + eps)^alpha; 0 samples uniformly", 0.6, ge=0)
    beta_start: float = doc("importance-weight exponent at the start of the beta ramp", 0.4, ge=0, le=1)
    beta_end: float = doc("importance-weight exponent at the end of the ramp (1: full correction)", 1.0, ge=0, le=1)
    beta_steps: int = doc(
        "env steps over which beta rises linearly (the paper: the whole run; train.prioritized=true sets it so)",
        1_000_000,
        ge=0,
    )
    eps: float = doc("added to |TD error| so no row's priority is zero", 1e-6, gt=0)

    def build(self, capacity: int, device: torch.device | str = "cpu") -> PrioritizedSampler:
        """The sampler for a buffer of ``capacity`` rows on ``device``."""
        beta = Linear(self.beta_start, self.beta_end, self.beta_steps)
        return PrioritizedSampler(capacity, device, alpha=self.alpha, beta=beta, eps=self.eps)
