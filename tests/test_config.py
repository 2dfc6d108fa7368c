import dataclasses

import pytest

from agents import get_preset
from agents.core.config import ConfigError, RunConfig, apply_overrides, describe, from_dict, to_dict


def test_typed_overrides_by_section_and_bare_key():
    cfg = apply_overrides(
        get_preset("sac"), ["agent.gamma=0.9", "total_steps=1e4", "agent.hidden=[8,8]", "progress=no"]
    )
    assert cfg.agent.gamma == 0.9
    assert cfg.train.total_steps == 10_000 and isinstance(cfg.train.total_steps, int)
    assert cfg.agent.hidden == (8, 8)
    assert cfg.train.progress is False


def test_optional_float_and_none():
    cfg = apply_overrides(get_preset("sac"), ["agent.target_entropy=-2"])
    assert cfg.agent.target_entropy == -2.0
    assert apply_overrides(cfg, ["agent.target_entropy=none"]).agent.target_entropy is None


def test_unknown_key_names_closest():
    with pytest.raises(ConfigError, match="closest: train.total_steps"):
        apply_overrides(get_preset("sac"), ["totl_steps=5"])


def test_wrong_type_names_key():
    with pytest.raises(ConfigError, match="train.batch_size expects an integer"):
        apply_overrides(get_preset("sac"), ["batch_size=1.5"])
    with pytest.raises(ConfigError, match="expects true or false"):
        apply_overrides(get_preset("sac"), ["progress=maybe"])


def test_env_option_entry_and_json_dict():
    cfg = apply_overrides(get_preset("sac"), ["env.options.g=9.0", 'env.options={"g": 5.0, "x": 1}'])
    assert cfg.env.options == {"g": 5.0, "x": 1}
    cfg = apply_overrides(cfg, ["env.options.g=3"])
    assert cfg.env.options == {"g": 3, "x": 1}


def test_unknown_preset_names_closest():
    with pytest.raises(ConfigError, match="sac/hopper"):
        get_preset("sac/hoper")


def test_json_round_trip_is_exact():
    cfg = apply_overrides(get_preset("sac/hopper"), ["agent.hidden=[32,32]", "seed=4"])
    back = from_dict(RunConfig, to_dict(cfg))
    assert back == cfg
    assert dataclasses.is_dataclass(back.agent)


def test_describe_lists_every_key_with_doc():
    text = describe(get_preset("sac"))
    assert "train.total_steps" in text and "env transitions to collect" in text


def test_bare_key_sets_every_field_of_that_name():
    cfg = apply_overrides(get_preset("roe/climbing"), ["seed=7"])
    assert cfg.train.seed == 7 and cfg.agent.seed == 7
