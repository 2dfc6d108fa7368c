"""ERNIE's robustness math: worst-case input perturbations and the smoothness penalties built on them.

Paper: Bukharin, Li, Yu, Zhang, Chen, Zuo, Zhang, Zhang, Zhao, "Robust Multi-Agent Reinforcement Learning via
Adversarial Regularization: Theoretical Foundation and Stable Algorithms", NeurIPS 2023 (arXiv:2310.10810); public
code github.com/abukharin3/ERNIE (traffic-light control only). ERNIE makes every agent's policy output f_theta(o)
smooth in its observation by adding to the base learner's loss

    lambda * mean_b R(o_b),   R(o) = max_{||delta|| <= eps} D(f_theta(o + delta), f_theta(o)),

with the inner max solved by K steps of projected gradient ascent (PGD). Its "stable" (Stackelberg) form treats the
policy as the leader: the K ascent steps are a differentiable function delta^K(theta), and the policy descends the
total derivative dD(theta, delta^K(theta))/dtheta, which adds the leader-follower term (dD/ddelta) (ddelta^K/dtheta)
to the plain gradient. Here that term comes from building the ascent steps with
``torch.autograd.grad(create_graph=True)`` and not detaching delta^K; autograd then forms the second-derivative
products exactly (the paper writes them as Hessian-vector products).

Everything here is a pure function of its arguments (no module state), independent of the learner:

* :func:`pgd` - the inner maximization: random start, normalized (l2), sign (l-inf) or Wasserstein-atom steps,
  projection after every step; plain or differentiable (``create_graph``).
* :func:`ernie_penalty` - the observation regularizer (plain "w/o ST" or Stackelberg form; squared-l2 or KL
  distance; absolute or relative perturbation scale; the "Baseline-Gaussian" control).
* :func:`mean_field_penalty` - the same regularizer against a worst-case mean field: the atoms of an empirical
  distribution moved inside a 1-Wasserstein ball.
* :func:`greedy_action_attack`, :func:`ernie_a_penalty` - ERNIE-A: a centralized Q made smooth in the Hamming
  distance between joint actions, the worst joint action within K changed agents found greedily;
  :func:`greedy_continuous_action_attack`, :func:`continuous_ernie_a_penalty` extend it to box actions.
* :func:`observation_attack` with :func:`action_deviation` (the largest change of actions) or :func:`value_drop`
  (the lowest critic value of the joint action) - the evaluation-time worst-case observation attacks;
  :func:`padding_mask` - which features of zero-padded observations are real.

Policy contract (what ``policy(obs)`` may return):

* a tensor with ``distance='l2'``: actions of a deterministic actor (or Q-values), D = ||f(o+delta) - f(o)||^2
  summed over every output dimension after the batch dimensions;
* a tensor with ``distance='kl'``: unnormalized logits of a categorical policy over the last dimension,
  D = KL(softmax(f(o+delta)) || softmax(f(o)));
* a ``torch.distributions.Distribution`` (needs ``distance='kl'``): D = KL(pi(.|o+delta) || pi(.|o)) from
  ``torch.distributions.kl_divergence``, summed over the dimensions after the batch (a factorized Gaussian sums
  over action dimensions).

Deviations from the reference:

* Steps are normalized (l2: g / ||g|| per row; l-inf: sign(g)) and every iterate is projected onto an explicit
  ball, so ``radius`` means a distance in observation units; the released code takes raw-gradient steps with no
  ball. Default step size 2.5 * radius / steps (the usual PGD rule). Sign steps have zero derivative, so with
  ``norm='linf'`` delta^K does not depend on theta (almost everywhere) and the Stackelberg gradient is the plain
  one: use ``norm='l2'`` for the Stackelberg form.
* The projection is differentiated where it is active (rescaling to the sphere, clamping), not ignored.
* Random start: uniform in the ball by default (the reference: Gaussian with std 1e-3, available as
  ``init_std=1e-3``). A start exactly at delta = 0 would stall, since the gradient of D vanishes there.
* The penalty is a per-sample mean, not the reference's Frobenius norm over the whole batch (which grows like
  sqrt(batch) and is not squared); D is the squared l2 distance for deterministic actors.
* ``scale='relative'`` follows the reference's |o|-scaled steps with an explicit ball: delta = u * |o| with u in
  the ball (per feature: |delta_i| <= radius |o_i| for l-inf), so a feature that is exactly zero is never perturbed
  and large features are perturbed more. Use it for unnormalized inputs (traffic counts); ``absolute`` (default)
  for roughly unit-scale observations.
* Both the clean and the perturbed outputs carry parameter gradients (as in the reference); the KL is taken as
  KL(perturbed || clean), an order the paper does not fix.
* ERNIE-A's greedy loop, its squared-difference score, the continuous-action search and the Wasserstein-atom
  parameterization of the mean-field form fill gaps in the public description; they are this suite's design.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.distributions import Distribution, kl_divergence

NORMS = ("l2", "linf", "w1")
FORMS = ("plain", "stackelberg")
DISTANCES = ("l2", "kl")
SCALES = ("absolute", "relative")
_TINY = 1e-12  # guards divisions by a zero norm (a row whose gradient or perturbation is exactly zero)


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"unknown {name} {value!r}; choose from {list(allowed)}")


def ball_norm(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """The size of each row of ``delta`` in the ball's geometry, kept broadcastable against ``delta``.

    * ``'l2'``:   ||delta_row||_2 over the last dim, ``[..., D] -> [..., 1]``;
    * ``'linf'``: max_i |delta_row,i| over the last dim, ``[..., D] -> [..., 1]``;
    * ``'w1'``:   (1/M) sum_i ||delta_i||_2 over the atoms i of a row, ``[..., M, d] -> [..., 1, 1]``: moving the
      M atoms of an empirical distribution by delta_i changes it by at most this much in 1-Wasserstein distance.
    """
    _check("norm", norm, NORMS)
    if norm == "l2":
        return delta.norm(dim=-1, keepdim=True)
    if norm == "linf":
        return delta.abs().amax(dim=-1, keepdim=True)
    return delta.norm(dim=-1).mean(-1, keepdim=True).unsqueeze(-1)


def project(delta: torch.Tensor, radius: float, norm: str) -> torch.Tensor:
    """Pi_B(delta): map each row into {||delta_row|| <= radius}; differentiable.

    l-inf: clamp(delta, -radius, radius) (the Euclidean projection). l2 and w1: delta * min(1, radius / ||delta||),
    the Euclidean projection for l2; for w1 a common rescaling of a row's atoms, which lands in the ball (not
    always at its nearest point). Rows already inside are returned unchanged, with an identity derivative.
    """
    if norm == "linf":
        return delta.clamp(-radius, radius)
    return delta * (radius / ball_norm(delta, norm).clamp_min(_TINY)).clamp(max=1.0)


def ascent_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """The ascent step of unit size in the ball's geometry, per row.

    l2: g / ||g||_2 (steepest ascent); l-inf: sign(g) (steepest ascent); w1: g / ((1/M) sum_i ||g_i||_2), the
    gradient rescaled to size 1 in the w1 geometry (every atom moves along its own gradient). A row with a zero
    gradient gets a zero step.
    """
    if norm == "linf":
        return grad.sign()
    return grad / ball_norm(grad, norm).clamp_min(_TINY)


# Random draws use ``generator`` when given (it must live on the tensors' device), else the global generator.
def _randn(like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.randn(like.shape, generator=generator, dtype=like.dtype, device=like.device)


def _rand(shape: tuple[int, ...], like: torch.Tensor, generator: torch.Generator | None) -> torch.Tensor:
    return torch.rand(shape, generator=generator, dtype=like.dtype, device=like.device)


def random_start(
    like: torch.Tensor,
    radius: float,
    norm: str,
    *,
    init_std: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """delta^0 for PGD, shaped like ``like``, inside the ball.

    ``init_std=None``: uniform in the ball per row (l-inf: U(-r, r) per element; l2: Gaussian direction with norm
    r U^(1/D), uniform in volume; w1: Gaussian atoms rescaled to size r U^(1/(M d)), not uniform but spread over the
    ball). ``init_std=s``: Pi_B(N(0, s^2 I)), the reference's start (s = 1e-3); ``init_std=0`` starts at 0.
    """
    _check("norm", norm, NORMS)
    if init_std is not None:
        return project(init_std * _randn(like, generator), radius, norm)
    if norm == "linf":
        return (2.0 * _rand(like.shape, like, generator) - 1.0) * radius
    direction = _randn(like, generator)
    size = ball_norm(direction, norm)
    dims = like.shape[-1] if norm == "l2" else like.shape[-1] * like.shape[-2]
    length = radius * _rand(size.shape, like, generator).pow(1.0 / dims)
    return direction * length / size.clamp_min(_TINY)


def pgd(
    objective: Callable[[torch.Tensor], torch.Tensor],
    like: torch.Tensor,
    *,
    radius: float,
    steps: int,
    step_size: float | None = None,
    norm: str = "l2",
    create_graph: bool = False,
    init: torch.Tensor | None = None,
    init_std: float | None = None,
    generator: torch.Generator | None = None,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """Projected gradient ascent on ``objective`` inside a ball around 0, one ball per row.

        delta^0 = Pi_B(init) or a random start;
        delta^t = Pi_B(delta^{t-1} + eta * dir(grad_delta sum_rows objective(delta^{t-1}))),   t = 1..K

    with dir of :func:`ascent_direction` and Pi_B of :func:`project`. ``objective(delta [*like.shape]) -> [rows]``
    (or anything whose sum is the quantity to maximize); the rows are independent only if the objective is a sum of
    per-row terms. ``eta`` defaults to 2.5 * radius / steps. ``on_step(t, delta^t)`` is called for t = 0..K with a
    detached copy (to inspect or record the iterates).

    ``create_graph=False``: each step's delta is a detached leaf, the result has no graph (the plain attack).
    ``create_graph=True``: the steps are recorded (``autograd.grad(create_graph=True)``), so delta^K is a
    differentiable function of whatever the objective depends on (the Stackelberg follower). Gradients are taken
    only with respect to delta, so no parameter's ``.grad`` is touched. Works inside ``torch.no_grad()``.

    ``mask`` (0/1, broadcastable to ``like``): only the features where it is 1 move. The start and every step are
    multiplied by it, so delta is exactly 0 elsewhere and the whole budget goes to the real features (the padding
    of agents with shorter observations, see :func:`padding_mask`). Returns delta^K ``[*like.shape]``.
    """
    _check("norm", norm, NORMS)
    eta = 2.5 * radius / max(steps, 1) if step_size is None else step_size
    keep = (lambda t: t) if mask is None else (lambda t: t * mask.to(like.dtype))
    if init is None:
        delta = random_start(like.detach(), radius, norm, init_std=init_std, generator=generator)
        delta = delta if mask is None else keep(delta)  # a masked start is still inside the ball
    else:
        delta = project(keep(init.detach().to(like.dtype)), radius, norm)
    if on_step is not None:
        on_step(0, delta.detach().clone())
    with torch.enable_grad():
        for t in range(1, steps + 1):
            if not create_graph or not delta.requires_grad:
                delta = delta.detach().requires_grad_(True)
            value = objective(delta).sum()
            # retain_graph: the objective may share a graph with tensors the caller still needs (the clean output).
            (grad,) = torch.autograd.grad(value, delta, create_graph=create_graph, retain_graph=True)
            step = ascent_direction(keep(grad), norm)
            delta = project((delta if create_graph else delta.detach()) + eta * step, radius, norm)
            if on_step is not None:
                on_step(t, delta.detach().clone())
    return delta if create_graph else delta.detach()


def _sum_after(x: torch.Tensor, row_dims: int) -> torch.Tensor:
    """Sum every dim after the first ``row_dims``: ``[*rows, ...] -> [*rows]``."""
    return x.flatten(row_dims).sum(-1) if x.dim() > row_dims else x


def policy_distance(perturbed: Any, clean: Any, distance: str, row_dims: int) -> torch.Tensor:
    """D(f(o + delta), f(o)) per row, ``[*rows]`` (see the module docstring for the contract).

    * tensors, ``'l2'``: sum over the output dims of (f(o + delta) - f(o))^2;
    * tensors, ``'kl'``: logits l over the last dim, sum_a p'_a (log p'_a - log p_a), p' = softmax(l(o + delta));
    * distributions (``'kl'`` only): kl_divergence(pi(.|o + delta), pi(.|o)) summed over the dims after the rows.
    """
    _check("distance", distance, DISTANCES)
    if isinstance(perturbed, Distribution):
        if distance != "kl":
            raise ValueError("a policy that returns a Distribution needs distance='kl'")
        return _sum_after(kl_divergence(perturbed, clean), row_dims)
    if distance == "l2":
        return _sum_after((perturbed - clean).pow(2), row_dims)
    log_p, log_q = perturbed.log_softmax(-1), clean.log_softmax(-1)
    return _sum_after((log_p.exp() * (log_p - log_q)).sum(-1), row_dims)


def _penalty(
    apply: Callable[[torch.Tensor], Any],
    x: torch.Tensor,
    *,
    row_dims: int,
    norm: str,
    radius: float,
    steps: int,
    step_size: float | None,
    form: str,
    distance: str,
    scale: str,
    baseline_gaussian: bool,
    init_std: float | None,
    generator: torch.Generator | None,
    on_step: Callable[[int, torch.Tensor], None] | None,
    mask: torch.Tensor | None = None,
    feature_scale: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """mean_rows D(apply(x + delta*), apply(x)) with delta* from PGD on ``x``; shared by the penalties."""
    _check("form", form, FORMS)
    _check("scale", scale, SCALES)
    _check("distance", distance, DISTANCES)
    if scale == "relative" and feature_scale is not None:
        raise ValueError("give either scale='relative' or a feature_scale, not both")
    stackelberg = form == "stackelberg"
    # relative: delta = u * |x| with u in the ball; feature_scale: delta = u * s (a fixed per-feature spread).
    # The scale is data, never differentiated.
    magnitude = x.detach().abs() if scale == "relative" else feature_scale
    perturb = (lambda u: x + u * magnitude) if magnitude is not None else (lambda u: x + u)
    clean = apply(x)  # not detached: the clean branch also sends gradient to theta (as in the reference)

    def objective(u: torch.Tensor) -> torch.Tensor:
        return policy_distance(apply(perturb(u)), clean, distance, row_dims)

    # Baseline-Gaussian discards the PGD direction, so its attack needs no graph in either form.
    u = pgd(
        objective, x, radius=radius, steps=steps, step_size=step_size, norm=norm,
        create_graph=stackelberg and not baseline_gaussian, init_std=init_std, generator=generator, on_step=on_step,
        mask=mask,
    )  # fmt: skip
    if baseline_gaussian:
        # Baseline-Gaussian: a random direction with exactly the PGD perturbation's size, no gradient through it.
        noise = _randn(u, generator)
        noise = noise if mask is None else noise * mask.to(noise.dtype)
        u = noise * ball_norm(u.detach(), norm) / ball_norm(noise, norm).clamp_min(_TINY)
    penalty = policy_distance(apply(perturb(u)), clean, distance, row_dims).mean()
    return penalty, (u if magnitude is None else u * magnitude).detach()


def ernie_penalty(
    policy: Callable[[torch.Tensor], Any],
    obs: torch.Tensor,
    *,
    radius: float,
    steps: int,
    step_size: float | None = None,
    norm: str = "l2",
    form: str = "stackelberg",
    distance: str = "l2",
    scale: str = "absolute",
    baseline_gaussian: bool = False,
    init_std: float | None = None,
    generator: torch.Generator | None = None,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
    mask: torch.Tensor | None = None,
    feature_scale: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """ERNIE's observation regularizer R = mean_b D(f(o_b + delta*_b), f(o_b)) and the perturbation delta*.

    ``policy(obs [*rows, D]) -> out [*rows, ...]`` (a tensor or a Distribution, see the module docstring);
    ``obs [*rows, D]``, usually ``[B, D]``: one ball per row. delta* = delta^K of :func:`pgd` maximizing D from a
    random start (``init_std``, ``generator``), with ``steps`` = K, ``step_size`` = eta (default 2.5 radius / K).

    * ``form='plain'`` ("ERNIE w/o ST"): delta* is detached; the gradient is
      dR/dtheta = partial_theta D(theta, delta*) through f(o + delta*) and f(o) only.
    * ``form='stackelberg'``: delta^K(theta) keeps its graph; dR/dtheta is the total derivative
      partial_theta D + (partial_delta D) (d delta^K / d theta), d delta^k/d theta propagated through every ascent
      step and every active projection.
    * ``scale='relative'``: delta = u * |o| with u in the ball.
    * ``feature_scale`` s (broadcastable to ``obs``, e.g. each feature's spread ``[D]``): delta = u * s with u in the
      ball, a ball sized per feature (a feature with s = 0 never moves).
    * ``mask`` (0/1, broadcastable to ``obs``): only the real features move (:func:`padding_mask`); the padded ones
      keep delta = 0 in the attack, in Baseline-Gaussian's random direction and in the returned delta.
    * ``baseline_gaussian=True``: the penalty at a random Gaussian direction with the same per-row size as the PGD
      delta* (the paper's "Baseline-Gaussian" control); the returned delta is that random one.

    Returns ``(penalty [] (0-dim, differentiable), delta [*rows, D] detached, in observation units)``. The caller
    adds ``weight * penalty`` to the actor (or Q) loss; weight 0 must skip the call to leave the base learner
    unchanged (the attack consumes random numbers).
    """
    _check("norm", norm, ("l2", "linf"))
    return _penalty(
        policy, obs, row_dims=obs.dim() - 1, norm=norm, radius=radius, steps=steps, step_size=step_size, form=form,
        distance=distance, scale=scale, baseline_gaussian=baseline_gaussian, init_std=init_std, generator=generator,
        on_step=on_step, mask=mask, feature_scale=feature_scale,
    )  # fmt: skip


def padding_mask(obs_dims: Sequence[int] | None, width: int, device: Any = None) -> torch.Tensor | None:
    """``[agents, width]`` 0/1 float mask of each agent's own observation features, or None when every agent's
    observation fills ``width`` (nothing padded).

    Agents with shorter observations are zero-padded at the end to the common ``width`` (``env.obs_dims`` gives each
    agent's own length; the same source as the Gaussian-noise evaluation's mask in envs/perturb_torch.py).
    """
    if obs_dims is None or all(int(d) == width for d in obs_dims):
        return None
    columns = torch.arange(width, device=device)
    return (columns[None, :] < torch.tensor([int(d) for d in obs_dims], device=device)[:, None]).float()


def mean_field_penalty(
    policy: Callable[[torch.Tensor, torch.Tensor], Any],
    own: torch.Tensor,
    atoms: torch.Tensor,
    *,
    radius: float,
    steps: int,
    step_size: float | None = None,
    form: str = "stackelberg",
    distance: str = "l2",
    baseline_gaussian: bool = False,
    init_std: float | None = None,
    generator: torch.Generator | None = None,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean-field (distributionally robust) ERNIE: the regularizer against the worst mean field nearby.

        R_MF = mean_b max_{W_1(d, d_b) <= eps} D(f(s_b, d), f(s_b, d_b))

    with the mean field d_b the empirical distribution of the atoms ``atoms [B, M, d]`` (the other agents'
    states). Moving atom i by delta_i changes d_b by at most (1/M) sum_i ||delta_i||_2 in W_1, so PGD runs on the
    stacked delta ``[B, M, d]`` inside {(1/M) sum_i ||delta_i||_2 <= eps} (the ``'w1'`` geometry of
    :func:`ball_norm`). ``policy(own [B, S], atoms [B, M, d]) -> out [B, ...]`` does its own aggregation (mean,
    histogram, attention); only the atoms are perturbed, ``own`` is not. When the policy reads only the atoms'
    mean, this is the l2-ball penalty on the mean. Forms, distances, ``baseline_gaussian`` as in
    :func:`ernie_penalty`; returns ``(penalty [], delta [B, M, d] detached)``.
    """
    return _penalty(
        lambda moved: policy(own, moved), atoms, row_dims=atoms.dim() - 2, norm="w1", radius=radius, steps=steps,
        step_size=step_size, form=form, distance=distance, scale="absolute", baseline_gaussian=baseline_gaussian,
        init_std=init_std, generator=generator, on_step=on_step,
    )  # fmt: skip


def _expand_rows(x: torch.Tensor, copies: int) -> torch.Tensor:
    """``[B, ...] -> [B * copies, ...]``, each row repeated ``copies`` times consecutively."""
    return x.unsqueeze(1).expand(x.shape[0], copies, *x.shape[1:]).reshape(x.shape[0] * copies, *x.shape[1:])


@torch.no_grad()
def greedy_action_attack(
    q_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    state: torch.Tensor,
    actions: torch.Tensor,
    n_actions: int,
    budget: int,
    avail_actions: torch.Tensor | None = None,
) -> torch.Tensor:
    """ERNIE-A's worst joint action within Hamming distance ``budget`` of ``actions``, found greedily.

        a' <- a; changed <- {}
        repeat K times: (j*, b*) = argmax_{j not in changed, b != a'_j} (Q(s, a) - Q(s, a' with a'_j = b))^2
                        a'_{j*} <- b*;  changed <- changed + {j*}

    All N (n_actions) candidates of a round are scored in one call of ``q_fn(state [R, ...], actions [R, N] long)
    -> [R]`` (R = B N n_actions). ``state [B, ...]``, ``actions [B, N]`` long; ``avail_actions [B, N, n_actions]``
    bool excludes unavailable actions. K = 1 is the exact maximum; for K > 1 the greedy value is a lower bound of
    the Hamming-ball maximum. A row with no admissible change left keeps its a'. Returns a' ``[B, N]`` (no
    gradient: the argmax is not differentiated).
    """
    batch, agents = actions.shape
    q_clean = q_fn(state, actions)  # [B]
    worst = actions.clone()
    changed = torch.zeros_like(actions, dtype=torch.bool)
    choices = torch.arange(n_actions, device=actions.device)
    agent_is_j = torch.eye(agents, dtype=torch.bool, device=actions.device)  # [j, agent]
    copies = agents * n_actions
    states = _expand_rows(state, copies)
    for _ in range(min(budget, agents)):
        # candidates[b, j, c, :] = worst[b] with agent j's action set to c; [B, N, n_actions, N]
        candidates = torch.where(agent_is_j[None, :, None, :], choices[None, None, :, None], worst[:, None, None, :])
        q = q_fn(states, candidates.reshape(batch * copies, agents)).reshape(batch, agents, n_actions)
        score = (q - q_clean[:, None, None]).pow(2)
        invalid = changed[:, :, None] | (choices[None, None, :] == worst[:, :, None])
        if avail_actions is not None:
            invalid = invalid | ~avail_actions.bool()
        score = score.masked_fill(invalid, -torch.inf).flatten(1)  # [B, N * n_actions]
        best, index = score.max(-1)
        can_change = best > -torch.inf
        rows = torch.arange(batch, device=actions.device)
        agent, choice = index // n_actions, index % n_actions
        worst[rows, agent] = torch.where(can_change, choice, worst[rows, agent])
        changed[rows, agent] |= can_change
    return worst


def ernie_a_penalty(
    q_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    state: torch.Tensor,
    actions: torch.Tensor,
    n_actions: int,
    budget: int,
    avail_actions: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """ERNIE-A's critic regularizer R_A = mean_b (Q(s_b, a_b) - Q(s_b, a'_b))^2 for discrete joint actions.

    a' from :func:`greedy_action_attack` (fixed, no gradient through the search); the gradient reaches the critic
    through both Q terms. Shapes as there. Returns ``(penalty [], worst_actions [B, N])``; the caller adds
    ``weight * penalty`` to the critic loss.
    """
    worst = greedy_action_attack(q_fn, state, actions, n_actions, budget, avail_actions)
    return (q_fn(state, actions) - q_fn(state, worst)).pow(2).mean(), worst


def continuous_ernie_a_penalty(
    q_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    state: torch.Tensor,
    actions: torch.Tensor,
    budget: int,
    **attack: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """R_A = mean_b (Q(s_b, a_b) - Q(s_b, a'_b))^2 for box actions ``[B, N, A]``, a' from
    :func:`greedy_continuous_action_attack` (``attack``: its keyword arguments), fixed. Returns
    ``(penalty [], worst_actions [B, N, A])``."""
    worst = greedy_continuous_action_attack(q_fn, state, actions, budget, **attack)
    return (q_fn(state, actions) - q_fn(state, worst)).pow(2).mean(), worst


def greedy_continuous_action_attack(
    q_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    state: torch.Tensor,
    actions: torch.Tensor,
    budget: int,
    *,
    steps: int = 3,
    step_size: float | None = None,
    low: float = -1.0,
    high: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """ERNIE-A for box actions: the K agents whose own actions, moved anywhere in the box, hurt Q the most.

    ``q_fn(state [R, ...], actions [R, N, A]) -> [R]``; ``actions [B, N, A]`` in [low, high]. Each round tries every
    agent j not yet changed, in one batch of B N rows: agent j's action starts uniform in the box and takes
    ``steps`` sign-gradient steps (size ``step_size``, default (high - low) / 4) on (Q(s, a) - Q(s, a'))^2, clamped
    to the box; the agent with the largest score keeps its attacked action. K = ``budget`` rounds. Returns a'
    ``[B, N, A]``, detached. The squared difference is flat at a' = a, hence the random start.
    """
    batch, agents, _ = actions.shape
    eta = (high - low) / 4.0 if step_size is None else step_size
    with torch.no_grad():
        q_clean = _expand_rows(q_fn(state, actions), agents)  # [B N]
    states = _expand_rows(state, agents)
    agent_is_j = torch.eye(agents, dtype=torch.bool, device=actions.device)[None, :, :, None]  # [1, j, agent, 1]
    worst = actions.detach().clone()
    changed = torch.zeros(batch, agents, dtype=torch.bool, device=actions.device)
    for _ in range(min(budget, agents)):
        base = worst[:, None].expand(batch, agents, *worst.shape[1:])  # [B, j, N, A]
        start = low + (high - low) * _rand(base.shape, actions, generator)
        moved = torch.where(agent_is_j, start, base)
        for _ in range(steps):
            with torch.enable_grad():
                moved = moved.detach().requires_grad_(True)
                score = (q_fn(states, moved.reshape(batch * agents, agents, -1)) - q_clean).pow(2).sum()
                (grad,) = torch.autograd.grad(score, moved)
            moved = torch.where(agent_is_j, (moved.detach() + eta * grad.sign()).clamp(low, high), base)
        with torch.no_grad():
            score = (q_fn(states, moved.reshape(batch * agents, agents, -1)) - q_clean).pow(2).view(batch, agents)
        best = score.masked_fill(changed, -torch.inf).argmax(-1)  # [B]
        rows = torch.arange(batch, device=actions.device)
        worst = moved[rows, best].detach()
        changed[rows, best] = True
    return worst


def action_deviation(policy: Callable[[torch.Tensor], torch.Tensor], obs: torch.Tensor) -> Callable:
    """The attack objective ||mu(o') - mu(o)||^2 per row, for :func:`observation_attack`.

    ``policy(obs [*rows, D]) -> actions [*rows, A]``; the clean actions are computed once, without gradient.
    Returns ``objective(perturbed [*rows, D]) -> [*rows]``.
    """
    with torch.no_grad():
        clean = policy(obs)
    return lambda perturbed: (policy(perturbed) - clean).pow(2).sum(-1)


def observation_attack(
    objective: Callable[[torch.Tensor], torch.Tensor],
    obs: torch.Tensor,
    *,
    eps: float,
    steps: int = 10,
    norm: str = "linf",
    step_size: float | None = None,
    scale: str = "absolute",
    random_start: bool = True,
    generator: torch.Generator | None = None,
    on_step: Callable[[int, torch.Tensor], None] | None = None,
    mask: torch.Tensor | None = None,
) -> torch.Tensor:
    """The evaluation-time worst-case observation: o' = o + delta, delta = PGD argmax of ``objective(o + delta)``.

    Default: 10 sign steps (``norm='linf'``) of size 2.5 eps / steps from a uniform random start, |delta| <= eps
    per element; ``norm='l2'``: normalized steps, ||delta|| <= eps over the last dim. ``obs`` is ``[N, D]`` or
    ``[N, agents, D]``: every row (every agent of every env) has its own ball. ``objective(obs') -> [N]``,
    ``[N, agents]`` or a scalar: what to maximize, e.g. :func:`action_deviation` or minus a critic's Q of the
    attacked actions; rows are attacked independently when it is a sum of per-row terms. ``scale='relative'``
    perturbs by u * |o| as in :func:`ernie_penalty`. ``mask`` (0/1, broadcastable to ``obs``, e.g. ``[agents, D]``
    from :func:`padding_mask`): only those features are perturbed. Works under ``torch.no_grad()``; no parameter
    ``.grad`` is written. Returns o' detached, the shape of ``obs``.
    """
    _check("norm", norm, ("l2", "linf"))
    _check("scale", scale, SCALES)
    obs = obs.detach()
    magnitude = obs.abs() if scale == "relative" else torch.ones_like(obs)
    u = pgd(
        lambda u: objective(obs + u * magnitude), obs, radius=eps, steps=steps, step_size=step_size, norm=norm,
        init_std=None if random_start else 0.0, generator=generator, on_step=on_step, mask=mask,
    )  # fmt: skip
    return (obs + u * magnitude).detach()


def value_drop(
    team_value: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    policy: Callable[[torch.Tensor], torch.Tensor],
    obs: torch.Tensor,
) -> Callable:
    """The value-aimed attack objective -Q(s, mu(o')) per env, for :func:`observation_attack`.

    ``obs [N, agents, D]`` is the true state the centralized critic sees (s = the clean joint observation);
    ``policy(obs') -> actions [N, agents, A]`` acts on the perturbed observations; ``team_value(obs, actions) ->
    [N]`` is the critic's value of that joint action (MADDPG: mean_k Q_k). Maximizing the objective lowers the value
    of the joint action the perturbed agents take. Returns ``objective(perturbed [N, agents, D]) -> [N]``.
    """
    clean = obs.detach()
    return lambda perturbed: -team_value(clean, policy(perturbed))
