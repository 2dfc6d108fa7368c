"""Slow learning checks (run with ``pytest -m slow``): ROE finds the WQMIX optimum, the baseline does not."""

import pytest

from agents.engine.config import apply_overrides
from agents.marl import PRESETS, train_config


@pytest.mark.slow
@pytest.mark.parametrize(
    "preset, expected",
    [("roe/wqmix", 8.0), ("dmix/wqmix", 0.0), ("roe/wqmix-ddn", 8.0), ("ddn/wqmix", 0.0)],
)
def test_matrix_game_greedy_payoff(preset, expected):
    out = train_config(apply_overrides(PRESETS[preset], ["train.seed=0"]))
    assert out["final_eval"]["eval/mean_reward"].item() == expected


@pytest.mark.slow
def test_roe_on_a_payoff_from_the_command_line():
    # WQMIX with the optimum moved to (2, 2): nothing may favour action 0.
    cfg = apply_overrides(
        PRESETS["roe/wqmix"], ["env.id=matrix", "env.options.payoff=[[0,0,-12],[0,0,-12],[-12,-12,8]]"]
    )
    assert train_config(cfg)["final_eval"]["eval/mean_reward"].item() == 8.0


@pytest.mark.slow
def test_predator_prey_trains_end_to_end():
    cfg = apply_overrides(PRESETS["roe/predator-prey"], ["train.total_steps=3000", "train.eval_episodes=2"])
    out = train_config(cfg)
    assert out["updates"] > 0 and out["steps"] >= 3000
