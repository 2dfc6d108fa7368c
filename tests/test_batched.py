"""Seed-batched SAC training (``train.py --seeds 0-4 --batched``): the stacked update is SAC's, the seeds
do not touch each other, the run directories are ordinary runs, a batched sweep resumes bit for bit,
and what is not supported is refused in one line."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny import TINY_OVERRIDES

from agents import family_of, get_preset, load_run, run_training
from agents.engine import run as engine_run
from agents.engine.checkpoint import load_checkpoint
from agents.engine.config import ConfigError, apply_overrides
from agents.experiments import sweep
from agents.registry import run_training_batched
from agents.sac import SAC, SACConfig, SeedStack
from envs.base import BoxSpec

ROOT = Path(__file__).resolve().parents[1]
TINY = ["agent.hidden=[16,16]", *TINY_OVERRIDES["off_policy"]]


def configs(seeds, *extra):
    return [apply_overrides(get_preset("sac"), [*TINY, *extra, f"seed={seed}"]) for seed in seeds]


def final_agent(run_dir: Path) -> dict:
    checkpoints = sorted((Path(run_dir) / "checkpoints").glob("step_*.pt"))
    return load_checkpoint(checkpoints[-1])["agent"]


def flat(state) -> list[torch.Tensor]:
    """Every tensor of a nested state, in key order."""
    if isinstance(state, torch.Tensor):
        return [state]
    if isinstance(state, dict):
        return [t for key in sorted(state, key=str) for t in flat(state[key])]
    if isinstance(state, (list, tuple)):
        return [t for item in state for t in flat(item)]
    return []


def same(a, b) -> bool:
    ta, tb = flat(a), flat(b)
    return len(ta) == len(tb) and all(x.shape == y.shape and torch.equal(x, y) for x, y in zip(ta, tb))


# ---- the stacked update is SAC ---------------------------------------------------------------------


def fixed_batches(count: int, size: int = 32):
    g = torch.Generator().manual_seed(3)
    return [
        {
            "obs": torch.randn(size, 3, generator=g),
            "action": torch.rand(size, 1, generator=g) * 2 - 1,
            "reward": torch.randn(size, generator=g),
            "next_obs": torch.randn(size, 3, generator=g),
            "terminated": torch.rand(size, generator=g) < 0.1,
        }
        for _ in range(count)
    ]


def make_sac(seed: int, **config) -> SAC:
    torch.manual_seed(seed)
    return SAC(BoxSpec((3,)), BoxSpec((1,)), SACConfig(hidden=(16, 16), **config))


@pytest.mark.parametrize("config", [{}, {"temperature": "fixed"}, {"policy_delay": 2, "target_every": 2}])
def test_one_seed_stack_is_the_eager_sac_update_on_fixed_batches(config):
    """K=1: the stacked losses, and the parameters and Adam state after each update, equal eager
    ``SAC.update`` on the same batches and the same noise (float tolerance: other kernels)."""
    eager, member = make_sac(1, **config), make_sac(1, **config)
    stack = SeedStack([member])
    for i, batch in enumerate(fixed_batches(5)):
        torch.manual_seed(100 + i)
        want = eager.update(batch, step=i)
        torch.manual_seed(100 + i)
        (got,) = stack.update([batch], step=i)
        assert set(got) == set(want)
        for key in want:
            torch.testing.assert_close(got[key], want[key], rtol=1e-5, atol=1e-6)
    a, b = eager.state_dict(), member.state_dict()
    assert a["updates"] == b["updates"] == 5
    for x, y in zip(flat(a), flat(b)):
        torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


def test_the_stacks_fused_adam_step_is_torch_adam_fused_for_any_gradient_layout():
    """``SAC._fused_adam_step`` (the eager stack's optimizer step) equals ``torch.optim.Adam(fused=True)``
    bit for bit, also for a gradient laid out transposed (a stacked weight read as ``weight.mT`` gets
    one): the kernel walks memory in order, so without the layout fix it pairs the wrong elements."""
    torch.manual_seed(0)
    weight, grads = torch.randn(3, 4, 5), [torch.randn(3, 5, 4).mT for _ in range(3)]
    reference = weight.clone().requires_grad_()
    optimizer = torch.optim.Adam([reference], lr=1e-2, fused=True)
    rows = [(weight, torch.zeros(()), torch.zeros_like(weight), torch.zeros_like(weight))]
    for grad in grads:
        assert not grad.is_contiguous()
        reference.grad = grad.contiguous()  # as autograd hands a parameter its gradient
        optimizer.step()
        SAC._fused_adam_step([grad], rows, optimizer.param_groups[0])
        assert torch.equal(weight, reference.detach())
    state = optimizer.state[reference]
    assert torch.equal(rows[0][2], state["exp_avg"]) and torch.equal(rows[0][3], state["exp_avg_sq"])
    assert rows[0][1].item() == state["step"].item() == 3


@pytest.mark.parametrize("config", [{}, {"temperature": "fixed"}, {"policy_delay": 2, "target_every": 2}])
def test_compiled_stack_is_the_eager_stack(config, monkeypatch):
    """agent.compile: the stacked step compiled as one graph (traced with ``aot_eager``, as
    tests/test_speed.py does: no C++ build) gives the eager stacked update's metrics, parameters and
    Adam state (float tolerance), K=3 over 4 updates, every cadence branch."""
    import agents.sac as sac

    monkeypatch.setattr(sac, "COMPILE_BACKEND", "aot_eager")
    eager_members = [make_sac(seed, **config) for seed in range(3)]
    compiled_members = [make_sac(seed, compile=True, **config) for seed in range(3)]
    eager, compiled = SeedStack(eager_members), SeedStack(compiled_members)
    batches = fixed_batches(3)
    for i in range(4):
        torch.manual_seed(100 + i)
        want = eager.update(batches, step=i)
        torch.manual_seed(100 + i)
        got = compiled.update(batches, step=i)
        for w, g in zip(want, got):
            assert set(g) == set(w)
            for key in w:
                torch.testing.assert_close(g[key], w[key], rtol=1e-5, atol=1e-6)
    assert compiled._compiled_step is not None
    for a, b in zip(eager_members, compiled_members):
        for x, y in zip(flat(a.state_dict()), flat(b.state_dict())):
            torch.testing.assert_close(x, y, rtol=1e-5, atol=1e-6)


def test_a_failing_compile_runs_the_stack_eager_with_one_notice(monkeypatch, capsys):
    import agents.sac as sac

    def broken(graph, example_inputs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(sac, "COMPILE_BACKEND", broken)
    eager, fallback = (
        SeedStack([make_sac(s) for s in range(2)]),
        SeedStack([make_sac(s, compile=True) for s in range(2)]),
    )
    for i, batch in enumerate(fixed_batches(2)):
        torch.manual_seed(i)
        want = eager.update([batch, batch], step=i)
        torch.manual_seed(i)
        got = fallback.update([batch, batch], step=i)
        for w, g in zip(want, got):
            assert all(torch.equal(g[key], w[key]) for key in w)  # eager all along: bit for bit
    out = capsys.readouterr().out
    assert out.count("notice: agent.compile unavailable for the stacked update") == 1 and "no compiler here" in out
    assert fallback._compiled_step is None
    for a, b in zip(eager.members, fallback.members):
        assert same(a.state_dict(), b.state_dict())


def test_members_view_the_stack_and_checkpoint_their_own_rows():
    members = [make_sac(seed) for seed in range(3)]
    stack = SeedStack(members)
    stack.update(fixed_batches(3)[:3], step=0)
    # a member's parameters and Adam moments are rows of the stacked tensors: always current
    assert members[1].actor_params[0].data_ptr() == stack.actor_rows[0][0][1].data_ptr()
    state = members[1].state_dict()
    for tensor in flat(state):  # cloned out of the stack: a checkpoint holds this seed only
        assert tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
    fresh = make_sac(7)
    fresh.load_state_dict(state)  # an ordinary SAC checkpoint
    assert same(fresh.state_dict(), state)


def test_the_seeds_do_not_touch_each_other_in_the_update():
    """Seed 1's batches changed: seeds 0 and 2 end bit for bit the same (same global noise)."""

    def train(perturb: bool):
        members = [make_sac(seed) for seed in range(3)]
        stack = SeedStack(members)
        torch.manual_seed(5)
        for batch in fixed_batches(4):
            other = {**batch, "reward": batch["reward"] + 1.0} if perturb else batch
            stack.update([batch, other, batch], step=0)
        return [m.state_dict() for m in members]

    plain, perturbed = train(False), train(True)
    assert same(plain[0], perturbed[0]) and same(plain[2], perturbed[2])
    assert not same(plain[1], perturbed[1])


def test_the_stacked_act_is_each_members_exploring_action():
    """:meth:`SeedStack.act` on ``[K, N, obs]``: member k's squashed-Gaussian sample of its own
    observations, with the k-th slice of one ``[K, N, A]`` draw."""
    members = [make_sac(seed) for seed in range(3)]
    stack = SeedStack(members)
    stack.update(fixed_batches(3), step=0)  # the members differ after an update as well as at init
    obs = torch.randn(3, 4, 3)
    torch.manual_seed(11)
    actions = stack.act(obs, step=0)
    torch.manual_seed(11)
    noise = torch.randn(3, 4, 1)
    for k, member in enumerate(members):
        mean, log_std = member.actor.distribution_params(obs[k])
        torch.testing.assert_close(actions[k], torch.tanh(mean + log_std.exp() * noise[k]))


# ---- the loop: independence, ordinary run directories, resume --------------------------------------


def test_changing_one_seeds_data_leaves_the_other_seeds_bit_for_bit(tmp_path, monkeypatch):
    """K=3 batched runs, then again with seed 1's replay rewards shifted: seeds 0 and 2 are unchanged."""
    dirs = [tmp_path / "a" / f"seed{k}" for k in range(3)]
    run_training_batched(configs(range(3)), dirs)

    make_buffer = engine_run.make_transition_buffer

    def shifted(cfg, fields, device, seed_offset=0):
        buffer = make_buffer(cfg, fields, device, seed_offset)
        if cfg.seed == 1:
            sample = buffer.sample
            buffer.sample = lambda *a, **k: {**(batch := sample(*a, **k)), "reward": batch["reward"] + 1.0}
        return buffer

    monkeypatch.setattr(engine_run, "make_transition_buffer", shifted)
    other = [tmp_path / "b" / f"seed{k}" for k in range(3)]
    run_training_batched(configs(range(3)), other)
    assert same(final_agent(dirs[0]), final_agent(other[0]))
    assert same(final_agent(dirs[2]), final_agent(other[2]))
    assert not same(final_agent(dirs[1]), final_agent(other[1]))


def test_batched_runs_are_ordinary_and_resume_bit_for_bit(tmp_path):
    """300 steps, then the batch resumed to 600, equals 600 steps straight (every checkpoint of both
    seeds); each run directory loads like any run, and one seed resumes alone with train.py --resume."""
    straight = [tmp_path / "straight" / f"seed{k}" for k in (0, 1)]
    run_training_batched(configs((0, 1), "train.total_steps=600"), straight)
    parts = [tmp_path / "parts" / f"seed{k}" for k in (0, 1)]
    run_training_batched(configs((0, 1)), parts)
    run_training_batched(configs((0, 1), "train.total_steps=600"), parts, resume=True)
    for a, b in zip(straight, parts):
        for step in (400, 500, 600):
            name = f"checkpoints/step_{step:09d}.pt"
            x, y = load_checkpoint(a / name), load_checkpoint(b / name)
            for key in ("agent", "buffer", "collector", "torch_rng", "extra"):
                assert same(x[key], y[key]), (a.name, step, key)
    # ordinary runs: config.json with the seed, load_run reads the agent, compact checkpoints
    for k, run_dir in enumerate(straight):
        assert json.loads((run_dir / "config.json").read_text())["config"]["train"]["seed"] == k
        loaded = load_run(run_dir)
        assert loaded.step == 600 and isinstance(loaded.agent, SAC)
        for tensor in flat(load_checkpoint(run_dir / "checkpoints/step_000000600.pt")["agent"]):
            assert tensor.untyped_storage().nbytes() == tensor.numel() * tensor.element_size()
    # one seed of the batch resumes alone as an ordinary run
    config = apply_overrides(configs((1,))[0], ["train.total_steps=700"])
    run_training(config, straight[1], resume=True)
    assert load_run(straight[1]).step == 700


def test_a_batch_resumes_only_from_one_step(tmp_path, capsys):
    manifest = sweep.Manifest(tmp_path, "sac", [], sweep.plan_trials([0, 1], [{}]))
    for trial, steps in zip(manifest.trials, ([100, 200], [100])):
        for step in steps:
            path = tmp_path / trial.run_dir / "checkpoints" / f"step_{step:09d}.pt"
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"")
    step, files = sweep.batched_resume(manifest, manifest.trials)
    assert step == 100 and [f.name for f in files] == ["step_000000100.pt"] * 2
    assert "resumes every seed from step 100" in capsys.readouterr().out
    (tmp_path / "trials/seed1/checkpoints/step_000000100.pt").rename(tmp_path / "trials/seed1/checkpoints/x")
    (tmp_path / "trials/seed1/checkpoints/step_000000300.pt").write_bytes(b"")
    with pytest.raises(ConfigError, match="share no checkpoint step") as error:
        sweep.batched_resume(manifest, manifest.trials)
    assert "\n" not in str(error.value)


# ---- refusals ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["erc/dmc-cartpole-swingup"], "algo erc has no seed-batched update"),
        (["dqn/cartpole"], "algo dqn has no seed-batched update"),
        (["sac", "train.prioritized=true"], "does not support train.prioritized"),
        (["sac", "--ray"], "does not combine with --ray"),
        (["sac", "--grid", "agent.actor_lr=1e-4,3e-4"], "does not combine with --grid"),
        (["sac", "--search", "--space", "agent.actor_lr=loguniform(1e-4,1e-3)"], "does not combine with --search"),
    ],
)
def test_unsupported_batched_sweeps_are_refused_in_one_line(args, fragment, tmp_path, capsys):
    where = tmp_path / "sweep"
    assert sweep.main([*args, "--seeds", "0-1", "--batched", "--sweep-dir", str(where)]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and err.startswith("error:") and fragment in err, err
    assert not where.exists()  # refused before anything was written


def test_unsupported_agents_and_mixed_configs_are_refused():
    with pytest.raises(ValueError, match="plain SAC") as error:
        SeedStack([make_sac(0, temperature="per-sample")])
    assert "\n" not in str(error.value)
    erc_family = family_of("erc")
    erc = erc_family.build_agent(get_preset("erc/dmc-cartpole-swingup"), BoxSpec((3,)), BoxSpec((1,)), "cpu")
    with pytest.raises(ValueError, match="ERC is not plain SAC"):
        SeedStack([erc])
    mixed = [*configs((0,)), *configs((1,), "agent.actor_lr=1e-4")]
    with pytest.raises(ConfigError, match="differ only in train.seed"):
        engine_run.check_batchable(family_of("sac"), mixed)
    ahead, behind = make_sac(0), make_sac(1)  # same update count, but one optimizer stepped more
    ahead.update(fixed_batches(1)[0], step=0)
    behind.update(fixed_batches(1)[0], step=0)
    SAC._adam_state(ahead.actor_optimizer)[0][0][1].add_(1)
    with pytest.raises(ValueError, match="same number of steps"):
        SeedStack([ahead, behind])


# ---- the command line ----------------------------------------------------------------------------------


def test_train_py_batched_sweep_writes_ordinary_trials(tmp_path):
    where = tmp_path / "sweep"
    argv = [sys.executable, "train.py", "sac", "--seeds", "0-1", "--batched", "--sweep-dir", str(where), *TINY]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    manifest = json.loads((where / "manifest.json").read_text())
    assert [t["status"] for t in manifest["trials"]] == ["done", "done"]
    assert manifest["trials"][1]["launches"][0]["mode"] == "batched-start"
    for seed in (0, 1):
        run_dir = where / "trials" / f"seed{seed}"
        assert json.loads((run_dir / "config.json").read_text())["config"]["train"]["seed"] == seed
        assert (run_dir / "checkpoints" / "step_000000300.pt").is_file()
    rerun = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0 and "2 of 2 trials done" in rerun.stdout


def test_rerun_resumes_a_killed_batched_sweep_from_the_newest_common_step(tmp_path, capsys):
    """A batched sweep whose seed 1 lost its last checkpoint (killed between the two saves) resumes
    both seeds from the newest step they share and ends where the uninterrupted sweep ended."""
    where = tmp_path / "sweep"
    argv = ["sac", "--seeds", "0-1", "--batched", "--sweep-dir", str(where), "--no-progress", *TINY]
    assert sweep.main(argv) == 0
    last = {k: load_checkpoint(where / f"trials/seed{k}/checkpoints/step_000000300.pt") for k in (0, 1)}
    (where / "trials/seed1/checkpoints/step_000000300.pt").unlink()
    manifest = json.loads((where / "manifest.json").read_text())
    for trial in manifest["trials"]:
        trial["status"] = "running"
    (where / "manifest.json").write_text(json.dumps(manifest))
    capsys.readouterr()
    assert sweep.main(argv) == 0
    assert "resumes every seed from step 200" in capsys.readouterr().out
    manifest = json.loads((where / "manifest.json").read_text())
    assert [t["launches"][-1]["mode"] for t in manifest["trials"]] == ["batched-resume"] * 2
    assert [t["launches"][-1]["from_step"] for t in manifest["trials"]] == [200, 200]
    for k in (0, 1):
        again = load_checkpoint(where / f"trials/seed{k}/checkpoints/step_000000300.pt")
        for key in ("agent", "buffer", "collector", "torch_rng"):
            assert same(again[key], last[k][key]), (k, key)
