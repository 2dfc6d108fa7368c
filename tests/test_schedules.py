from agents.engine.schedules import Linear


def test_linear_ramp_holds_its_ends():
    schedule = Linear(1.0, 0.1, steps=100, begin=50)
    assert schedule(0) == 1.0 and schedule(50) == 1.0
    assert abs(schedule(100) - 0.55) < 1e-12
    assert abs(schedule(150) - 0.1) < 1e-12 and schedule(10_000) == schedule(150)
    assert Linear(1.0, 0.0, steps=0)(0) == 0.0
