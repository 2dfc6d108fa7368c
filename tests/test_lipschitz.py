"""The Lipschitz meter (agents/robustness/lipschitz.py): exact on linear maps, agrees with an independent per-row
Jacobian
on the suite's networks (in-place ReLU), orders its estimators as theory says, and summarizes them as floats."""

import numpy as np
import pytest
import torch

from agents.engine.nets import SquashedGaussianActor, mlp
from agents.robustness.lipschitz import (
    jacobian_spectral_norm,
    layer_spectral_product,
    lipschitz_report,
    pgd_ratio,
    random_direction_ratio,
)


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def linear_map():
    # W = U diag(3, 1, 0.5) V^T: sigma_max = 3 by construction, a clear gap to the next singular value
    u, _ = torch.linalg.qr(torch.randn(4, 3, generator=gen(1), dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(6, 3, generator=gen(2), dtype=torch.float64))
    weight = u @ torch.diag(torch.tensor([3.0, 1.0, 0.5], dtype=torch.float64)) @ v.T  # [4, 6]
    return weight, (lambda o: o @ weight.T + 1.0)


def test_every_estimator_returns_sigma_max_on_a_linear_map():
    weight, fn = linear_map()
    obs = torch.randn(12, 6, generator=gen(3), dtype=torch.float64)
    assert torch.allclose(jacobian_spectral_norm(fn, obs), torch.full((12,), 3.0, dtype=torch.float64), rtol=1e-10)
    assert torch.allclose(pgd_ratio(fn, obs, 0.05, generator=gen()), torch.full((12,), 3.0, dtype=torch.float64),
                          rtol=1e-6)  # fmt: skip
    random = random_direction_ratio(fn, obs, 0.05, directions=20, generator=gen())
    assert (random <= 3.0 + 1e-9).all() and (random > 1.0).all()
    report = lipschitz_report(fn, obs, radius=0.05, generator=gen())
    keys = {f"{name}_{stat}" for name in ("jacobian", "pgd", "random") for stat in ("mean", "p95", "max")}
    assert set(report) == {"radius"} | keys
    assert all(type(v) is float for v in report.values())
    for key in ("jacobian_mean", "jacobian_p95", "jacobian_max", "pgd_mean", "pgd_max"):
        assert report[key] == pytest.approx(3.0, rel=1e-6)
    assert report["random_max"] <= 3.0 + 1e-9


def test_many_random_directions_approach_sigma_max_in_two_dimensions():
    rotation = torch.tensor([[0.6, -0.8], [0.8, 0.6]], dtype=torch.float64)
    weight = rotation @ torch.diag(torch.tensor([3.0, 1.0], dtype=torch.float64))  # sigma_max 3
    obs = torch.randn(4, 2, generator=gen(), dtype=torch.float64)
    random = random_direction_ratio(lambda o: o @ weight.T, obs, 0.1, directions=500, generator=gen(1))
    assert (random <= 3.0 + 1e-9).all() and (random >= 3.0 * (1 - 1e-3)).all()


def per_row_jacobian_norm(fn, obs: torch.Tensor) -> torch.Tensor:
    """Independent reference: autograd's full Jacobian of one row at a time, then its singular values."""
    norms = []
    for row in obs:
        jac = torch.autograd.functional.jacobian(lambda o: fn(o.unsqueeze(0)).squeeze(0), row)
        norms.append(torch.linalg.svdvals(jac.reshape(-1, row.shape[0]))[0])
    return torch.stack(norms)


@pytest.mark.parametrize("method", ["vmap", "autograd"])
@pytest.mark.parametrize("which", ["mlp", "actor"])
def test_jacobian_norm_matches_per_row_autograd_on_the_suite_networks(which, method):
    torch.manual_seed(0)
    if which == "mlp":
        net = mlp(5, (16, 16), 3)  # in-place ReLU under vmap and jacrev
        fn = net
    else:
        actor = SquashedGaussianActor(5, 2, (16, 16))
        fn = actor.deterministic
    obs = torch.randn(7, 5)
    assert torch.allclose(jacobian_spectral_norm(fn, obs, method=method), per_row_jacobian_norm(fn, obs), rtol=1e-5)


def test_scalar_outputs_are_measured_as_gradient_norms():
    torch.manual_seed(0)
    critic = mlp(4 + 2, (16,), 1, act="tanh")
    action = torch.tensor([0.3, -0.2])
    fn = lambda o: critic(torch.cat([o, action.expand(o.shape[0], 2)], -1)).squeeze(-1)  # Q(o, a) in o: [B]
    obs = torch.randn(5, 4, requires_grad=True)
    (grad,) = torch.autograd.grad(fn(obs).sum(), obs)
    for method in ("vmap", "autograd"):
        assert torch.allclose(jacobian_spectral_norm(fn, obs, method=method), grad.norm(dim=-1), rtol=1e-5)
    assert random_direction_ratio(fn, obs.detach(), 0.01).shape == (5,)


def test_pgd_finds_more_than_random_directions_and_matches_the_jacobian_at_small_radius():
    torch.manual_seed(0)
    net = mlp(8, (32, 32), 4, act="tanh").double()
    obs = torch.randn(16, 8, dtype=torch.float64)
    jacobian = jacobian_spectral_norm(net, obs)
    # at a vanishing radius the ratio is the linearization's; one row's top two singular values are 0.200 and
    # 0.180, so the power-iteration-like ascent needs more than the default 20 steps there
    adversarial = pgd_ratio(net, obs, 1e-4, steps=60, generator=gen())
    random = random_direction_ratio(net, obs, 1e-4, directions=20, generator=gen())
    assert torch.allclose(adversarial, jacobian, rtol=1e-3)
    assert ((pgd_ratio(net, obs, 1e-4, generator=gen()) - jacobian) / jacobian).abs().mean() < 0.01
    assert (adversarial >= random - 1e-9).all() and adversarial.mean() > 1.1 * random.mean()


def test_layer_product_is_a_global_upper_bound():
    torch.manual_seed(0)
    net = mlp(5, (16, 16), 3)
    by_hand = 1.0
    for layer in (net[0], net[2], net[4]):
        by_hand *= torch.linalg.svdvals(layer.weight.detach().double())[0].item()
    assert layer_spectral_product(net) == pytest.approx(by_hand, rel=1e-12)
    assert jacobian_spectral_norm(net, torch.randn(32, 5)).max().item() <= by_hand * (1 + 1e-6)


def test_report_summaries_match_numpy_and_leave_parameters_alone():
    torch.manual_seed(0)
    net = mlp(5, (16,), 3, act="tanh")
    bank = torch.randn(50, 5)
    with torch.no_grad():  # evaluation code calls the meter without autograd
        report = lipschitz_report(net, bank, radius=0.1, chunk_size=16, generator=gen())
    jacobian = jacobian_spectral_norm(net, bank).double().numpy()
    assert report["jacobian_mean"] == pytest.approx(jacobian.mean(), rel=1e-6)
    assert report["jacobian_p95"] == pytest.approx(np.percentile(jacobian, 95), rel=1e-6)
    assert report["jacobian_max"] == pytest.approx(jacobian.max(), rel=1e-6)
    assert report["random_max"] <= report["pgd_max"] + 1e-6
    assert all(p.grad is None for p in net.parameters())
