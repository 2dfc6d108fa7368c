"""A Lipschitz meter for any actor or Q-network of the suite: how much its output moves per unit of input.

Used to check what ERNIE claims (Bukharin et al., "Robust Multi-Agent Reinforcement Learning via Adversarial
Regularization: Theoretical Foundation and Stable Algorithms", NeurIPS 2023, arXiv:2310.10810): its regularizer
makes each policy locally Lipschitz in its observation, and a policy that is L-smooth loses at most O(L eps) value
under observation perturbations of size eps. Three estimates per observation o of a bank, for a callable
``fn(obs [B, D]) -> out [B, K]`` (or ``[B]``):

* local Jacobian norm  L_J(o) = sigma_max(df/do (o)) (torch.func: vmap of jacrev, then the largest singular value);
* finite-radius adversarial ratio  L_r(o) = max_{0 < ||d||_2 <= r} ||f(o + d) - f(o)||_2 / ||d||_2, the max found
  by PGD (agents/robustness/robust.py) on ||f(o + d) - f(o)||^2 from a random point of the sphere;
* random-direction ratio  max over random unit directions u of ||f(o + r u) - f(o)||_2 / r (a lower bound of L_r,
  a sanity check).

:func:`lipschitz_report` gives the mean, 95th percentile and max of each over the bank as floats;
:func:`layer_spectral_product` the loose global upper bound prod_l sigma_max(W_l) of a plain MLP.

For a stochastic policy pass a tensor-valued view of it: the action probabilities (discrete) or the mean and
log-std concatenated (Gaussian). A critic Q(o, a) is measured in o by closing over a: ``lambda o: q(o, a)``, with a
batch-independent ``a`` for the Jacobian (vmap calls ``fn`` one observation at a time) or per-row actions for the
ratio estimators.

Deviations from the reference: the reference code measures nothing of this kind; the estimators are this suite's.
The PGD ratio keeps the best ratio over all iterates (each is a valid lower bound of the local constant at radius
r) and, by default, takes steps of ten times the radius: after the projection back onto the sphere such steps act
almost like power iteration on J^T J, which converges at the rate (sigma_2 / sigma_1)^2 per step (a near-tie of
the two largest singular values needs more steps or restarts). The Jacobian is taken with torch.func (vmap of
jacrev); its first call in a process imports torch._dynamo (a few seconds, once). ``method='autograd'`` gives the
same numbers with K reverse passes over the batch and no such import.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from agents.robustness.robust import pgd

_TINY = 1e-12


def _output(fn: Callable[[torch.Tensor], torch.Tensor], obs: torch.Tensor) -> torch.Tensor:
    """``fn(obs)`` as ``[B, K]`` (a scalar output per row becomes K = 1)."""
    out = fn(obs)
    return out.unsqueeze(-1) if out.dim() == 1 else out.flatten(1)


def jacobian_spectral_norm(
    fn: Callable[[torch.Tensor], torch.Tensor],
    obs: torch.Tensor,
    chunk_size: int | None = None,
    method: str = "vmap",
) -> torch.Tensor:
    """L_J(o_b) = sigma_max(J_b), J_b = d fn(o)/d o at o_b ``[K, D]``, for obs ``[B, D]``; returns ``[B]``.

    ``method='vmap'``: torch.func.vmap(jacrev(fn on one row)); ``fn`` sees one observation at a time as a ``[1, D]``
    batch; ``chunk_size`` bounds vmap's memory. ``method='autograd'``: row k of every J_b at once as
    d (sum_b fn(o)_bk) / d o, one reverse pass per output k (K passes). Both need ``fn`` to treat rows
    independently (no batch norm). No parameter gradient is touched.
    """
    if method == "vmap":

        def single(o: torch.Tensor) -> torch.Tensor:
            return _output(fn, o.unsqueeze(0)).squeeze(0)  # [K]

        jacobian = torch.func.vmap(torch.func.jacrev(single), chunk_size=chunk_size)(obs.detach())  # [B, K, D]
    elif method == "autograd":
        with torch.enable_grad():
            inputs = obs.detach().requires_grad_(True)
            out = _output(fn, inputs)  # [B, K]
            rows = [
                torch.autograd.grad(out[:, k].sum(), inputs, retain_graph=k + 1 < out.shape[1])[0]
                for k in range(out.shape[1])
            ]
        jacobian = torch.stack(rows, dim=1)  # [B, K, D]
    else:
        raise ValueError(f"unknown method {method!r}; choose from ['vmap', 'autograd']")
    return torch.linalg.matrix_norm(jacobian, ord=2).detach()


def pgd_ratio(
    fn: Callable[[torch.Tensor], torch.Tensor],
    obs: torch.Tensor,
    radius: float,
    *,
    steps: int = 20,
    restarts: int = 1,
    step_size: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """L_r(o_b) = max ||f(o_b + d) - f(o_b)||_2 / ||d||_2 over the PGD iterates d in the l2 ball of ``radius``.

    Each restart starts from a uniformly random point of the sphere ||d|| = r and ascends ||f(o + d) - f(o)||^2
    with normalized steps (``step_size``, default 10 r) and projection; every iterate's ratio counts. obs ``[B, D]``
    -> ``[B]``, detached.
    """
    obs = obs.detach()
    with torch.no_grad():
        clean = _output(fn, obs)
    best = torch.zeros(obs.shape[0], dtype=obs.dtype, device=obs.device)

    def ratio(delta: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            change = (_output(fn, obs + delta) - clean).norm(dim=-1)
            return change / delta.norm(dim=-1).clamp_min(_TINY)

    def record(step: int, delta: torch.Tensor) -> None:
        nonlocal best
        best = torch.maximum(best, ratio(delta))

    for _ in range(restarts):
        direction = torch.randn(obs.shape, generator=generator, dtype=obs.dtype, device=obs.device)
        start = radius * direction / direction.norm(dim=-1, keepdim=True).clamp_min(_TINY)
        pgd(
            lambda d: (_output(fn, obs + d) - clean).pow(2).sum(-1), obs, radius=radius, steps=steps,
            step_size=10.0 * radius if step_size is None else step_size, norm="l2", init=start, on_step=record,
        )  # fmt: skip
    return best


@torch.no_grad()
def random_direction_ratio(
    fn: Callable[[torch.Tensor], torch.Tensor],
    obs: torch.Tensor,
    radius: float,
    *,
    directions: int = 20,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """max_u ||f(o_b + r u) - f(o_b)||_2 / r over ``directions`` uniform unit vectors u per row; obs ``[B, D]`` ->
    ``[B]``. All directions go through ``fn`` as one batch of ``directions * B`` rows."""
    batch, dim = obs.shape
    clean = _output(fn, obs)
    u = torch.randn((directions, batch, dim), generator=generator, dtype=obs.dtype, device=obs.device)
    u = u / u.norm(dim=-1, keepdim=True).clamp_min(_TINY)
    moved = _output(fn, (obs.unsqueeze(0) + radius * u).reshape(directions * batch, dim))
    change = (moved.view(directions, batch, -1) - clean.unsqueeze(0)).norm(dim=-1)  # [directions, B]
    return change.amax(0) / radius


@torch.no_grad()
def layer_spectral_product(module: nn.Module) -> float:
    """prod_l sigma_max(W_l) over the module's ``nn.Linear`` layers: a global Lipschitz bound (l2 to l2) for a
    plain MLP whose activations are 1-Lipschitz (ReLU, tanh); loose, and meaningless for other architectures."""
    product = 1.0
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            product *= torch.linalg.matrix_norm(layer.weight.detach().double(), ord=2).item()
    return product


def _summary(name: str, values: torch.Tensor) -> dict[str, float]:
    values = values.double()
    return {
        f"{name}_mean": values.mean().item(),
        f"{name}_p95": torch.quantile(values, 0.95).item(),
        f"{name}_max": values.max().item(),
    }


def lipschitz_report(
    fn: Callable[[torch.Tensor], torch.Tensor],
    obs_bank: torch.Tensor,
    radius: float = 0.05,
    *,
    pgd_steps: int = 20,
    restarts: int = 1,
    directions: int = 20,
    chunk_size: int = 1024,
    method: str = "vmap",
    generator: torch.Generator | None = None,
) -> dict[str, float]:
    """The three estimates over a bank of observations ``[B, D]`` (e.g. from clean rollouts), summarized.

    Returns floats ``{jacobian,pgd,random}_{mean,p95,max}`` (p95: the 95th percentile over the bank) and
    ``radius``. The bank is processed ``chunk_size`` rows at a time; ``method`` as in
    :func:`jacobian_spectral_norm`.
    """
    parts: dict[str, list[torch.Tensor]] = {"jacobian": [], "pgd": [], "random": []}
    for chunk in obs_bank.detach().split(chunk_size):
        parts["jacobian"].append(jacobian_spectral_norm(fn, chunk, method=method))
        parts["pgd"].append(pgd_ratio(fn, chunk, radius, steps=pgd_steps, restarts=restarts, generator=generator))
        parts["random"].append(random_direction_ratio(fn, chunk, radius, directions=directions, generator=generator))
    report = {"radius": float(radius)}
    for name, values in parts.items():
        report.update(_summary(name, torch.cat(values)))
    return report
