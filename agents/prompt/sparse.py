"""Sparsemax, spmax (the sparse Tsallis value) and the softmax / sparsemax regularizer strategies.

Papers: Martins & Astudillo, "From Softmax to Sparsemax", ICML 2016 (arXiv 1602.02068) for the
projection onto the simplex; Lee, Choi & Oh, "Sparse Markov Decision Processes with Causal Sparse
Tsallis Entropy Regularization for Reinforcement Learning", IEEE RA-L 2018 (arXiv 1709.06293) for
the spmax operator; used for prompt search by PIN (Choi et al., "Hard Prompts Made Interpretable:
Sparse Entropy Regularization for Prompt Tuning with RL", ACL 2024, arXiv 2407.14733) in place of
RLPrompt's softmax / logsumexp (Deng et al., EMNLP 2022, arXiv 2205.12548).

For scores ``z`` in R^n sorted as z_(1) >= ... >= z_(n):

    K(z)         = max{k : 1 + k z_(k) > sum_{j<=k} z_(j)}          (support size, >= 1)
    tau(z)       = (sum_{j<=K} z_(j) - 1) / K                         (threshold)
    sparsemax(z) = max(z - tau, 0)                                    (on the simplex, exact zeros)
    spmax(z)     = max_{pi in simplex} <pi, z> + 1/2 (1 - ||pi||^2)   (sparse Tsallis entropy, q = 2)
                 = tau + 1/2 + 1/2 ||sparsemax(z)||^2

spmax is to sparsemax what logsumexp is to softmax: grad spmax = sparsemax, spmax(z + c) =
spmax(z) + c, max z <= spmax z <= max z + (1 - 1/n) / 2, and for a in the support
z_a - spmax(z) = pi_a - (1 + ||pi||^2) / 2 (the counterpart of z_a - logsumexp z = log pi_a).
Every token scoring 1 or more below the best has probability exactly 0 (tau >= max z - 1).

With a temperature alpha the strategies work on z = Q / alpha: value V = alpha * spmax(Q / alpha)
(or alpha * logsumexp(Q / alpha)), policy sparsemax(Q / alpha) (or softmax(Q / alpha)).

Masking. A bool ``mask`` (True = allowed, broadcast against the scores) removes tokens from the
value, the policy, sampling and argmax. Removed scores are replaced by the finite constant
``max(allowed z) - FILL_GAP`` (the row max detached), never by -inf: sparsemax's sort / cumulative
sum would meet inf - inf and 0 * inf and return NaN. A gap above 1 already keeps a token out of the
sparsemax support (tau >= max - 1); a gap of 1e4 also makes its softmax weight exp(-1e4) = 0
exactly in float32 and float64, so a removed token behaves as if it were absent. A row whose mask
allows nothing is treated as unmasked rather than producing NaN.

Deviations from the reference: PIN fills removed tokens with the absolute constant -1000 (adapter
model) and asserts that the support is smaller than the filter size; here the fill is relative to
the row's best allowed score (so it stays outside the support for any Q scale) and the support size
is returned for logging instead of asserted (early on, with Q near 0, it can legitimately reach the
filter size). RLPrompt's top-k filter sets removed logits to -inf; that is fine for softmax and
gives the same numbers as the finite fill here. Sparsemax sampling honours ``top_k`` when one is
given (PIN ignores it; its presets should pass None). Half-precision scores are computed in float32.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Gap (in units of Q / temperature) between the best allowed score and the fill of removed tokens.
FILL_GAP = 1e4


def _working_dtype(scores: torch.Tensor) -> torch.Tensor:
    """float16 / bfloat16 lose the sort / cumsum arithmetic; compute in float32 at least."""
    if scores.dtype in (torch.float16, torch.bfloat16):
        return scores.float()
    return scores


def apply_mask(scores: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Replace removed scores by ``max(allowed) - FILL_GAP``: finite, outside any support, softmax weight 0.

    scores ``[..., n]``; mask bool broadcastable to it (True = allowed) or None (nothing removed).
    The fill uses the detached row max, so removed entries are constants and carry no gradient. A
    row with nothing allowed is left as it is.
    """
    scores = _working_dtype(scores)
    if mask is None:
        return scores
    mask = mask.expand_as(scores)
    mask = mask | ~mask.any(-1, keepdim=True)  # a fully removed row: keep everything, never NaN
    best = torch.where(mask, scores, torch.finfo(scores.dtype).min).amax(-1, keepdim=True).detach()
    return torch.where(mask, scores, best - FILL_GAP)


def sparsemax_threshold(scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """tau(z) and K(z) along the last dim of finite scores ``[..., n]``; returns ``([...], [...] long)``.

    Sort descending, s_k = sum_{j<=k} z_(j); k is in the support iff 1 + k z_(k) > s_k (always a
    prefix {1..K}, K >= 1); tau = (s_K - 1) / K.

    Cost: the support lies within one of the best score (tau >= max z - 1), so only the candidates
    z_i > max z - 1 are sorted (a top-m with m the largest candidate count of the batch, one host
    sync) whenever they are at most half the row; with a near-uniform Q or no filter it is a full
    sort. The search runs without autograd; tau is then recomputed from the support set S as
    (sum_{i in S} z_i - 1) / |S|, whose gradient 1/|S| on S is the exact one, without saving sort
    indices for the backward pass.
    """
    n = scores.shape[-1]
    if scores.numel() == 0:
        return scores.sum(-1), torch.zeros(scores.shape[:-1], dtype=torch.long, device=scores.device)
    with torch.no_grad():
        candidates = int((scores > scores.amax(-1, keepdim=True) - 1).sum(-1).max())
        if 2 * candidates <= n:
            ordered = scores.topk(candidates, dim=-1, sorted=True).values
        else:
            ordered = scores.sort(dim=-1, descending=True).values
        cumulative = ordered.cumsum(-1)
        k = torch.arange(1, ordered.shape[-1] + 1, device=scores.device, dtype=scores.dtype)
        # the largest k that passes (the passing set is a prefix; the max is safer than a count
        # under rounding); k = 1 always passes since 1 + z_(1) > z_(1)
        size = ((1 + k * ordered > cumulative) * k).amax(-1, keepdim=True).clamp(min=1)
        kth = ordered.gather(-1, size.long() - 1)  # z_(K)
    # tied scores are both inside or both outside the support, so {z >= z_(K)} is the top-K set
    support = scores >= kth
    size = support.sum(-1, keepdim=True)
    tau = (torch.where(support, scores, 0).sum(-1, keepdim=True) - 1) / size
    return tau.squeeze(-1), size.squeeze(-1)


def sparsemax(scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """pi = max(z - tau(z), 0) along the last dim: ``[..., n] -> [..., n]``, sums to 1, exact zeros."""
    scores = apply_mask(scores, mask)
    tau, _ = sparsemax_threshold(scores)
    return (scores - tau.unsqueeze(-1)).clamp(min=0)


def spmax(scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Sparse Tsallis value along the last dim: ``[..., n] -> [...]``.

    spmax(z) = tau + 1/2 + 1/2 ||pi||^2 with pi = sparsemax(z): the same number as
    1/2 sum_{i in S} (z_i^2 - tau^2) + 1/2 without the cancellation of large squares. Its gradient
    is sparsemax(z) (autograd through tau and pi gives exactly that).
    """
    scores = apply_mask(scores, mask)
    tau, _ = sparsemax_threshold(scores)
    pi = (scores - tau.unsqueeze(-1)).clamp(min=0)
    return tau + 0.5 + 0.5 * pi.pow(2).sum(-1)


def support_size(scores: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """K(z): the number of tokens with non-zero sparsemax probability, ``[..., n] -> [...]`` long."""
    with torch.no_grad():
        return sparsemax_threshold(apply_mask(scores, mask))[1]


def sample_categorical(probs: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """One index per row of ``probs [..., n]`` -> ``[...]`` long; zero-probability entries are never drawn.

    The rows are renormalised first: sparsemax's clamp and float rounding leave sums of 1 +- eps.
    """
    flat = probs.reshape(-1, probs.shape[-1])
    flat = flat / flat.sum(-1, keepdim=True)
    return torch.multinomial(flat, 1, generator=generator).reshape(probs.shape[:-1])


def top_k_mask(scores: torch.Tensor, k: int | None) -> torch.Tensor:
    """Bool ``[..., n]``: True on exactly the ``k`` largest scores of each row (all True if k is None or >= n).

    Ties at the k-th place are broken by ``torch.topk`` (one of them is kept), so every row keeps k.
    """
    n = scores.shape[-1]
    if k is None or k >= n:
        return torch.ones_like(scores, dtype=torch.bool)
    if k < 1:
        raise ValueError(f"top-k needs k >= 1, got {k}")
    index = scores.topk(k, dim=-1).indices
    return torch.zeros_like(scores, dtype=torch.bool).scatter_(-1, index, True)


def lm_filter_mask(lm_logits: torch.Tensor, k: int | None) -> torch.Tensor:
    """PIN's ignorable-token filter: the policy LM's own top-k next tokens, ``[B, V]`` logits -> ``[B, V]`` bool.

    The mask depends only on the state (the frozen LM's prefix), so one mask serves the online and
    the target Q-values of that state. ``k=None`` disables the filter (RLPrompt).
    """
    return top_k_mask(lm_logits.detach(), k)


def combine_masks(mask: torch.Tensor | None, other: torch.Tensor | None) -> torch.Tensor | None:
    """Logical and of two optional masks (None = everything allowed)."""
    if mask is None:
        return other
    if other is None:
        return mask
    return mask & other


@dataclass(frozen=True)
class Regularizer:
    """Entropy regularizer strategy over a vocabulary: value, policy, support, sampling, greedy.

    Subclasses define ``_value(z)`` and ``_policy(z)`` on temperature-scaled, already masked scores
    z = q / temperature. Q-values ``q [..., V]``, mask bool broadcastable to q or None.
    """

    temperature: float = 1.0
    name = "base"

    def _scores(self, q: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        scores = _working_dtype(q)
        if self.temperature != 1.0:  # skip a [..., V] copy at the papers' temperature
            scores = scores / self.temperature
        return apply_mask(scores, mask)

    def value(self, q: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """V = alpha * Omega*(q / alpha): ``[..., V] -> [...]`` (logsumexp or spmax), differentiable in q."""
        return self.temperature * self._value(self._scores(q, mask))

    def policy(self, q: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """pi(.|s) = grad of the value in q: ``[..., V] -> [..., V]`` (softmax or sparsemax of q / alpha)."""
        return self._policy(self._scores(q, mask))

    def support_size(self, q: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Number of tokens with non-zero probability, ``[...]`` long (for logging)."""
        with torch.no_grad():
            return (self.policy(q, mask) > 0).sum(-1)

    def sample(
        self,
        q: torch.Tensor,
        mask: torch.Tensor | None = None,
        generator: torch.Generator | None = None,
        top_k: int | None = None,
    ) -> torch.Tensor:
        """a ~ pi(.|s) restricted to the ``top_k`` largest allowed Q-values: ``[..., V] -> [...]`` long.

        With ``top_k`` the policy is recomputed on the truncated set (RLPrompt samples from the
        top-k-truncated softmax, k = 256 for classification, 50 for style transfer).
        """
        with torch.no_grad():
            if top_k is not None:
                mask = combine_masks(mask, top_k_mask(self._scores(q, mask), top_k))
            return sample_categorical(self.policy(q, mask), generator)

    def greedy(self, q: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """argmax over the allowed tokens, ``[..., V] -> [...]`` long; ties go to the lowest index."""
        with torch.no_grad():
            return self._scores(q, mask).argmax(-1)

    def _value(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _policy(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


@dataclass(frozen=True)
class SoftmaxRegularizer(Regularizer):
    """Shannon entropy (RLPrompt's soft Q-learning): V = alpha logsumexp(q / alpha), pi = softmax(q / alpha)."""

    name = "softmax"

    def _value(self, z: torch.Tensor) -> torch.Tensor:
        return z.logsumexp(-1)

    def _policy(self, z: torch.Tensor) -> torch.Tensor:
        return z.softmax(-1)


@dataclass(frozen=True)
class SparsemaxRegularizer(Regularizer):
    """Sparse Tsallis entropy (PIN): V = alpha spmax(q / alpha), pi = sparsemax(q / alpha)."""

    name = "sparsemax"

    def _value(self, z: torch.Tensor) -> torch.Tensor:
        return spmax(z)

    def _policy(self, z: torch.Tensor) -> torch.Tensor:
        return sparsemax(z)

    def support_size(self, q: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """K(q / alpha), ``[...]`` long (exact count from the threshold, no float comparison)."""
        return support_size(self._scores(q, mask))


REGULARIZERS: dict[str, type[Regularizer]] = {"softmax": SoftmaxRegularizer, "sparsemax": SparsemaxRegularizer}


def make_regularizer(name: str, temperature: float = 1.0) -> Regularizer:
    """The strategy by config name: 'softmax' (RLPrompt) or 'sparsemax' (PIN)."""
    if name not in REGULARIZERS:
        raise ValueError(f"unknown regularizer {name!r}; choose from {sorted(REGULARIZERS)}")
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    return REGULARIZERS[name](temperature=temperature)
