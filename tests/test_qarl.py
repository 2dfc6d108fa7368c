"""QARL / RARL / SAC-vs-zero-force: the per-sample temperature, the two-player loop, resume, bad input.

The teacher's closed forms and path are in test_qarl_teacher.py, the force wrapper in
test_adversarial_env.py; here the pieces meet in the suite's loop on a tiny InvertedPendulum run.
"""

import importlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agents import get_preset
from agents import run_training as train
from agents.engine.checkpoint import Checkpointer, load_checkpoint
from agents.engine.config import apply_overrides
from agents.engine.run import read_config
from agents.sac import SAC, SACConfig
from envs.base import BoxSpec

ROOT = Path(__file__).resolve().parents[1]
OBS, ACT = BoxSpec((4,)), BoxSpec((2,))
# A few hundred steps: both phases, teacher updates every 4 pairs, updates from 60 transitions.
TINY = [
    "agent.protagonist.hidden=[16,16]",
    "agent.adversary.hidden=[16,16]",
    "agent.protagonist.actor_update_after_steps=80",
    "agent.adversary.actor_update_after_steps=80",
    "agent.teacher.min_pairs=4",
    "agent.teacher.threshold=0.5",
    "train.phase_min_steps=100",
    "train.phase_episodes=2",
    "train.update_after_transitions=60",
    "train.batch_size=32",
    "train.eval_every=0",
    "train.eval_episodes=1",
    "train.log_every=50",
    "train.checkpoint_every=150",
    "train.progress=false",
]


def batch(n=5, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "obs": torch.randn(n, 4, generator=g),
        "action": torch.rand(n, 2, generator=g) * 2 - 1,
        "reward": torch.randn(n, generator=g),
        "next_obs": torch.randn(n, 4, generator=g),
        "terminated": torch.tensor([False, True, False, False, True])[:n],
        "temperature": torch.tensor([0.5, 0.01, 0.2, 0.0, 1.5])[:n],
    }


def make(temperature, initial=0.1):
    torch.manual_seed(0)
    return SAC(OBS, ACT, SACConfig(hidden=(8, 8), temperature=temperature, initial_temperature=initial))


def test_adversary_critic_target_uses_each_samples_temperature():
    agent, data = make("per-sample"), batch()
    torch.manual_seed(1)
    target = agent.critic_target_value(data)
    torch.manual_seed(1)  # the same next-action draw, computed by hand
    next_action, next_log_prob = agent.actor(data["next_obs"])
    next_q = agent.critic_target(data["next_obs"], next_action).min(0).values
    soft = next_q - data["temperature"] * next_log_prob
    expected = data["reward"] + 0.99 * (~data["terminated"]).float() * soft
    assert torch.allclose(target, expected)
    torch.manual_seed(1)
    scalar = make("fixed", initial=float(data["temperature"].mean())).critic_target_value(data)
    assert not torch.allclose(target, scalar)  # a batch mean would be a different target


def test_per_sample_with_a_constant_alpha_is_fixed_temperature_sac_bit_for_bit():
    fixed, per_sample = make("fixed", 0.3), make("per-sample", 0.3)
    for step in range(4):
        # the same float alpha in both modes: fixed mode stores log(alpha), so use its exp(log(0.3))
        data = {**batch(seed=step), "temperature": fixed.temperature.expand(5).clone()}
        torch.manual_seed(step)
        a = fixed.update(data, step=step)
        torch.manual_seed(step)
        b = per_sample.update(data, step=step)
        assert torch.equal(a["loss/critic"], b["loss/critic"]) and torch.equal(a["loss/actor"], b["loss/actor"])
    for key, value in fixed.actor.state_dict().items():
        assert torch.equal(value, per_sample.actor.state_dict()[key])
    assert "loss/temperature" not in a  # neither mode learns alpha


def test_actor_waits_for_its_threshold():
    agent = make("learned")
    agent.config = SACConfig(hidden=(8, 8), actor_update_after_steps=10)
    assert "loss/actor" not in agent.update(batch(), step=9)
    assert "loss/actor" in agent.update(batch(), step=10)


def run(preset, tmp_path, name, *extra):
    config = apply_overrides(get_preset(preset), [*TINY, *extra])
    return train(config, tmp_path / name)


@pytest.fixture(scope="module")
def qarl_run(tmp_path_factory):
    return run("qarl/inverted-pendulum", tmp_path_factory.mktemp("qarl"), "run", "train.total_steps=450")


def test_qarl_run_logs_both_players_and_the_teacher(qarl_run):
    rows = [json.loads(line) for line in (qarl_run / "metrics.jsonl").read_text().splitlines()]
    keys = set().union(*rows)
    assert {"loss/critic", "adversary/loss/critic", "teacher/mean_alpha", "rollout/discounted_return"} <= keys
    updates = [r for r in rows if r.get("teacher/updated") == 1.0]
    assert updates, "the teacher never ran an update"
    for r in updates:  # the trace moves only when the mean discounted return is above the floor
        moved = r["teacher/accepted"] == 1.0
        assert not moved or r["teacher/performance"] >= r["teacher/floor"]
    state = load_checkpoint(Checkpointer(qarl_run).latest())
    assert {"agent", "adversary", "buffer", "adversary_buffer", "teacher", "collector"} <= set(state)
    assert "temperature" in state["adversary_buffer"]["storage"]


def test_teacher_does_not_move_below_the_floor(tmp_path):
    out = run("qarl/inverted-pendulum", tmp_path, "high", "train.total_steps=300", "agent.teacher.threshold=1e6")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    updates = [r for r in rows if r.get("teacher/updated") == 1.0]
    assert updates and all(r["teacher/accepted"] == 0.0 and r["teacher/shape"] == 50.0 for r in updates)


def test_two_player_resume_equals_a_straight_run(tmp_path):
    straight = run("qarl/inverted-pendulum", tmp_path, "straight", "train.total_steps=450")
    split = run("qarl/inverted-pendulum", tmp_path, "split", "train.total_steps=300")
    resumed = apply_overrides(read_config(split), ["train.total_steps=450"])
    train(resumed, split, resume=True)
    a, b = load_checkpoint(Checkpointer(straight).latest()), load_checkpoint(Checkpointer(split).latest())
    for player in ("agent", "adversary"):
        for net in ("actor", "critic"):
            for key, value in a[player][net].items():
                assert torch.equal(value, b[player][net][key]), f"{player}.{net}.{key}"
    assert a["teacher"]["shape"] == b["teacher"]["shape"]
    assert torch.equal(a["adversary_buffer"]["storage"]["temperature"], b["adversary_buffer"]["storage"]["temperature"])


@pytest.mark.parametrize("preset", ["rarl/inverted-pendulum", "sac-adv0/inverted-pendulum"])
def test_baselines_are_presets_of_the_same_loop(tmp_path, preset):
    out = run(preset, tmp_path, "run", "train.total_steps=300")
    state = load_checkpoint(Checkpointer(out).latest())
    assert "teacher" not in state and "temperature" not in state["adversary_buffer"]["storage"]
    adversary_rows = state["adversary_buffer"]["size"]
    assert (adversary_rows > 0) == preset.startswith("rarl")  # SAC: protagonist phases only


def test_evaluate_fresh_and_random_adversary(qarl_run, capsys):
    import evaluate

    code = evaluate.main([str(qarl_run), "--episodes", "2", "--adversary", "--adversary-steps", "40", "--random-force"])
    assert code == 0, capsys.readouterr().err
    report = json.loads(sorted((qarl_run / "eval").glob("eval_*.json"))[-1].read_text())
    assert report["adversary"]["fresh"]["episodes"] == 2 and report["adversary"]["fresh"]["steps"] == 40
    assert report["adversary"]["random_force"]["force_limit"] is None or report["adversary"]["random_force"]
    # discounted returns are reported too; InvertedPendulum pays 1 per step, so 0 < sum_t gamma^t < length
    for stats in (report["nominal"], report["adversary"]["fresh"], report["adversary"]["random_force"]):
        assert 0 < stats["mean_discounted_reward"] < stats["mean_reward"]
    assert "discounted" in capsys.readouterr().out


def cli(*args):  # the timeout guards against hangs; generous, as a loaded machine imports slowly
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train.py", "qarl/hopper", 'agent.force_bodies=["nose"]'], "No body named 'nose'"),
        (["train.py", "qarl/hopper", "agent.force_limit=0"], "agent.force_limit=0.0 is out of range"),
        (["train.py", "qarl/hopper", "agent.teacher.max_kl=-1"], "agent.teacher.max_kl=-1.0 is out of range"),
        (["train.py", "qarl/hopper", "agent.adversary.temperature=learned"], "must be 'per-sample'"),
        (["train.py", "rarl/hopper", "agent.adversary.temperature=per-sample"], "needs qarl, not rarl"),
        (["train.py", "rarl/hopper", "agent.method=qarl"], "agent.method is no longer a setting"),
    ],
)
def test_bad_input_is_one_line(tmp_path, args, fragment):
    proc = cli(*args, "--run-dir", str(tmp_path / "run"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and fragment in lines[0], proc.stderr
    assert not (tmp_path / "run").exists()  # nothing left behind


def test_adversary_on_a_run_without_mujoco_is_one_line(tmp_path):
    out = train(
        apply_overrides(
            get_preset("sac"),
            [
                "agent.hidden=[8]",
                "total_steps=120",
                "update_after_steps=60",
                "eval_every=0",
                "eval_episodes=1",
                "progress=false",
            ],
        ),
        tmp_path / "p",
    )
    proc = cli("evaluate.py", str(out), "--adversary", "--adversary-steps", "10")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "--adversary on Pendulum-v1" in proc.stderr


def test_the_algorithm_name_is_the_method_and_old_configs_with_a_method_still_load():
    from agents.engine.config import RunConfig, from_dict, to_dict
    from agents.qarl import method_of

    assert [method_of(get_preset(f"{a}/hopper")) for a in ("qarl", "rarl", "sac-adv0")] == ["qarl", "rarl", "sac"]
    old = to_dict(get_preset("rarl/hopper"))
    old["agent"]["method"] = "rarl"  # config.json of runs made before the method was the algorithm's name
    assert from_dict(RunConfig, old) == get_preset("rarl/hopper")


# ---- issue #22: the key terms bite, and the loop's loose ends --------------------------------------


def test_adversary_reward_is_minus_the_protagonists():
    from agents.qarl import player_rows

    rows = {"action": torch.tensor([[0.1, 0.2, 0.3]]), "reward": torch.tensor([1.5]), "obs": torch.zeros(1, 4)}
    protagonist, adversary = player_rows(rows, "protagonist", 1), player_rows(rows, "adversary", 1)
    assert torch.equal(protagonist["reward"], torch.tensor([1.5])) and torch.equal(
        adversary["reward"], torch.tensor([-1.5])
    )
    assert torch.equal(protagonist["action"], torch.tensor([[0.1]]))
    assert torch.equal(adversary["action"], torch.tensor([[0.2, 0.3]]))


def test_adversary_buffer_holds_minus_the_env_reward(tmp_path):
    # InvertedPendulum-v5 pays +1 per step (0 on the step that ends it): the adversary's replay holds -1 or 0.
    out = run("rarl/inverted-pendulum", tmp_path, "run", "train.total_steps=300")
    state = load_checkpoint(Checkpointer(out).latest())
    for name, sign in (("adversary_buffer", -1.0), ("buffer", 1.0)):
        rewards = state[name]["storage"]["reward"][: state[name]["size"]]
        assert rewards.numel() > 0 and set(rewards.tolist()) <= {0.0, sign} and (rewards == sign).any(), name


def test_adversary_actor_loss_uses_each_samples_temperature():
    agent, data = make("per-sample"), batch()
    assert data["temperature"].unique().numel() > 1  # a non-constant temperature
    torch.manual_seed(2)
    loss, log_prob = agent.actor_objective(data)
    torch.manual_seed(2)  # the same reparameterized draw, by hand
    action, expected_log_prob = agent.actor(data["obs"])
    q = agent.critic(data["obs"], action).min(0).values
    expected = (data["temperature"] * expected_log_prob - q).mean()
    assert torch.allclose(loss, expected) and torch.allclose(log_prob, expected_log_prob)
    with_mean = (data["temperature"].mean() * expected_log_prob - q).mean()
    assert not torch.allclose(loss, with_mean)  # the batch mean is another loss: this test would fail on it


def test_teacher_variants_the_loop_does_not_run_are_refused():
    from agents.engine.config import ConfigError
    from agents.qarl import check

    for variant in ("homogeneous", "force"):
        config = apply_overrides(get_preset("qarl/inverted-pendulum"), [f"agent.teacher.variant={variant}"])
        with pytest.raises(ConfigError, match=f"agent.teacher.variant='{variant}' is not run by the phase loop"):
            check(config)
    for variant in ("self_paced", "single", "linear", "point"):
        check(apply_overrides(get_preset("qarl/inverted-pendulum"), [f"agent.teacher.variant={variant}"]))


def test_linear_variant_follows_the_loops_progress(tmp_path):
    out = run("qarl/inverted-pendulum", tmp_path, "lin", "train.total_steps=450", "agent.teacher.variant=linear")
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    alphas = [r["teacher/mean_alpha"] for r in rows if "teacher/mean_alpha" in r]
    assert alphas[0] == pytest.approx(0.05) and alphas[-1] < 0.05  # falls with the env steps done
    state = load_checkpoint(Checkpointer(out).latest())
    assert 0 < state["teacher"]["progress"] < 1


TEACHERS: list = []  # every RecordingTeacher built, newest last


def RecordingTeacher(config):  # noqa: N802 (stands in for the GammaTeacher class)
    """A GammaTeacher that records the shape each temperature was drawn under; at every update that runs,
    any held pair drawn under another shape than the current one (``mixed``); each call's returns."""
    from agents.qarl.teacher import GammaTeacher

    class Recording(GammaTeacher):
        def __init__(self, config):
            super().__init__(config)
            self.drawn, self.mixed, self.returns, self.moves = {}, [], [], 0

        def sample(self, count, generator=None):
            alphas = super().sample(count, generator)
            self.drawn.update({float(a): self.shape for a in alphas})
            return alphas

        def update(self, alphas, returns):
            alphas = torch.as_tensor(alphas, dtype=torch.float32).flatten()
            self.returns.append(torch.as_tensor(returns).flatten().clone())
            held = torch.cat([self._alphas.float(), alphas])[-self.config.max_pairs :]
            if held.numel() >= self.config.min_pairs:
                shapes = {self.drawn[float(a)] for a in held}
                if shapes != {self.shape}:
                    self.mixed.append((self.shape, shapes))
            result = super().update(alphas, returns)
            self.moves += int(result["accepted"])
            return result

    TEACHERS.append(Recording(config))
    return TEACHERS[-1]


def test_teacher_updates_only_on_pairs_drawn_under_its_current_distribution(tmp_path, monkeypatch):
    loop = importlib.import_module("agents.qarl.loop")  # the module (agents.qarl.loop is also a function)

    monkeypatch.setattr(loop, "GammaTeacher", RecordingTeacher)
    run("qarl/inverted-pendulum", tmp_path, "run", "train.total_steps=900")
    teacher = TEACHERS[-1]
    assert teacher.updates >= 2 and teacher.moves >= 1, "the curriculum never moved: stale pairs would go unseen"
    assert teacher.mixed == [], f"an update used pairs drawn under an earlier distribution: {teacher.mixed[:3]}"


def test_the_loops_discounted_return_is_the_tested_helpers(tmp_path, monkeypatch):
    loop = importlib.import_module("agents.qarl.loop")  # the module (agents.qarl.loop is also a function)
    from agents.qarl.gamma import discounted_returns

    ended = []

    def spy(rewards, dones, gamma, carry=None):
        out, new_carry = discounted_returns(rewards, dones, gamma, carry)
        ended.append(out[dones.bool()].clone())
        return out, new_carry

    monkeypatch.setattr(loop, "discounted_returns", spy)
    monkeypatch.setattr(loop, "GammaTeacher", RecordingTeacher)
    run("qarl/inverted-pendulum", tmp_path, "run", "train.total_steps=300")
    teacher = TEACHERS[-1]
    fed = torch.cat(teacher.returns).float()
    helper = torch.cat(ended).float()
    assert fed.numel() > 0 and torch.equal(fed, helper[: fed.numel()])


def test_fresh_adversary_can_train_until_the_return_flattens(qarl_run):
    from agents import load_run
    from agents.qarl.conditions import returns_flat, train_fresh_adversary

    assert not returns_flat([5.0, 5.0, 1.0, 1.02], 2, 0.05)  # still falling: 5 -> 1.01
    assert returns_flat([1.0, 1.0, 1.02, 1.0], 2, 0.05)  # 1 -> 1.01, within 5 %
    assert not returns_flat([1.0, 1.0, 1.0], 2, 0.05)  # fewer than two windows
    run = load_run(qarl_run)
    full, early = [], []
    train_fresh_adversary(run, steps=400, seed=0, progress=False, curve=full)
    train_fresh_adversary(run, steps=400, seed=0, progress=False, until_flat=1e9, min_steps=100, curve=early)
    assert full[-1][0] == 400 and 100 <= early[-1][0] < 400  # any curve is flat at tolerance 1e9


def test_tier3_fresh_adversary_learns_with_the_runs_own_adversary_settings():
    from agents.qarl.conditions import FRESH_ADVERSARY, run_adversary_learner

    learner = run_adversary_learner(get_preset("qarl/inverted-pendulum"))
    assert learner.temperature == "learned"  # not QARL's per-sample temperature
    assert (learner.actor_lr, learner.initial_temperature, learner.actor_update_after_steps) == (1e-3, 0.1, 1_000)
    assert (FRESH_ADVERSARY.actor_lr, FRESH_ADVERSARY.initial_temperature) == (1e-4, 0.005)  # the default stays
    with pytest.raises(ValueError, match="no adversary learner"):
        run_adversary_learner(get_preset("sac"))
