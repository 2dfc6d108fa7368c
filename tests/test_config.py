import dataclasses

import pytest

from agents import get_preset
from agents.engine.config import ConfigError, RunConfig, apply_overrides, describe, from_dict, to_dict


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


def test_seed_and_device_have_one_source_the_run(capsys):
    cfg = apply_overrides(get_preset("roe/climbing"), ["seed=7"])
    assert cfg.train.seed == 7 and not hasattr(cfg.agent, "seed") and not hasattr(cfg.agent, "device")
    # the old agent keys still parse, with a one-line notice naming the new key
    cfg = apply_overrides(get_preset("roe/climbing"), ["agent.seed=5"])
    assert cfg.train.seed == 5
    assert "'agent.seed' is renamed 'train.seed'" in capsys.readouterr().err


# ---- one vocabulary, ranges and choices ------------------------------------------------------------

LOOP_KEYS = {
    "total_steps",
    "eval_every",
    "eval_episodes",
    "log_every",
    "checkpoint_every",
    "keep_checkpoints",
    "seed",
    "device",
    "threads",
    "progress",
}
FREE_TEXT = {"algo", "env.id"}  # validated where they are used (registry, env factory)


def test_every_loop_has_the_shared_keys_with_the_same_meaning():
    from agents import all_presets
    from agents.engine.config import flat_fields

    docs = {}
    for name, preset in all_presets().items():
        fields = {k.split(".", 1)[1]: v for k, v in flat_fields(preset).items() if k.startswith("train.")}
        assert LOOP_KEYS <= set(fields), (name, LOOP_KEYS - set(fields))
        for key in LOOP_KEYS:
            docs.setdefault(key, set()).add(fields[key][1])
    assert all(len(texts) == 1 for texts in docs.values()), {k: v for k, v in docs.items() if len(v) > 1}


def test_every_number_has_a_range_and_every_choice_its_choices():
    from agents import all_presets
    from agents.engine.config import field_rules, flat_fields

    for name, preset in all_presets().items():
        rules, fields = field_rules(preset), flat_fields(preset)
        for key, (_, _, typ) in fields.items():
            rule = rules[key]
            bounded = any(rule.get(b) is not None for b in ("ge", "gt", "le", "lt"))
            if typ in (int, float) or "int" in str(typ) or "float" in str(typ):
                assert bounded or rule.get("check"), f"{name}: {key} has no valid range"
            elif typ is str and key not in FREE_TEXT:
                assert rule.get("choices") or rule.get("check"), f"{name}: {key} has no choices"


def test_old_names_parse_with_a_notice(capsys):
    cfg = apply_overrides(get_preset("roe/climbing"), ["train.eval_interval=500", "learning_starts=7"])
    assert cfg.train.eval_every == 500 and cfg.train.update_after_episodes == 7
    err = capsys.readouterr().err
    assert "'train.eval_interval' is renamed 'train.eval_every'" in err
    assert "'learning_starts' is renamed 'train.update_after_episodes'" in err
    cfg = apply_overrides(get_preset("dqn/cartpole"), ["learning_starts=9", "agent.epsilon_steps=11"])
    assert cfg.agent.update_after_steps == 9 and cfg.agent.epsilon_anneal_steps == 11
    cfg = apply_overrides(get_preset("sac"), ["agent.learn_temperature=false"])
    assert cfg.agent.temperature == "fixed"


def test_a_config_json_of_an_earlier_version_still_loads(capsys):
    old = to_dict(get_preset("roe/climbing"))
    old["train"]["__type__"] = "agents.marl.loop:EpisodicConfig"
    train = old["train"]
    train["eval_interval"], train["learning_starts"] = train.pop("eval_every"), train.pop("update_after_episodes")
    old["agent"]["target_update_interval"] = old["agent"].pop("target_every")
    old["agent"]["seed"], old["agent"]["device"] = 0, "cpu"
    back = from_dict(RunConfig, old)
    assert back == get_preset("roe/climbing")
    assert "renamed" in capsys.readouterr().err


def test_one_name_for_no_updates_before_n_and_the_old_ones_still_work(capsys):
    cfg = apply_overrides(get_preset("sac"), ["train.warmup_steps=123"])
    assert cfg.train.update_after_steps == 123
    assert "'train.warmup_steps' is renamed 'train.update_after_steps'" in capsys.readouterr().err
    # a bare key sets every field of that name: DQN's own delay and the loop's random warm-up together
    cfg = apply_overrides(get_preset("dqn/cartpole"), ["update_after_steps=77"])
    assert cfg.agent.update_after_steps == 77 and cfg.train.update_after_steps == 77


def test_a_config_json_naming_the_old_core_modules_still_loads():
    old = to_dict(get_preset("sac"))
    old["train"]["__type__"] = "agents.core.loops:OffPolicyConfig"
    old["train"]["warmup_steps"] = old["train"].pop("update_after_steps")
    assert from_dict(RunConfig, old) == get_preset("sac")
    qarl = to_dict(get_preset("qarl/inverted-pendulum"))
    qarl["agent"]["teacher"]["__type__"] = "agents.qarl_teacher:TeacherConfig"
    assert from_dict(RunConfig, qarl) == get_preset("qarl/inverted-pendulum")


@pytest.mark.parametrize(
    "override, message",
    [
        ("total_steps=-5", "train.total_steps=-5 is out of range; valid: >= 1"),
        ("agent.gamma=1.5", "agent.gamma=1.5 is out of range; valid: >= 0 and <= 1"),
        ("agent.polyak=0", "agent.polyak=0.0 is out of range; valid: > 0 and <= 1"),
        ("agent.activation=swish", "agent.activation='swish' is not valid; choose from relu, tanh, elu, gelu"),
        ("agent.temperature=auto", "choose from learned, fixed, per-sample"),
        ("env.num_envs=0", "env.num_envs=0 is out of range"),
        ("updates_per_step=0", "train.updates_per_step=0.0 is out of range; valid: > 0"),
        ("agent.actor_lr=nan", "agent.actor_lr=nan is out of range"),
        ("agent.hidden=[]", "agent.hidden=[] is out of range; valid: at least 1 item, each >= 1"),
        ("agent.critic_lr=inf", "agent.critic_lr=inf is out of range; valid: a finite number > 0"),
        ("agent.gamma=-inf", "agent.gamma=-inf is out of range; valid: a finite number >= 0 and <= 1"),
        ("agent.target_entropy=-inf", "agent.target_entropy=-inf is out of range; valid: a finite number"),
    ],
)
def test_out_of_range_values_fail_at_resolution(override, message):
    with pytest.raises(ConfigError) as error:
        apply_overrides(get_preset("sac"), [override])
    assert message in str(error.value) and "\n" not in str(error.value)


def test_describe_shows_valid_values():
    text = describe(get_preset("dqn/cartpole"))
    assert "[mse|huber]" in text and "[>= 1]" in text


def test_a_config_json_with_a_non_finite_number_is_refused():
    data = to_dict(get_preset("sac"))
    data["agent"]["critic_lr"] = float("inf")  # json.dumps writes Infinity, json.loads reads it back
    with pytest.raises(ConfigError, match=r"agent\.critic_lr=inf is out of range"):
        from_dict(RunConfig, data)


def test_an_actor_without_hidden_layers_is_a_value_error_not_an_index_error():
    from agents.engine.nets import SquashedGaussianActor

    with pytest.raises(ValueError, match="at least one hidden layer"):
        SquashedGaussianActor(3, 1, ())


def test_error_reason_is_one_whole_line_not_a_cut_at_200_characters():
    import torch

    from agents.engine.config import error_reason

    net = torch.nn.Sequential(*[torch.nn.Linear(4, 4) for _ in range(40)])
    wrong = {f"{i}.weight": torch.zeros(3, 3) for i in range(40)}
    with pytest.raises(RuntimeError) as error:
        net.load_state_dict(wrong)
    reason = error_reason(error.value)
    assert "\n" not in reason and not reason.startswith("Error(s) in loading")  # the first specific line
    assert reason.startswith("Missing key(s) in state_dict:") and reason.endswith(", ... (and 40 more)")
    assert '"0.bias"' in reason and len(reason) < 300
    assert error_reason(ValueError("short: one line")) == "short: one line"
    assert error_reason(KeyError()) == "KeyError"
