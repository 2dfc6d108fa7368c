"""Sparsemax / spmax, the regularizer strategies and the soft Q-learning losses (agents/prompt/sparse.py, losses.py).

Expected values come from independent computations: the sparsemax threshold by bisection on
sum_i max(z_i - tau, 0) = 1 (not the sort formula), spmax from its variational / squared form,
logsumexp with math.exp, and the losses from explicit loops over batch and time.
"""

import math

import pytest
import torch
from torch import nn

from agents.prompt.losses import LOSSES, per_step_losses, polyak_target, soft_q_loss
from agents.prompt.sparse import (
    FILL_GAP,
    SoftmaxRegularizer,
    SparsemaxRegularizer,
    apply_mask,
    lm_filter_mask,
    make_regularizer,
    sparsemax,
    spmax,
    support_size,
    top_k_mask,
)

torch.set_num_threads(1)
F64 = torch.float64


def tau_bisection(z: list[float]) -> float:
    """The tau with sum_i max(z_i - tau, 0) = 1, by bisection on [max - 1, max] (the sum falls in tau)."""
    lo, hi = max(z) - 1.0, max(z)
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if sum(max(v - mid, 0.0) for v in z) > 1.0:
            lo = mid
        else:
            hi = mid
    return 0.5 * (lo + hi)


def spmax_reference(z: list[float]) -> float:
    """1/2 sum_{z_i > tau} (z_i^2 - tau^2) + 1/2, with tau by bisection."""
    tau = tau_bisection(z)
    return 0.5 * sum(v * v - tau * tau for v in z if v > tau) + 0.5


def logsumexp_reference(z: list[float]) -> float:
    top = max(z)
    return top + math.log(sum(math.exp(v - top) for v in z))


def random_scores(rows: int = 40, n: int = 9, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    scale = torch.logspace(-2, 1, rows, dtype=F64).unsqueeze(-1)  # from near-uniform to very peaked
    return torch.randn(rows, n, generator=g, dtype=F64) * scale


# ---- sparsemax and spmax ------------------------------------------------------------------------


def test_sparsemax_and_spmax_by_hand():
    # sorted 1, 0.8, 0.1, -1: k=2 passes (1 + 1.6 > 1.8), k=3 fails (1 + 0.3 < 1.9) -> K = 2,
    # tau = (1.8 - 1) / 2 = 0.4, pi = [0.6, 0.4, 0, 0], spmax = 0.4 + 0.5 + (0.36 + 0.16) / 2 = 1.16
    z = torch.tensor([0.1, 1.0, -1.0, 0.8], dtype=F64)
    assert torch.allclose(sparsemax(z), torch.tensor([0.0, 0.6, 0.0, 0.4], dtype=F64), atol=1e-15)
    assert spmax(z).item() == pytest.approx(1.16, abs=1e-14)
    assert support_size(z).item() == 2


def test_sparsemax_on_simplex_exact_zeros_outside_support():
    z = random_scores()
    pi = sparsemax(z)
    assert torch.allclose(pi.sum(-1), torch.ones(len(z), dtype=F64), atol=1e-12)
    assert (pi >= 0).all()
    for row, p, k in zip(z.tolist(), pi, support_size(z).tolist()):
        tau = tau_bisection(row)
        outside = torch.tensor([v <= tau for v in row])
        assert (p[outside] == 0).all()  # exact zeros, not small numbers
        assert torch.allclose(p[~outside], torch.tensor(row, dtype=F64)[~outside] - tau, atol=1e-10)
        assert (p > 0).sum().item() == k == (~outside).sum().item()
    assert (support_size(z) > 1).any() and (support_size(z) == 1).any()  # both regimes covered


def test_peaked_batches_take_the_partial_sort_and_agree_with_the_reference():
    # every row peaked: the candidates within 1 of the max are few, so only a top-m is sorted
    z = torch.randn(20, 40, generator=torch.Generator().manual_seed(17), dtype=F64) * 10
    assert 2 * (z > z.max(-1, keepdim=True).values - 1).sum(-1).max() <= 40
    expected = torch.tensor([spmax_reference(row) for row in z.tolist()], dtype=F64)
    assert torch.allclose(spmax(z), expected, atol=1e-9)
    taus = torch.tensor([tau_bisection(row) for row in z.tolist()], dtype=F64)
    assert torch.allclose(sparsemax(z), (z - taus.unsqueeze(-1)).clamp(min=0), atol=1e-9)
    z.requires_grad_(True)
    (grad,) = torch.autograd.grad(spmax(z).sum(), z)
    assert torch.allclose(grad, sparsemax(z.detach()), atol=1e-12)


def test_spmax_matches_squared_form_and_variational_maximum():
    z = random_scores(seed=1)
    expected = torch.tensor([spmax_reference(row) for row in z.tolist()], dtype=F64)
    assert torch.allclose(spmax(z), expected, atol=1e-9)
    # max over the simplex of <pi, z> + 1/2 (1 - ||pi||^2): attained at sparsemax, never exceeded
    pi = sparsemax(z)
    attained = (pi * z).sum(-1) + 0.5 * (1 - pi.pow(2).sum(-1))
    assert torch.allclose(attained, spmax(z), atol=1e-12)
    g = torch.Generator().manual_seed(2)
    for _ in range(20):
        other = torch.rand(z.shape, generator=g, dtype=F64).pow(3)
        other = other / other.sum(-1, keepdim=True)
        assert ((other * z).sum(-1) + 0.5 * (1 - other.pow(2).sum(-1)) <= spmax(z) + 1e-12).all()


def test_spmax_gradient_is_sparsemax():
    z = random_scores(seed=3).requires_grad_(True)
    (grad,) = torch.autograd.grad(spmax(z).sum(), z)
    assert torch.allclose(grad, sparsemax(z.detach()), atol=1e-12)
    # and by central finite differences, independent of autograd
    eps = 1e-6
    for i in range(z.shape[-1]):
        step = torch.zeros_like(z[:5]).detach()
        step[:, i] = eps
        numeric = (spmax(z[:5].detach() + step) - spmax(z[:5].detach() - step)) / (2 * eps)
        assert torch.allclose(numeric, sparsemax(z[:5].detach())[:, i], atol=1e-6)


def test_shift_equivariance():
    z = random_scores(seed=4)
    for c in (-7.5, 0.3, 1e3):
        assert torch.allclose(spmax(z + c), spmax(z) + c, atol=1e-9)
        assert torch.allclose(sparsemax(z + c), sparsemax(z), atol=1e-9)


def test_bounds_and_their_equality_cases():
    z = random_scores(seed=5)
    n = z.shape[-1]
    top = z.max(-1).values
    value = spmax(z)
    assert (value >= top - 1e-12).all() and (value <= top + 0.5 * (1 - 1 / n) + 1e-12).all()
    # one dominant score (>= 1 above all others): spmax = max; n equal scores: z + 1/2 - 1/(2n)
    dominant = torch.tensor([3.0, 2.0, 1.5, -4.0], dtype=F64)
    assert spmax(dominant).item() == pytest.approx(3.0, abs=1e-14)
    equal = torch.full((5,), 0.7, dtype=F64)
    assert spmax(equal).item() == pytest.approx(0.7 + 0.5 - 1 / 10, abs=1e-14)
    assert torch.allclose(sparsemax(equal), torch.full((5,), 0.2, dtype=F64))


def test_consistency_identity_on_the_support():
    # z_a - spmax(z) = pi_a - (1 + ||pi||^2) / 2 for every a in the support
    z = random_scores(seed=6)
    pi = sparsemax(z)
    lhs = z - spmax(z).unsqueeze(-1)
    rhs = pi - 0.5 * (1 + pi.pow(2).sum(-1, keepdim=True))
    inside = pi > 0
    assert torch.allclose(lhs[inside], rhs[inside], atol=1e-12)


def test_tokens_one_below_the_best_are_cut_and_ties_move_together():
    g = torch.Generator().manual_seed(7)
    z = torch.randn(30, 8, generator=g, dtype=F64) * 3
    pi = sparsemax(z)
    assert (pi[z <= z.max(-1, keepdim=True).values - 1] == 0).all()
    # tied scores are both in or both out of the support, whatever their order
    tied = torch.tensor([0.5, 0.2, 0.5, 0.2, -0.4], dtype=F64)
    p = sparsemax(tied)
    assert p[0] == p[2] and p[1] == p[3]
    assert torch.equal(sparsemax(tied.flip(0)).flip(0), p)


def test_temperature_scales_value_and_policy():
    q = random_scores(seed=8)
    for alpha in (0.3, 1.0, 4.0):
        sparse, soft = SparsemaxRegularizer(alpha), SoftmaxRegularizer(alpha)
        assert torch.allclose(sparse.value(q), alpha * spmax(q / alpha), atol=1e-12)
        assert torch.allclose(sparse.policy(q), sparsemax(q / alpha), atol=1e-12)
        assert torch.allclose(soft.value(q), alpha * torch.logsumexp(q / alpha, -1), atol=1e-12)
        assert torch.allclose(soft.policy(q), torch.softmax(q / alpha, -1), atol=1e-12)
    assert make_regularizer("sparsemax", 2.0) == SparsemaxRegularizer(2.0)
    with pytest.raises(ValueError, match="softmax"):
        make_regularizer("tsallis")


# ---- masking -------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float32, F64])
def test_masked_tokens_never_enter_the_support_even_with_huge_q(dtype):
    g = torch.Generator().manual_seed(9)
    q = torch.randn(6, 12, generator=g, dtype=dtype) * 0.1  # near-uniform: a large support
    mask = torch.rand(6, 12, generator=g) < 0.6
    mask[:, 0] = True
    mask[:, 1] = False
    q[:, 1] = 1e6  # a filtered token with by far the largest Q
    q[~mask & (torch.rand(6, 12, generator=g) < 0.5)] = 1e30
    for reg in (SparsemaxRegularizer(), SoftmaxRegularizer(), SparsemaxRegularizer(0.01)):
        pi = reg.policy(q, mask)
        assert torch.isfinite(pi).all() and torch.isfinite(reg.value(q, mask)).all()
        assert (pi[~mask] == 0).all()
        assert torch.allclose(pi.sum(-1), torch.ones(6, dtype=dtype), atol=1e-5)
        assert mask.gather(-1, reg.greedy(q, mask).unsqueeze(-1)).all()
        draws = reg.sample(q.repeat(50, 1), mask.repeat(50, 1), torch.Generator().manual_seed(0))
        assert mask.repeat(50, 1).gather(-1, draws.unsqueeze(-1)).all()
        # value and policy equal those computed on the allowed tokens alone
        for row in range(6):
            kept = q[row][mask[row]].unsqueeze(0)
            assert torch.allclose(reg.value(q[row : row + 1], mask[row : row + 1]), reg.value(kept), atol=1e-5)
            assert torch.allclose(pi[row][mask[row]], reg.policy(kept)[0], atol=1e-6)
    assert (SparsemaxRegularizer().support_size(q, mask) <= mask.sum(-1)).all()


def test_masked_scores_get_no_gradient_and_a_finite_fill():
    q = torch.tensor([[0.2, 5.0, 0.1, -0.3]], dtype=F64, requires_grad=True)
    mask = torch.tensor([[True, False, True, True]])
    filled = apply_mask(q, mask)
    assert filled[0, 1].item() == pytest.approx(0.2 - FILL_GAP)
    for reg in (SparsemaxRegularizer(), SoftmaxRegularizer()):
        (grad,) = torch.autograd.grad(reg.value(q, mask).sum(), q)
        assert grad[0, 1] == 0 and torch.allclose(grad, reg.policy(q.detach(), mask))
    # a row with nothing allowed is treated as unmasked instead of becoming NaN
    nothing = torch.zeros(1, 4, dtype=torch.bool)
    assert torch.allclose(sparsemax(q.detach(), nothing), sparsemax(q.detach()))


def test_lm_filter_keeps_exactly_the_top_k_of_the_lm_logits():
    g = torch.Generator().manual_seed(10)
    logits = torch.randn(4, 20, generator=g)
    mask = lm_filter_mask(logits, 5)
    for row in range(4):
        expected = sorted(range(20), key=lambda i: -logits[row, i].item())[:5]
        assert sorted(mask[row].nonzero().squeeze(-1).tolist()) == sorted(expected)
    assert lm_filter_mask(logits, None).all() and lm_filter_mask(logits, 20).all()
    assert (top_k_mask(torch.zeros(2, 6), 3).sum(-1) == 3).all()  # ties still keep exactly k


def test_half_precision_is_computed_in_float32():
    q = (torch.randn(3, 50) * 0.01).half()
    for reg in (SparsemaxRegularizer(), SoftmaxRegularizer()):
        assert reg.policy(q).dtype == torch.float32
        assert torch.allclose(reg.policy(q).sum(-1), torch.ones(3), atol=1e-5)


# ---- sampling ------------------------------------------------------------------------------------


def test_sparsemax_sampling_frequencies_match_probabilities():
    # sorted 0.9, 0.8, 0.7, 0.6 pass (k=4: 1 + 2.4 > 3.0), 0.1 fails -> tau = 0.5, pi = [.4, 0, .3, 0, .2, .1]
    q = torch.tensor([0.9, 0.1, 0.8, -0.8, 0.7, 0.6], dtype=F64)
    pi = sparsemax(q)
    assert torch.allclose(pi, torch.tensor([0.4, 0.0, 0.3, 0.0, 0.2, 0.1], dtype=F64), atol=1e-15)
    draws = 40_000
    actions = SparsemaxRegularizer().sample(q.expand(draws, 6), None, torch.Generator().manual_seed(11))
    counts = torch.bincount(actions, minlength=6).to(F64)
    assert counts[pi == 0].sum() == 0  # exact zeros are never drawn
    expected = draws * pi[pi > 0]
    chi_square = ((counts[pi > 0] - expected).pow(2) / expected).sum().item()
    assert chi_square < 16.27  # chi-square, 3 degrees of freedom, p = 0.001


def test_softmax_top_k_sampling_stays_in_the_top_k_and_matches_truncated_softmax():
    q = torch.tensor([2.0, 0.5, 1.5, -1.0, 1.0], dtype=F64)
    draws = 40_000
    actions = SoftmaxRegularizer().sample(q.expand(draws, 5), None, torch.Generator().manual_seed(12), top_k=3)
    counts = torch.bincount(actions, minlength=5).to(F64)
    assert counts[1] == 0 and counts[3] == 0
    kept = torch.tensor([2.0, 1.5, 1.0], dtype=F64)
    expected = draws * torch.exp(kept) / torch.exp(kept).sum()
    chi_square = ((counts[[0, 2, 4]] - expected).pow(2) / expected).sum().item()
    assert chi_square < 13.82  # 2 degrees of freedom, p = 0.001
    # the same generator state gives the same draws
    again = SoftmaxRegularizer().sample(q.expand(draws, 5), None, torch.Generator().manual_seed(12), top_k=3)
    assert torch.equal(actions, again)


def test_greedy_ties_go_to_the_lowest_index():
    q = torch.tensor([[0.1, 0.7, 0.7, 0.2]])
    assert SparsemaxRegularizer().greedy(q).item() == 1
    assert SparsemaxRegularizer().greedy(q, torch.tensor([[True, False, True, True]])).item() == 2


# ---- losses --------------------------------------------------------------------------------------


def reference_loss(q, q_target, actions, reward, kind, value_of, gamma=1.0, keep=None):
    """The papers' formulas with explicit loops; value_of(list of floats) is logsumexp or spmax.

    keep[b][t] lists the allowed token ids (None: all). Returns mean_b sum_t loss_bt.
    """
    batch, steps, vocab = q.shape
    total = 0.0
    for b in range(batch):
        allowed = [list(range(vocab)) if keep is None else keep[b][t] for t in range(steps)]
        Q = [q[b, t, actions[b, t]].item() for t in range(steps)]
        V = [value_of([q[b, t, i].item() for i in allowed[t]]) for t in range(steps)]
        Vb = [value_of([q_target[b, t, i].item() for i in allowed[t]]) for t in range(steps)]
        A = [Q[t] - V[t] for t in range(steps)]
        r = reward[b].item()
        for t in range(steps):
            last = t == steps - 1
            if kind == "v1_mc":
                term = (Q[t] - gamma ** (steps - 1 - t) * r) ** 2
            elif kind == "v1":
                term = (Q[t] - (r if last else gamma * Vb[t + 1])) ** 2
            else:
                step_target = (r - Vb[t]) if last else (gamma * Vb[t + 1] - Vb[t])
                e2 = (A[t] - step_target) ** 2
                path = sum(gamma ** (k - t) * A[k] for k in range(t, steps))
                e3 = (path - (gamma ** (steps - 1 - t) * r - Vb[t])) ** 2
                term = {"v2": e2, "v3": e3, "v2_v3": 0.5 * (e2 + e3)}[kind]
            total += term
    return total / batch


def loss_batch(batch=3, steps=2, vocab=5, seed=13):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, steps, vocab, generator=g, dtype=F64)
    q_target = q + 0.3 * torch.randn(batch, steps, vocab, generator=g, dtype=F64)
    actions = torch.randint(0, vocab, (batch, steps), generator=g)
    reward = torch.randn(batch, generator=g, dtype=F64) * 2
    return q, q_target, actions, reward


@pytest.mark.parametrize("kind", LOSSES)
@pytest.mark.parametrize("name", ["softmax", "sparsemax"])
@pytest.mark.parametrize("steps,gamma", [(2, 1.0), (3, 0.9)])
def test_every_loss_matches_the_formulas_by_loops(kind, name, steps, gamma):
    # softmax with no filter: this is RLPrompt's soft Q-learning loss family, term by term
    q, q_target, actions, reward = loss_batch(steps=steps)
    value_of = logsumexp_reference if name == "softmax" else spmax_reference
    loss, metrics = soft_q_loss(q, q_target, actions, reward, make_regularizer(name), kind, gamma)
    expected = reference_loss(q, q_target, actions, reward, kind, value_of, gamma)
    assert loss.item() == pytest.approx(expected, rel=1e-9, abs=1e-12)
    assert all(v.dim() == 0 and not v.requires_grad for v in metrics.values())


def rlprompt_losses(logits, target_logits, actions, rewards):
    """RLPrompt's soft Q-learning losses as tensor code, gamma = 1, fixed length: name -> [B, T] squared residuals.

    Written straight from the formulas (logsumexp values, flipped cumulative sum for the path).
    """
    Q = logits.gather(-1, actions.unsqueeze(-1)).squeeze(-1)
    V = logits.logsumexp(-1)
    A = Q - V
    V_ = target_logits.logsumexp(-1)
    Q_ = torch.zeros_like(Q)
    Q_[:, :-1] = V_[:, 1:]
    Q_[:, -1] = rewards
    A_ = torch.zeros_like(Q)
    A_[:, :-1] = V_[:, 1:] - V_[:, :-1]
    A_[:, -1] = rewards - V_[:, -1]
    path = A.flip(-1).cumsum(-1).flip(-1)
    out = {"v1": (Q - Q_) ** 2, "v2": (A - A_) ** 2, "v3": (path - (rewards.unsqueeze(-1) - V_)) ** 2}
    out["v2_v3"] = (out["v2"] + out["v3"]) / 2
    return out


@pytest.mark.parametrize("filtered", [False, True])
def test_softmax_equals_rlprompt_losses(filtered):
    # filter off: exactly RLPrompt's losses; filter on: RLPrompt's own -inf top-k filter ("fluent")
    q, q_target, actions, reward = loss_batch(batch=4, steps=5, vocab=7, seed=18)
    mask = None
    if filtered:
        mask = lm_filter_mask(torch.randn(4, 5, 7, generator=torch.Generator().manual_seed(19), dtype=F64), 4)
        mask.scatter_(-1, actions.unsqueeze(-1), True)
        q, q_target = q.masked_fill(~mask, 50.0), q_target.masked_fill(~mask, 50.0)  # must not matter
    neg_inf = (lambda x: x) if mask is None else (lambda x: x.masked_fill(~mask, -torch.inf))
    expected = rlprompt_losses(neg_inf(q), neg_inf(q_target), actions, reward)
    for kind in ("v1", "v2", "v3", "v2_v3"):
        losses, _ = per_step_losses(q, q_target, actions, reward, SoftmaxRegularizer(), kind, mask=mask)
        assert torch.allclose(losses, expected[kind], rtol=1e-10, atol=1e-12)
        loss, _ = soft_q_loss(q, q_target, actions, reward, SoftmaxRegularizer(), kind, mask=mask)
        assert loss.item() == pytest.approx(expected[kind].sum(1).mean().item(), rel=1e-10)


def test_two_step_losses_with_numbers_by_hand():
    # B = 1, T = 2, V = 4, sparsemax, gamma = 1. Target row t=1: [2, 0, -3, 0] has one dominant
    # token, so Vb_1 = spmax = 2; target row t=0: [0.5] * 4 -> Vb_0 = 0.5 + 1/2 - 1/8 = 0.875.
    # Online rows: t=0 [1.5] * 4 -> V_0 = 1.875, A_0 = -0.375; t=1 [0, 3, 0, 0] -> V_1 = 3, A_1 = 0.
    q = torch.tensor([[[1.5] * 4, [0.0, 3.0, 0.0, 0.0]]], dtype=F64)
    q_target = torch.tensor([[[0.5] * 4, [2.0, 0.0, -3.0, 0.0]]], dtype=F64)
    actions = torch.tensor([[2, 1]])
    reward = torch.tensor([4.0], dtype=F64)
    reg = SparsemaxRegularizer()
    # v1:    (1.5 - 2)^2 + (3 - 4)^2 = 1.25;  v1_mc: (1.5 - 4)^2 + (3 - 4)^2 = 7.25
    # v2:    targets [2 - 0.875, 4 - 2] -> (-0.375 - 1.125)^2 + (0 - 2)^2 = 6.25
    # v3:    path sums [-0.375, 0]; targets [4 - 0.875, 4 - 2] -> (-0.375 - 3.125)^2 + 2^2 = 16.25
    expected = {"v1": 1.25, "v1_mc": 7.25, "v2": 6.25, "v3": 16.25, "v2_v3": 11.25}
    for kind, value in expected.items():
        assert soft_q_loss(q, q_target, actions, reward, reg, kind)[0].item() == pytest.approx(value, abs=1e-12)
    # gamma = 0.5 in v1_mc: targets [2, 4] -> (1.5 - 2)^2 + (3 - 4)^2 = 1.25
    assert soft_q_loss(q, q_target, actions, reward, reg, "v1_mc", 0.5)[0].item() == pytest.approx(1.25)


@pytest.mark.parametrize("kind", LOSSES)
def test_masked_losses_equal_the_losses_on_the_allowed_tokens(kind):
    q, q_target, actions, reward = loss_batch(steps=2, vocab=6, seed=14)
    g = torch.Generator().manual_seed(15)
    mask = torch.rand(3, 2, 6, generator=g) < 0.6
    mask.scatter_(-1, actions.unsqueeze(-1), True)  # taken tokens were allowed when sampled
    q_target = torch.where(mask, q_target, 1e4)  # huge target values on filtered tokens must not count
    keep = [[mask[b, t].nonzero().squeeze(-1).tolist() for t in range(2)] for b in range(3)]
    for name, value_of in (("softmax", logsumexp_reference), ("sparsemax", spmax_reference)):
        loss, _ = soft_q_loss(q, q_target, actions, reward, make_regularizer(name), kind, mask=mask)
        expected = reference_loss(q, q_target, actions, reward, kind, value_of, keep=keep)
        assert loss.item() == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("kind", LOSSES)
def test_gradient_reaches_the_online_q_only(kind):
    q, q_target, actions, reward = loss_batch()
    q.requires_grad_(True)
    q_target.requires_grad_(True)
    loss, _ = soft_q_loss(q, q_target, actions, reward, SparsemaxRegularizer(), kind)
    loss.backward()
    assert q_target.grad is None
    assert q.grad.abs().sum() > 0
    if kind.startswith("v1"):  # Q-regression: only the taken entries move
        taken = torch.zeros_like(q, dtype=torch.bool).scatter_(-1, actions.unsqueeze(-1), True)
        assert (q.grad[~taken] == 0).all()


def test_per_step_losses_shape_and_bad_inputs():
    q, q_target, actions, reward = loss_batch(steps=3)
    losses, parts = per_step_losses(q, q_target, actions, reward, SoftmaxRegularizer(), "v2_v3")
    assert losses.shape == (3, 3) and set(parts) == {"q_taken", "value", "target_value"}
    with pytest.raises(ValueError, match="v2_v3"):
        per_step_losses(q, q_target, actions, reward, SoftmaxRegularizer(), "v4")
    with pytest.raises(ValueError, match="shapes"):
        per_step_losses(q, q_target[:, :2], actions, reward, SoftmaxRegularizer(), "v2")


def test_polyak_target_by_hand():
    online, target = nn.Linear(2, 1), nn.Linear(2, 1)
    with torch.no_grad():
        online.weight.fill_(1.0)
        online.bias.fill_(2.0)
        target.weight.fill_(0.0)
        target.bias.fill_(-2.0)
    polyak_target(online, target, 0.25)
    assert torch.allclose(target.weight, torch.full((1, 2), 0.25))
    assert torch.allclose(target.bias, torch.tensor([-1.0]))
    assert torch.allclose(online.weight, torch.ones(1, 2))  # the online side is untouched


@pytest.mark.parametrize("kind", ["v1_mc", "v2_v3"])
@pytest.mark.parametrize("name", ["softmax", "sparsemax"])
def test_one_state_toy_problem_converges_to_the_best_token(kind, name):
    # one prompt token, reward r(a) known; Q is a free table trained on its own samples with a Polyak
    # target. The greedy token must become the best one, and under sparsemax the support must
    # shrink from near-uniform to the tokens within one temperature of the best.
    torch.manual_seed(0)
    rewards = torch.tensor([0.0, 1.0, 3.0, 2.5, -1.0, 0.5])
    q_table = nn.Parameter(torch.zeros(6))
    target = nn.Parameter(torch.zeros(6), requires_grad=False)
    holder, target_holder = nn.Module(), nn.Module()
    holder.q, target_holder.q = q_table, target
    reg = make_regularizer(name)
    generator = torch.Generator().manual_seed(16)
    for _ in range(150):
        polyak_target(holder, target_holder, 0.1)
        actions = reg.sample(q_table.detach().expand(16, 6), None, generator).unsqueeze(-1)  # [B, T=1]
        q = q_table.expand(16, 1, 6)
        loss, _ = soft_q_loss(q, target.expand(16, 1, 6), actions, rewards[actions[:, 0]], reg, kind)
        (grad,) = torch.autograd.grad(loss, q_table)
        with torch.no_grad():
            q_table -= 0.3 * grad  # plain gradient descent
    assert reg.greedy(q_table.detach()).item() == 2
    if name == "sparsemax":
        assert reg.support_size(q_table.detach()).item() <= 2  # only 3.0 and 2.5 are within 1 of the best
