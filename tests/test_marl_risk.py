"""Fraction samplers and the risk schedule of ROE."""

import pytest
import torch

from agents.marl.risk import (
    RandomRegionTaus,
    ShiftedUpperTaus,
    SignedRegionTaus,
    UniformTaus,
    make_sampler,
    risk_schedule,
)


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("alpha", [0.0, 0.3, 0.75, 1.0])
def test_upper_region_bounds_and_mean(alpha):
    sampler = ShiftedUpperTaus(risk_schedule(alpha, alpha, 100))
    taus = sampler.sample((4000, 8), step=7, generator=gen())
    assert taus.shape == (4000, 8)
    assert taus.min() >= alpha and taus.max() <= 1.0
    assert abs(taus.mean().item() - (1 + alpha) / 2) < 0.01
    if alpha == 1.0:
        assert torch.equal(taus, torch.ones_like(taus))


def test_alpha_zero_is_the_uniform_sampler_bit_for_bit():
    roe = make_sampler("upper", 0.0, 0.0, 10)
    base = make_sampler("uniform")
    a, b = gen(3), gen(3)
    for step in (0, 5, 100):
        assert torch.equal(roe.sample((5, 8), step=step, generator=a), base.sample((5, 8), step=step, generator=b))
    assert torch.equal(a.get_state(), b.get_state())  # same number of draws


def test_schedule_endpoints_midpoint_and_purity():
    schedule = risk_schedule(1.0, 0.0, 1500)
    assert schedule(0) == 1.0
    assert schedule(750) == pytest.approx(0.5)
    assert schedule(1500) == 0.0 and schedule(10**7) == 0.0
    order = [schedule(t) for t in (900, 0, 900, 3000, 900)]
    assert order[0] == order[2] == order[4]  # no hidden state: a pure function of t_env
    up = risk_schedule(0.2, 0.6, 100)  # the plain linear ramp also goes upwards
    assert up(50) == pytest.approx(0.4) and up(1000) == pytest.approx(0.6)
    sampler = ShiftedUpperTaus(schedule)
    assert sampler.region(750) == (pytest.approx(0.5), 1.0)
    lo = sampler.sample((2000, 4), step=750, generator=gen())
    assert lo.min() >= 0.5


def test_signed_levels_map_to_upper_and_lower_regions():
    sampler = SignedRegionTaus(risk_schedule(1.0, -1.0, 100))
    assert sampler.region(0) == (1.0, 1.0)
    assert sampler.region(25) == (pytest.approx(0.5), 1.0)
    low, high = sampler.region(75)
    assert low == 0.0 and high == pytest.approx(0.5)
    taus = sampler.sample((1000, 4), step=75, generator=gen())
    assert taus.max() <= 0.5


def test_random_region_is_one_of_three_and_shared_by_the_call():
    sampler = RandomRegionTaus()
    seen = set()
    g = gen(1)
    for _ in range(60):
        taus = sampler.sample((64, 8), step=0, generator=g)
        lo, hi = taus.min().item(), taus.max().item()
        if hi <= 0.25:
            seen.add("averse")
        elif lo >= 0.75:
            seen.add("seeking")
        else:
            assert lo < 0.25 and hi > 0.75
            seen.add("neutral")
    assert seen == {"averse", "seeking", "neutral"}


def test_unknown_sampler_is_refused():
    with pytest.raises(ValueError):
        make_sampler("lower")
    assert isinstance(make_sampler("uniform"), UniformTaus)
