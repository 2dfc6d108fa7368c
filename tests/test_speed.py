"""Issue #24's speed settings: the thread default, and SAC's compiled update (``agent.compile``).

The compiled step is traced with the ``aot_eager`` backend (the same Dynamo graph and AOTAutograd
functionalisation as inductor, without a C++ build, which takes minutes on the test machine);
benchmarks/sac_speed.py times and checks the inductor build.
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import agents.sac as sac
from agents import get_preset
from agents import run_training as train
from agents.engine.checkpoint import Checkpointer, load_checkpoint
from agents.engine.config import ConfigError, apply_overrides
from agents.engine.run import read_config, resolve_threads
from envs.base import BoxSpec

ROOT = Path(__file__).resolve().parents[1]


# ---- threads --------------------------------------------------------------------------------------


def test_auto_threads_is_one_and_the_runner_applies_it(tmp_path, tiny_sac_overrides):
    assert resolve_threads(0) == 1 and resolve_threads(3) == 3
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        config = apply_overrides(get_preset("sac"), [*tiny_sac_overrides, "train.total_steps=20", "train.threads=0"])
        assert config.train.threads == 0  # the preset's default is auto
        train(config, tmp_path / "run")
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("script", ["train.py", "evaluate.py"])
def test_entry_points_bound_openmp_spinning_unless_told(script):
    """Both entry points start OpenMP with a ~0.2 ms spin (GOMP_SPINCOUNT=20000) before idle workers
    sleep, unless the environment chose a wait policy or a spin count itself."""
    code = (
        f"import runpy, os; runpy.run_path({script!r}, run_name='x'); "
        "print(os.environ.get('GOMP_SPINCOUNT'), os.environ.get('OMP_WAIT_POLICY'))"
    )
    base = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}

    def started_with(**extra) -> list[str]:
        run = [sys.executable, "-c", code]
        out = subprocess.run(run, cwd=ROOT, env={**base, **extra}, capture_output=True, text=True, check=True)
        return out.stdout.split()[-2:]

    assert started_with() == ["20000", "None"]
    assert started_with(OMP_WAIT_POLICY="PASSIVE") == ["None", "PASSIVE"]  # a user's own setting wins
    assert started_with(GOMP_SPINCOUNT="5") == ["5", "None"]


# ---- the allocator ---------------------------------------------------------------------------------

PAGE_FAULTS = """
import resource, sys, torch
from agents.engine.allocator import retain_freed_memory
from agents.sac import SAC, SACConfig, SeedStack
from envs.base import BoxSpec
torch.set_num_threads(1)
applied = retain_freed_memory() if sys.argv[1] == "retain" else None
members = []
for seed in range(2):
    torch.manual_seed(seed)
    members.append(SAC(BoxSpec((3,)), BoxSpec((1,)), SACConfig(hidden=(128, 128))))
stack = SeedStack(members)
def batch():
    return {"obs": torch.randn(256, 3), "action": torch.rand(256, 1) * 2 - 1, "reward": torch.randn(256),
            "next_obs": torch.randn(256, 3), "terminated": torch.zeros(256, dtype=torch.bool)}
for step in range(10):
    stack.update([batch(), batch()], step=step)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for step in range(20):
    stack.update([batch(), batch()], step=step)
print(applied, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc: Linux")
def test_retained_memory_takes_the_page_faults_out_of_an_update():
    """The seed-stacked SAC update (2 seeds, 128x128) page-faults its activations in afresh each time
    under glibc's defaults (~900 faults measured); with :func:`retain_freed_memory` (what the runner
    applies) it reuses them."""

    def faults(mode: str) -> tuple[str, float]:
        out = subprocess.run([sys.executable, "-c", PAGE_FAULTS, mode], cwd=ROOT, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        applied, count = out.stdout.split()
        return applied, float(count)

    default = faults("default")[1]
    applied, retained = faults("retain")
    assert default > 100 and applied == "True" and retained < default / 5, (default, retained)


def test_the_runner_retains_freed_memory(tmp_path, tiny_sac_overrides, monkeypatch):
    import agents.engine.run as run

    calls = []
    monkeypatch.setattr(run, "retain_freed_memory", lambda: calls.append(True))
    config = apply_overrides(get_preset("sac"), [*tiny_sac_overrides, "train.total_steps=20"])
    train(config, tmp_path / "run")
    assert calls


@pytest.mark.parametrize("flush", [True, False])
def test_the_runner_applies_flush_denormal(flush, tmp_path, tiny_sac_overrides):
    """``train.flush_denormal``: after the runner's set-up a subnormal float reads as zero (DAZ) and a
    product that would be subnormal comes out zero (FTZ); switched off, both stay subnormal."""
    subnormal = torch.tensor([1e-39])
    try:
        config = apply_overrides(
            get_preset("sac"),
            [*tiny_sac_overrides, "train.total_steps=20", f"train.flush_denormal={str(flush).lower()}"],
        )
        train(config, tmp_path / "run")
        assert ((subnormal * 1.0).item() == 0.0) is flush
        assert ((torch.tensor([1e-20]) * torch.tensor([1e-20])).item() == 0.0) is flush
    finally:
        torch.set_flush_denormal(False)


@pytest.mark.parametrize("precision", ["medium", "highest"])
def test_the_runner_applies_matmul_precision(precision, tmp_path, tiny_sac_overrides):
    """``train.matmul_precision`` is torch's float32 matmul precision for the run (on CPU, medium routes
    matrix products through oneDNN); a value outside the three is refused in one line before a run."""
    try:
        torch.set_float32_matmul_precision("high")  # neither value: the runner must set it
        config = apply_overrides(
            get_preset("sac"), [*tiny_sac_overrides, "train.total_steps=20", f"train.matmul_precision={precision}"]
        )
        train(config, tmp_path / "run")
        assert torch.get_float32_matmul_precision() == precision
    finally:
        torch.set_float32_matmul_precision("highest")
    with pytest.raises(ConfigError, match="matmul_precision") as error:
        apply_overrides(get_preset("sac"), ["train.matmul_precision=low"])
    assert "\n" not in str(error.value) and "medium" in str(error.value)


# ---- agent.compile ----------------------------------------------------------------------------------


@pytest.fixture
def traced(monkeypatch):
    monkeypatch.setattr(sac, "COMPILE_BACKEND", "aot_eager")


def make_agent(**kw) -> sac.SAC:
    torch.manual_seed(0)
    return sac.SAC(BoxSpec((3,)), BoxSpec((2,)), sac.SACConfig(hidden=(8, 8), **kw))


def fixed_batch(n: int = 6, weights: bool = False) -> dict:
    g = torch.Generator().manual_seed(1)
    batch = {
        "obs": torch.randn(n, 3, generator=g),
        "action": torch.rand(n, 2, generator=g) * 2 - 1,
        "reward": torch.randn(n, generator=g),
        "next_obs": torch.randn(n, 3, generator=g),
        "terminated": torch.arange(n) % 3 == 1,
    }
    if weights:
        batch["weights"] = torch.rand(n, generator=g) + 0.5
    return batch


def assert_same_agents(a: sac.SAC, b: sac.SAC, exact: bool) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    for name in ("actor", "critic", "critic_target"):
        for key, value in sa[name].items():
            if exact:
                assert torch.equal(value, sb[name][key]), f"{name}.{key}"
            else:
                torch.testing.assert_close(value, sb[name][key], rtol=1e-5, atol=1e-6, msg=f"{name}.{key}")
    torch.testing.assert_close(sa["log_temperature"], sb["log_temperature"], rtol=1e-5, atol=1e-7)
    for opt in ("actor_optimizer", "critic_optimizer"):
        for index, state in sa[opt]["state"].items():
            for key, value in state.items():
                torch.testing.assert_close(value, sb[opt]["state"][index][key], rtol=1e-5, atol=1e-7)


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"policy_delay": 2, "target_every": 2},  # the graph without actor and Polyak steps too
        {"temperature": "fixed"},
    ],
)
def test_compiled_step_gives_eager_losses_on_a_fixed_batch(traced, config, capsys):
    eager, compiled = make_agent(**config), make_agent(compile=True, **config)
    assert compiled._compiled_update is not None
    batch = fixed_batch(weights=not config)  # prioritized weights and td_error on the default config
    for i in range(4):
        torch.manual_seed(10 + i)
        expected = eager.update(batch, step=i)
        torch.manual_seed(10 + i)
        got = compiled.update(batch, step=i)
        assert expected.keys() == got.keys()
        for key in expected:
            torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6, msg=key)
    assert compiled._compiled_update is not None, "fell back to eager"
    assert "notice" not in capsys.readouterr().out
    assert_same_agents(eager, compiled, exact=False)
    assert compiled.updates == eager.updates == 4


def test_compiled_step_skips_guards_only_for_signatures_it_has_compiled():
    from agents.engine.compiled import CompiledStep, batch_signature

    step = CompiledStep(lambda batch, scale: batch["x"] * scale, "aot_eager")
    x, longer = torch.ones(3), torch.ones(5)
    calls = [(x, 2), (x, 3), (x, 2), (longer, 3), (x, 3), (longer, 3)]  # a new Python switch, then a new shape
    for tensor, scale in calls:
        batch = {"x": tensor}
        got = step((scale, batch_signature(batch)), batch, scale)
        # skipping every guard from the second call on would run scale 2's graph for scale 3
        assert torch.equal(got, tensor * scale), (tuple(tensor.shape), scale)
    assert step.compiled == {(2, (("x", (3,), torch.float32),)), (3, (("x", (3,), torch.float32),)),
                             (3, (("x", (5,), torch.float32),))}  # fmt: skip


def test_the_compiled_update_gets_each_tensor_once_and_no_adam_power(monkeypatch):
    # Two graph inputs sharing memory, one of them mutated (a parameter and the optimizer row's view of
    # it), send every call through AOTAutograd's synthetic-base path (views rebuilt, copies back): 2-4 %
    # of a Hopper-sized update. The backend sees the graph's inputs; none may share storage.
    seen = []

    def recording(graph, example_inputs):
        seen.append([t for t in example_inputs if isinstance(t, torch.Tensor)])
        graphs.append(graph)
        return graph.forward

    graphs = []

    monkeypatch.setattr(sac, "COMPILE_BACKEND", recording)
    for temperature in ("learned", "fixed"):
        agent = make_agent(compile=True, temperature=temperature)
        agent.update(fixed_batch(), step=0)
        assert agent._compiled_update is not None
    assert len(seen) == 2
    for inputs in seen:
        storages = [t.untyped_storage().data_ptr() for t in inputs]
        assert len(storages) == len(set(storages)), "two graph inputs share memory"
    # Adam's bias corrections come in computed (SAC._bias_corrections): a beta^t inside the graph would be
    # inlined into every fused Adam loop (a scalar powf per 16 elements, libm's slow path once it underflows)
    for graph in graphs:
        called = [str(node.target) for node in graph.graph.nodes if node.op == "call_function"]
        assert not [target for target in called if "pow" in target], called


def test_each_compiled_step_has_its_own_recompile_budget():
    # Dynamo counts graphs per code object against its limit (8); a method's graphs are specific to
    # its object, so without a private copy of the code the ninth object would fail to compile.
    from agents.engine.compiled import CompiledStep

    class Scaler:  # like SAC's update, its graph reads an optimizer (which Dynamo guards by identity)
        def __init__(self):
            self.optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=2.0)
            self.step = CompiledStep(self.apply, "aot_eager")

        def apply(self, x):
            return x * self.optimizer.param_groups[0]["lr"]

    x = torch.ones(3)
    scalers = [Scaler() for _ in range(10)]
    for scaler in scalers:
        assert torch.equal(scaler.step(("x",), x), x * 2)


def test_two_compiled_agents_in_one_process_each_update_their_own_parameters(traced):
    # QARL's protagonist and adversary compile the same function (SAC.functional_update): with guards
    # skipped for known signatures, each call must still run its own agent's graph (Dynamo keeps the
    # tensor guards that tell two cache entries apart)
    eager, compiled = [make_agent(), make_agent()], [make_agent(compile=True), make_agent(compile=True)]
    for agents in (eager, compiled):
        with torch.no_grad():
            agents[1].actor.head.bias.add_(0.5)  # two different agents of the same shapes
    batch = fixed_batch()
    for i in range(3):
        for k in range(2):
            torch.manual_seed(10 * i + k)
            expected = eager[k].update(batch, step=i)
            torch.manual_seed(10 * i + k)
            got = compiled[k].update(batch, step=i)
            for key in expected:
                torch.testing.assert_close(got[key], expected[key], rtol=1e-5, atol=1e-6, msg=f"agent {k} {key}")
    for a, b in zip(eager, compiled):
        assert_same_agents(a, b, exact=False)


def test_compile_failure_falls_back_to_eager_with_a_notice(monkeypatch, capsys):
    def broken(graph, example_inputs):
        raise RuntimeError("no compiler here")

    monkeypatch.setattr(sac, "COMPILE_BACKEND", broken)
    eager, fallback = make_agent(), make_agent(compile=True)
    batch = fixed_batch()
    for i in range(2):
        torch.manual_seed(i)
        expected = eager.update(batch, step=i)
        torch.manual_seed(i)
        got = fallback.update(batch, step=i)
        for key in expected:
            assert torch.equal(got[key], expected[key]), key  # eager all along: bit for bit
    out = capsys.readouterr().out
    assert out.count("notice: agent.compile unavailable") == 1 and "no compiler here" in out
    assert fallback._compiled_update is None
    assert_same_agents(eager, fallback, exact=True)


def test_a_variant_with_its_own_critic_loss_compiles_its_objectives_only(traced):
    from agents.erc import ERC, ERCConfig

    torch.manual_seed(0)
    agent = ERC(BoxSpec((3,)), BoxSpec((2,)), ERCConfig(hidden=(8, 8), compile=True))
    assert agent._compiled_update is None


def test_resume_with_compile_equals_straight_compiled_run(traced, tmp_path, tiny_sac_overrides):
    overrides = [*tiny_sac_overrides, "train.total_steps=300", "train.threads=1", "agent.compile=true"]
    straight = apply_overrides(get_preset("sac"), overrides)
    train(straight, tmp_path / "straight")
    train(apply_overrides(straight, ["train.total_steps=200"]), tmp_path / "split")
    resumed = apply_overrides(read_config(tmp_path / "split"), ["train.total_steps=300"])
    assert resumed.agent.compile
    train(resumed, tmp_path / "split", resume=True)
    a, b = (load_checkpoint(Checkpointer(tmp_path / name).latest()) for name in ("straight", "split"))
    assert a["step"] == b["step"] == 300
    for name in ("actor", "critic", "critic_target"):
        for key, value in a["agent"][name].items():
            assert torch.equal(value, b["agent"][name][key]), f"{name}.{key} differs after resume"
    assert torch.equal(a["agent"]["log_temperature"], b["agent"]["log_temperature"])
