"""Tests for agents/qarl/teacher.py and gamma.py: Gamma KL and importance weights, the self-paced temperature
teacher (floor, gate, trust region, the no-floor path from k = 50 to k = 1), its variants, exact
resume, and the per-episode discounted return helper."""

from __future__ import annotations

import dataclasses
import io
import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

from agents.engine.config import ConfigError
from agents.qarl.gamma import (
    discounted_returns,
    gamma_kl,
    importance_weighted_performance,
    log_importance_weights,
    trust_region,
)
from agents.qarl.teacher import GammaTeacher, TeacherConfig


def _numerical_kl(k1: float, b1: float, k2: float, b2: float) -> float:
    """KL(p || q) = integral p log(p / q) by quadrature, from scipy.stats' Gamma densities (scale = 1/rate)."""
    p, q = stats.gamma(a=k1, scale=1.0 / b1), stats.gamma(a=k2, scale=1.0 / b2)
    integrand = lambda x: math.exp(p.logpdf(x)) * (p.logpdf(x) - q.logpdf(x))
    # Integrate over the bulk of p (beyond 1e-12 in each tail the contribution is negligible).
    low, high = p.ppf(1e-12), p.ppf(1 - 1e-12)
    value, _ = integrate.quad(integrand, low, high, limit=500, points=[p.mean()], epsabs=1e-11, epsrel=1e-10)
    return value


@pytest.mark.parametrize(
    "k1, b1, k2, b2",
    [
        (43.3, 1000.0, 50.0, 1000.0),  # one curriculum step
        (50.0, 1000.0, 1.0, 1000.0),  # initial distribution vs the target
        (1.0, 1000.0, 1.88, 1000.0),  # last step, near the target
        (3.0, 2.0, 5.0, 0.5),  # different rates: the general closed form
    ],
)
def test_gamma_kl_matches_numerical_integration(k1, b1, k2, b2):
    expected = _numerical_kl(k1, b1, k2, b2)
    assert gamma_kl(k1, k2, b1, b2) == pytest.approx(expected, rel=1e-6, abs=1e-9)


def test_gamma_kl_with_a_shared_rate_does_not_depend_on_the_rate():
    assert gamma_kl(7.0, 3.0, 1000.0) == pytest.approx(gamma_kl(7.0, 3.0, 1.0), rel=1e-12)
    assert gamma_kl(7.0, 7.0) == 0.0


def test_log_importance_weights_are_density_ratios():
    alphas = np.array([0.01, 0.03, 0.05, 0.08])
    k, k_old, b = 40.0, 50.0, 1000.0
    expected = stats.gamma.logpdf(alphas, a=k, scale=1 / b) - stats.gamma.logpdf(alphas, a=k_old, scale=1 / b)
    np.testing.assert_allclose(log_importance_weights(alphas, k, k_old, b), expected, rtol=1e-10)
    returns = np.array([3.0, -1.0, 2.0, 5.0])
    j_hat = np.mean(np.exp(expected) * returns)
    assert importance_weighted_performance(alphas, returns, k, k_old, b) == pytest.approx(j_hat, rel=1e-10)


def test_trust_region_ends_have_kl_equal_to_the_bound():
    low, high = trust_region(50.0, 0.5, 1e-8)
    assert low < 50.0 < high
    assert gamma_kl(low, 50.0) == pytest.approx(0.5, abs=1e-9)
    assert gamma_kl(high, 50.0) == pytest.approx(0.5, abs=1e-9)


# ------------------------------------------------------------------ the self-paced update
def _run(teacher: GammaTeacher, returns: float, updates: int, generator: torch.Generator) -> list[dict]:
    reports = []
    for _ in range(updates):
        alphas = teacher.sample(teacher.config.min_pairs, generator)
        reports.append(teacher.update(alphas, torch.full_like(alphas, returns)))
    return reports


def test_teacher_follows_the_largest_admissible_steps_to_the_target():
    # With a constant return far above the floor only the trust region binds: each update moves k as
    # far towards k_T = 1 as KL(new || old) <= 0.5 allows (path computed by hand from the closed form).
    teacher = GammaTeacher(TeacherConfig())
    generator = torch.Generator().manual_seed(0)
    expected = [43.3, 37.1, 31.4, 26.1, 21.4, 17.2, 13.4, 10.1, 7.35, 5.05, 3.23, 1.88, 1.0]
    path, old = [], teacher.shape
    for _ in range(13):
        report = _run(teacher, 1e4, updates=1, generator=generator)[0]
        assert report["updated"] == 1.0 and report["accepted"] == 1.0
        assert report["kl"] == pytest.approx(gamma_kl(teacher.shape, old), abs=1e-12)
        assert report["kl"] <= 0.5 + 1e-12
        old = teacher.shape
        path.append(teacher.shape)
    assert [float(f"{k:.3g}") for k in path] == expected  # the hand-computed path, to 3 significant digits
    assert path[-1] == 1.0  # the last step reaches the target exactly
    final = _run(teacher, 1e4, updates=1, generator=generator)[0]
    assert final["accepted"] == 0.0 and teacher.shape == 1.0  # at the target: stays
    assert final["mean_alpha"] == pytest.approx(0.001) and final["kl_target"] == 0.0


def test_trust_constr_solver_takes_the_same_steps_within_its_tolerance():
    # Interior point: each step ends just inside the trust region, so compare every step with the exact
    # largest admissible step from the same starting shape (and allow it to fall short by <= 10 %).
    teacher = GammaTeacher(TeacherConfig(solver="trust_constr"))
    generator = torch.Generator().manual_seed(0)
    for _ in range(13):
        old = teacher.shape
        exact = max(1.0, trust_region(old, 0.5, 1e-8)[0])
        report = _run(teacher, 1e4, updates=1, generator=generator)[0]
        assert report["accepted"] == 1.0 and report["kl"] <= 0.5 + 1e-9
        assert exact <= teacher.shape < old
        assert teacher.shape - exact <= 0.1 * (old - exact)
    _run(teacher, 1e4, updates=1, generator=generator)
    assert teacher.shape == pytest.approx(1.0, abs=0.01)


def test_teacher_refuses_to_move_below_the_floor_and_never_moves_back():
    teacher = GammaTeacher(TeacherConfig(threshold=10.0))
    generator = torch.Generator().manual_seed(1)
    low = _run(teacher, 9.99, updates=3, generator=generator)
    assert all(r["updated"] == 1.0 and r["accepted"] == 0.0 for r in low)
    assert teacher.shape == 50.0 and not teacher.threshold_reached
    assert low[-1]["performance"] == pytest.approx(9.99) and low[-1]["floor"] == 10.0
    at_floor = _run(teacher, 10.0, updates=1, generator=generator)[0]  # exactly at the floor: the gate opens
    assert teacher.threshold_reached and at_floor["updated"] == 1.0
    # The move itself must keep the weighted estimate at or above the floor.
    assert teacher.shape <= 50.0 and at_floor["performance_new"] >= 10.0
    _run(teacher, 1e3, updates=1, generator=generator)
    assert teacher.shape < 50.0
    moved = teacher.shape
    after = _run(teacher, -5.0, updates=2, generator=generator)
    assert teacher.shape == moved and all(r["accepted"] == 0.0 for r in after)  # frozen, not raised
    assert after[-1]["threshold_reached"] == 1.0


@pytest.mark.parametrize("solver", ["bracket", "trust_constr"])
def test_performance_floor_stops_the_move_where_the_estimate_crosses_it(solver):
    # Returns that grow with alpha: lowering k lowers the importance-weighted estimate J_hat(k).
    cfg = TeacherConfig(solver=solver)
    teacher = GammaTeacher(cfg)
    alphas = teacher.sample(30, torch.Generator().manual_seed(2)).double().numpy()
    returns = 1000.0 * alphas
    k_old = 50.0
    k_lo = trust_region(k_old, cfg.max_kl, cfg.min_shape)[0]
    ratio = lambda k: stats.gamma.pdf(alphas, a=k, scale=1e-3) / stats.gamma.pdf(alphas, a=k_old, scale=1e-3)
    middle = 0.5 * (k_old + k_lo)
    floor = float(np.mean(ratio(middle) * returns))
    # Precondition: along the move from k_old the estimate first drops to the floor at the midpoint.
    before = np.linspace(k_old, middle, 400)[:-1]
    assert all(np.mean(ratio(k) * returns) > floor for k in before)
    teacher = GammaTeacher(dataclasses.replace(cfg, threshold=floor))
    report = teacher.update(alphas, returns)
    assert report["accepted"] == 1.0
    if solver == "bracket":
        assert teacher.shape == pytest.approx(middle, rel=1e-7)
    else:  # interior point: stops short of the crossing by a fraction of the step
        assert middle - 1e-9 <= teacher.shape <= middle + 0.05 * (k_old - middle)
    assert report["performance_new"] >= floor * (1 - 1e-12)  # on the feasible side of the crossing
    assert report["performance"] == pytest.approx(returns.mean())


def test_non_finite_weights_count_as_infeasible():
    # A return of +inf makes every estimate non-finite: no move is feasible, the shape stays.
    teacher = GammaTeacher(TeacherConfig())
    alphas = teacher.sample(30, torch.Generator().manual_seed(3))
    returns = torch.full((30,), 100.0, dtype=torch.float64)
    returns[0] = math.inf
    report = teacher.update(alphas, returns)
    assert report["updated"] == 1.0 and report["accepted"] == 0.0 and teacher.shape == 50.0


def test_pairs_accumulate_to_min_pairs_and_keep_the_most_recent_max_pairs():
    teacher = GammaTeacher(TeacherConfig(min_pairs=30, max_pairs=100))
    generator = torch.Generator().manual_seed(4)
    waiting = teacher.update(teacher.sample(29, generator), torch.full((29,), 50.0))
    assert waiting["updated"] == 0.0 and waiting["pairs"] == 29.0 and math.isnan(waiting["performance"])
    done = teacher.update(teacher.sample(1, generator), torch.full((1,), 50.0))
    assert done["updated"] == 1.0 and done["pairs"] == 30.0 and teacher.shape < 50.0
    # 150 pairs at once: only the newest 100 are used; the 50 oldest (far below the floor) are dropped.
    fresh = GammaTeacher(TeacherConfig(min_pairs=30, max_pairs=100))
    returns = torch.cat([torch.full((50,), -1e6), torch.full((100,), 50.0)])
    report = fresh.update(fresh.sample(150, generator), returns)
    assert report["pairs"] == 100.0 and report["performance"] == pytest.approx(50.0)
    assert fresh.update(fresh.sample(1, generator), torch.ones(1))["updated"] == 0.0  # cleared after use


def test_state_dict_round_trip_gives_the_same_next_decisions():
    def script(teacher: GammaTeacher, generator: torch.Generator, rounds: int) -> list:
        out = []
        for i in range(rounds):
            alphas = teacher.sample(10, generator)
            returns = 5.0 + 100.0 * alphas.double() + i  # crosses the floor of 10 along the way
            out.append((alphas, teacher.update(alphas, returns)))
        return out

    teacher = GammaTeacher(TeacherConfig(threshold=10.0))
    generator = torch.Generator().manual_seed(5)
    script(teacher, generator, rounds=7)  # two updates done, one partial batch of pairs held
    buffer = io.BytesIO()
    torch.save({"teacher": teacher.state_dict(), "generator": generator.get_state()}, buffer)
    buffer.seek(0)
    saved = torch.load(buffer, weights_only=True)
    expected = script(teacher, generator, rounds=8)

    restored = GammaTeacher(TeacherConfig(threshold=10.0))
    restored.load_state_dict(saved["teacher"])
    restored_generator = torch.Generator()
    restored_generator.set_state(saved["generator"])
    actual = script(restored, restored_generator, rounds=8)
    assert any(report["accepted"] for _, report in expected)  # the script really moves the teacher
    for (a_exp, r_exp), (a_act, r_act) in zip(expected, actual):
        assert torch.equal(a_exp, a_act)
        assert r_exp.keys() == r_act.keys()
        for key in r_exp:
            assert r_exp[key] == r_act[key] or (math.isnan(r_exp[key]) and math.isnan(r_act[key])), key


# ------------------------------------------------------------------ sampling and variants
def test_sample_draws_gamma_temperatures_reproducibly():
    teacher = GammaTeacher(TeacherConfig())
    draws = teacher.sample(20000, torch.Generator().manual_seed(6))
    assert draws.shape == (20000,) and draws.dtype == torch.float32 and bool((draws > 0).all())
    assert draws.double().mean().item() == pytest.approx(0.05, rel=0.01)  # k / b
    assert draws.double().var().item() == pytest.approx(50 / 1000**2, rel=0.05)  # k / b^2
    same = teacher.sample(20000, torch.Generator().manual_seed(6))
    assert torch.equal(draws, same)
    # Kolmogorov-Smirnov against scipy's Gamma(50, scale 1/1000).
    assert stats.kstest(draws.double().numpy(), stats.gamma(a=50, scale=1e-3).cdf).pvalue > 1e-3


def test_single_variant_shares_one_draw_and_updates_like_self_paced():
    single = GammaTeacher(TeacherConfig(variant="single"))
    draws = single.sample(5, torch.Generator().manual_seed(7))
    assert torch.all(draws == draws[0])
    single.update(torch.full((30,), 0.05), torch.full((30,), 1e3))
    assert single.shape == pytest.approx(43.29, abs=0.01)


def test_linear_variant_follows_progress_and_ignores_returns():
    teacher = GammaTeacher(TeacherConfig(variant="linear"))
    assert torch.equal(teacher.sample(3), torch.full((3,), 0.05))
    teacher.set_progress(1.0 / 3.0)  # halfway through the first two thirds
    assert teacher.mean_alpha == pytest.approx(0.0255)
    teacher.set_progress(0.9)
    assert teacher.mean_alpha == pytest.approx(0.001)
    report = teacher.update(torch.full((30,), 0.001), torch.full((30,), 1e6))
    assert report["updated"] == 1.0 and report["accepted"] == 0.0 and teacher.mean_alpha == pytest.approx(0.001)


def test_point_variant_steps_down_when_returns_exceed_the_floor():
    teacher = GammaTeacher(TeacherConfig(variant="point", threshold=10.0))
    teacher.update(torch.full((30,), 0.05), torch.full((30,), 10.0))  # not above xi: no step
    assert teacher.mean_alpha == pytest.approx(0.05)
    teacher.update(torch.full((30,), 0.05), torch.full((30,), 11.0))
    assert teacher.mean_alpha == pytest.approx(0.049)
    assert torch.allclose(teacher.sample(4), torch.full((4,), 0.049))
    for _ in range(60):
        teacher.update(torch.full((30,), 0.05), torch.full((30,), 11.0))
    assert teacher.mean_alpha == 1e-8  # the floor


def test_force_budget_maps_temperatures_to_forces():
    teacher = GammaTeacher(TeacherConfig(variant="force"))
    alphas = torch.tensor([0.05, 0.001, 0.0, 0.06, 0.0255])
    # F = clip((-alpha + 0.05 + 0.001) * F_max / 0.05, 0, F_max), F_max = 10
    expected = torch.tensor([0.2, 10.0, 10.0, 0.0, 5.1])
    assert torch.allclose(teacher.force_budget(alphas, 10.0), expected, atol=1e-6)


@pytest.mark.parametrize(
    "change",
    [
        {"variant": "bogus"},
        {"rate": 0.0},
        {"max_kl": -1.0},
        {"initial_shape": 0.0},
        {"min_pairs": 0},
        {"max_pairs": 10},
        {"linear_fraction": 0.0},
        {"threshold": math.nan},
        {"solver": "newton"},
    ],
)
def test_config_rejects_invalid_values(change):
    key = next(iter(change))
    with pytest.raises(ConfigError, match=key):
        GammaTeacher(TeacherConfig(**change))


# ------------------------------------------------------------------ discounted returns
def test_discounted_returns_per_episode_and_across_chunks():
    gamma = 0.5
    rewards = torch.tensor([[1.0, 2.0], [1.0, 2.0], [1.0, 2.0], [4.0, 8.0]])
    dones = torch.tensor([[False, False], [True, False], [False, False], [False, True]])
    returns, carry = discounted_returns(rewards, dones, gamma)
    # env 0: episode 1 is steps 0-1 (1 + 0.5 = 1.5); episode 2 starts at step 2 (1, then 1 + 0.5 * 4 = 3).
    # env 1: one episode over 4 steps: 2, 3, 3.5, 3.5 + 0.125 * 8 = 4.5.
    expected = torch.tensor([[1.0, 2.0], [1.5, 3.0], [1.0, 3.5], [3.0, 4.5]])
    assert torch.allclose(returns, expected)
    assert torch.allclose(returns[dones], torch.tensor([1.5, 4.5]))
    # env 0 continues its episode in the next chunk (discount 0.25 next); env 1 starts afresh.
    more, _ = discounted_returns(torch.tensor([[4.0, 1.0]]), torch.tensor([[True, True]]), gamma, carry)
    assert torch.allclose(more, torch.tensor([[4.0, 1.0]]))


def test_importance_weighted_estimate_on_a_case_computed_by_hand():
    # k_old = 50 -> k = 49 at rate b = 1000: w(alpha) = Gamma(50) / (Gamma(49) (b alpha)) = 49 / (1000 alpha),
    # so alpha = 0.04 weighs 49/40 and alpha = 0.06 weighs 49/60; J_hat = (49/40 * 10 + 49/60 * 20) / 2.
    alphas, returns = np.array([0.04, 0.06]), np.array([10.0, 20.0])
    expected = (49 / 40 * 10 + 49 / 60 * 20) / 2  # 14.291666...
    assert importance_weighted_performance(alphas, returns, 49.0, 50.0, 1000.0) == pytest.approx(expected, rel=1e-12)
