"""evaluate.py end to end on a tiny trained run (in-process, so it stays fast)."""

import json

import pytest

import evaluate
from agents import get_preset
from agents import run_training as train
from agents.engine.config import apply_overrides

# A run of a few hundred steps with tiny networks: enough to have a checkpoint to evaluate.
TINY = [
    "agent.hidden=[16,16]",
    "update_after_steps=100",
    "batch_size=32",
    "eval_every=0",
    "eval_episodes=1",
    "progress=false",
]


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("eval") / "run"
    overrides = [*TINY, "total_steps=200"]
    train(apply_overrides(get_preset("sac"), overrides), run_dir)
    return run_dir


def test_nominal_and_noise_tables_saved_as_json(pendulum_run, capsys):
    code = evaluate.main(
        [str(pendulum_run), "--episodes", "3", "--envs", "3", "--obs-noise", "0", "0.5", "--action-noise", "0.3"]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "observation noise" in out and "action noise" in out
    report = json.loads(sorted((pendulum_run / "eval").glob("eval_*.json"))[-1].read_text())
    assert report["nominal"]["episodes"] == 3
    assert [r["sigma"] for r in report["observation_noise"]] == [0.0, 0.5]
    # sigma 0 is the nominal setting exactly (same episode seeds, no noise drawn)
    assert report["observation_noise"][0]["mean_reward"] == report["nominal"]["mean_reward"]
    assert report["observation_noise"][1]["mean_reward"] != report["nominal"]["mean_reward"]
    assert report["checkpoint_step"] == 200


def test_mass_grid_on_non_mujoco_env_is_a_clean_error(pendulum_run, capsys):
    assert evaluate.main([str(pendulum_run), "--mass", "0.5", "1.0"]) == 2
    assert "need a MuJoCo env" in capsys.readouterr().err


def test_same_seed_same_run(tmp_path):
    overrides = [*TINY, "total_steps=200"]
    import torch

    from agents.engine.checkpoint import Checkpointer, load_checkpoint

    def final_actor(name, seed):
        train(apply_overrides(get_preset("sac"), [*overrides, f"seed={seed}"]), tmp_path / name)
        return load_checkpoint(Checkpointer(tmp_path / name).latest())["agent"]["actor"]

    a, b, c = final_actor("a", 0), final_actor("b", 0), final_actor("c", 1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_mujoco_mass_friction_heatmap_and_video(tmp_path, capsys):
    overrides = [*TINY, "total_steps=150"]
    run_dir = tmp_path / "run"
    train(apply_overrides(get_preset("sac/inverted-pendulum"), overrides), run_dir)
    code = evaluate.main([str(run_dir), "--episodes", "2", "--mass", "0.5", "2.0", "--friction", "1.0", "--video"])
    assert code == 0, capsys.readouterr().err
    report = json.loads(sorted((run_dir / "eval").glob("eval_*.json"))[-1].read_text())
    grid = report["mass_friction"]["grid"]
    assert len(grid) == 2 and len(grid[0]) == 1
    assert (run_dir / "eval" / "mass_friction.png").stat().st_size > 1000
    assert (run_dir / "eval" / "episode.mp4").stat().st_size > 1000
    assert report["video"]["frames"] > 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--episodes", "0"], "evaluate.py: error: --episodes must be >= 1"),
        (["--envs", "0"], "evaluate.py: error: --envs must be >= 1"),
        (["--obs-noise", "0", "nan"], "evaluate.py: error: argument --obs-noise: nan is out of range; valid: a finite"),
        (["--action-noise", "inf"], "evaluate.py: error: argument --action-noise: inf is out of range"),
        (["--mass=-inf"], "evaluate.py: error: argument --mass: -inf is out of range"),
        (["--obs-noise", "abc"], "evaluate.py: error: argument --obs-noise: expects a number, got 'abc'"),
    ],
)
def test_bad_options_are_one_line_before_anything_is_read(tmp_path, capsys, args, message):
    run_dir = tmp_path / "run"  # need not exist: the options are checked first, nothing is written
    with pytest.raises(SystemExit) as exit_:
        evaluate.main([str(run_dir), *args])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert err.strip() == err.strip().splitlines()[0], err  # one line: no usage block
    assert message in err and "usage:" not in err
    assert not run_dir.exists()
