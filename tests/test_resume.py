"""K steps + resume + K steps gives the same parameters as 2K steps straight (CPU)."""

import pytest
import torch

from agents import get_preset
from agents import run_training as train
from agents.engine.checkpoint import Checkpointer, load_checkpoint
from agents.engine.config import apply_overrides
from agents.engine.run import read_config


def final_state(run_dir):
    return load_checkpoint(Checkpointer(run_dir).latest())


def test_resume_equals_straight_run(tmp_path, tiny_sac_overrides):
    straight = apply_overrides(get_preset("sac"), [*tiny_sac_overrides, "train.total_steps=400"])
    train(straight, tmp_path / "straight")

    half = apply_overrides(straight, ["train.total_steps=200"])
    train(half, tmp_path / "split")
    resumed = apply_overrides(read_config(tmp_path / "split"), ["train.total_steps=400"])
    train(resumed, tmp_path / "split", resume=True)

    a, b = final_state(tmp_path / "straight"), final_state(tmp_path / "split")
    assert a["step"] == b["step"] == 400
    for name in ("actor", "critic", "critic_target"):
        for key, value in a["agent"][name].items():
            assert torch.equal(value, b["agent"][name][key]), f"{name}.{key} differs after resume"
    assert torch.equal(a["agent"]["log_temperature"], b["agent"]["log_temperature"])
    assert torch.equal(a["buffer"]["storage"]["obs"], b["buffer"]["storage"]["obs"])


def test_checkpoint_holds_buffer_and_loads_weights_only(tmp_path, tiny_sac_overrides):
    cfg = apply_overrides(get_preset("sac"), tiny_sac_overrides)
    train(cfg, tmp_path / "run")
    files = Checkpointer(tmp_path / "run").existing()
    assert len(files) == 3  # keep_checkpoints default: the last three of 100, 200, 300
    data = torch.load(files[-1], weights_only=True)
    assert data["buffer"]["size"] == 300


def test_run_shorter_than_warmup_trains_and_resume_keeps_its_warmup(tmp_path, tiny_sac_overrides):
    overrides = [*tiny_sac_overrides, "train.total_steps=200", "train.update_after_steps=1000"]
    cfg = apply_overrides(get_preset("sac"), overrides)
    train(cfg, tmp_path / "run")
    assert final_state(tmp_path / "run")["agent"]["updates"] == 100  # warmed up for half the run
    resumed = apply_overrides(read_config(tmp_path / "run"), ["train.total_steps=1100"])
    train(resumed, tmp_path / "run", resume=True)
    assert final_state(tmp_path / "run")["agent"]["updates"] == 1000  # not back to 1000 random steps


def test_resume_inside_the_random_warmup_replays_the_same_random_actions(tmp_path, tiny_sac_overrides):
    """A run killed after its step-200 checkpoint, inside a 300-step warm-up, resumes with the same random
    actions: the collector's generator must come back with the checkpoint."""
    from agents.engine.logger import Logger

    config = apply_overrides(
        get_preset("sac"), [*tiny_sac_overrides, "train.total_steps=400", "train.update_after_steps=300"]
    )
    train(config, tmp_path / "straight")

    class Killed(Exception):
        pass

    class DiesAt300(Logger):
        def log(self, step, metrics):
            if step >= 300:
                raise Killed  # before the step-300 checkpoint is written: the newest is step 200
            return super().log(step, metrics)

    run_dir = tmp_path / "killed"
    try:
        train(config, run_dir, logger_factory=lambda: DiesAt300(run_dir, 400, progress=False))
    except Killed:
        pass
    assert load_checkpoint(Checkpointer(run_dir).latest())["step"] == 200
    train(config, run_dir, resume=True)
    a, b = final_state(tmp_path / "straight"), final_state(run_dir)
    assert torch.equal(a["buffer"]["storage"]["action"], b["buffer"]["storage"]["action"])
    for key, value in a["agent"]["actor"].items():
        assert torch.equal(value, b["agent"]["actor"][key])


def test_resume_from_a_chosen_checkpoint_and_past_a_corrupted_newest(tmp_path, tiny_sac_overrides, capsys):
    """``resume=PATH`` (train.py --resume RUN/checkpoints/FILE) continues from that file; a plain resume
    whose newest checkpoint was overwritten says so and continues from the one before. Either way the
    step-300 checkpoint equals the straight run's."""
    from agents.engine.checkpoint import CheckpointError

    config = apply_overrides(get_preset("sac"), tiny_sac_overrides)  # checkpoints at 100, 200, 300
    train(config, tmp_path / "straight")
    expected = final_state(tmp_path / "straight")["agent"]["actor"]

    run = tmp_path / "run"
    train(config, run)
    files = Checkpointer(run).existing()
    train(config, run, resume=files[0])  # from step 100 again
    assert all(torch.equal(v, final_state(run)["agent"]["actor"][k]) for k, v in expected.items())

    raw = bytearray(files[-1].read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 16] = b"\xff" * 16  # bytes of the step-300 file overwritten
    files[-1].write_bytes(bytes(raw))
    capsys.readouterr()
    with pytest.raises(CheckpointError, match="checksum mismatch"):
        train(config, run, resume=files[-1])  # chosen: no fallback
    train(config, run, resume=True)  # from step 200, with a warning naming the step-300 file
    assert f"warning: {files[-1]}: checksum mismatch" in capsys.readouterr().err
    assert all(torch.equal(v, final_state(run)["agent"]["actor"][k]) for k, v in expected.items())


def snapshot(run_dir) -> dict[str, bytes]:
    """Every file of a run directory with its bytes."""
    return {str(p.relative_to(run_dir)): p.read_bytes() for p in sorted(run_dir.rglob("*")) if p.is_file()}


@pytest.mark.parametrize(
    "override",
    ["agent.hidden=[32,32]", "env.id=CartPole-v1", "env.id=MountainCarContinuous-v0"],
)
def test_a_resume_that_does_not_fit_leaves_the_run_directory_byte_for_byte(tmp_path, tiny_sac_overrides, override):
    """The runner builds and restores before it writes: config.json, metrics and checkpoints stay as they were,
    and a plain --resume afterwards still works."""
    import train as train_cli

    run_dir = tmp_path / "run"
    config = apply_overrides(get_preset("sac"), [*tiny_sac_overrides, "total_steps=200", "checkpoint_every=100"])
    train(config, run_dir)
    before = snapshot(run_dir)
    assert train_cli.main(["--resume", str(run_dir), override]) == 2
    assert snapshot(run_dir) == before
    assert train_cli.main(["--resume", str(run_dir), "total_steps=300"]) == 0
    assert load_checkpoint(Checkpointer(run_dir).latest())["step"] == 300


def test_a_checkpoint_from_before_the_rename_keeps_its_warmup():
    """Checkpoints written before update_after_steps was named so carry the warm-up as 'warmup_steps'."""
    from types import SimpleNamespace

    from agents.engine.loops import resolve_update_after

    config = SimpleNamespace(train=SimpleNamespace(total_steps=10_000))
    for extra in ({"warmup_steps": 321}, {"update_after_steps": 321}):
        session = SimpleNamespace(extra_state=extra, config=config, logger=None)
        assert resolve_update_after(session, 5_000) == 321
