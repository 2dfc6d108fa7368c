"""Sweeps: seed / grid / search-space parsing, the manifest, the local runner (including a driver killed
with SIGKILL and rerun), the Ray runner against the local one, and the Tune-reporting logger."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agents import get_preset
from agents.engine.config import ConfigError
from agents.experiments import sweep

ROOT = Path(__file__).resolve().parents[1]


def one_line(error: pytest.ExceptionInfo) -> str:
    text = str(error.value)
    assert "\n" not in text
    return text


# ---- parsing ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec, seeds",
    [("0-4", [0, 1, 2, 3, 4]), ("0,2,5", [0, 2, 5]), ("3", [3]), ("0-2,7", [0, 1, 2, 7]), ("2, 2,1", [2, 1])],
)
def test_parse_seeds(spec, seeds):
    assert sweep.parse_seeds(spec) == seeds


@pytest.mark.parametrize("spec, fragment", [("5-3", "empty"), ("", "bad seed"), ("a", "bad seed"), ("1-", "bad")])
def test_parse_seeds_bad(spec, fragment):
    with pytest.raises(ConfigError) as error:
        sweep.parse_seeds(spec)
    assert fragment in one_line(error)


def test_grid_is_the_cartesian_product_in_order():
    points = sweep.parse_grid(["agent.actor_lr=1e-4,3e-4", "agent.hidden=[8,8],[16,16]"], get_preset("sac"))
    assert points == [
        {"agent.actor_lr": "1e-4", "agent.hidden": "[8,8]"},
        {"agent.actor_lr": "1e-4", "agent.hidden": "[16,16]"},
        {"agent.actor_lr": "3e-4", "agent.hidden": "[8,8]"},
        {"agent.actor_lr": "3e-4", "agent.hidden": "[16,16]"},
    ]
    assert sweep.parse_grid([]) == [{}]


@pytest.mark.parametrize(
    "specs, fragments",
    [
        (["agent.actor_l=1e-4,3e-4"], ["unknown grid key 'agent.actor_l'", "agent.actor_lr"]),
        (["train.batch_size=32,abc"], ["train.batch_size expects an integer"]),
        (["seed=1,2"], ["--seeds"]),
        (["agent.gamma"], ["key=value1,value2"]),
        (["agent.gamma=0.9", "agent.gamma=0.99"], ["given twice"]),
    ],
)
def test_grid_bad_input(specs, fragments):
    with pytest.raises(ConfigError) as error:
        sweep.parse_grid(specs, get_preset("sac"))
    for fragment in fragments:
        assert fragment in one_line(error)


def test_search_space_from_strings_and_json(tmp_path):
    path = tmp_path / "space.json"
    path.write_text(json.dumps({"agent.gamma": {"uniform": [0.9, 0.99]}, "agent.hidden": "choice([8,8],[16,16])"}))
    space = sweep.parse_space(["agent.actor_lr=loguniform(1e-5,1e-3)", "train.batch_size=choice(64,128)"], path)
    assert space == {
        "agent.gamma": ("uniform", [0.9, 0.99]),
        "agent.hidden": ("choice", [[8, 8], [16, 16]]),
        "agent.actor_lr": ("loguniform", [1e-5, 1e-3]),
        "train.batch_size": ("choice", [64, 128]),
    }
    sweep.validate_space(get_preset("sac"), space)  # every value parses as its field's type


@pytest.mark.parametrize(
    "spec, fragment",
    [
        ("agent.actor_lr=normal(0,1)", "expected one of"),
        ("agent.actor_lr=uniform(1e-3,1e-5)", "low bound must be below"),
        ("agent.actor_lr=loguniform(0,1)", "must be positive"),
        ("train.batch_size=randint(1.5,4)", "integers"),
        ("agent.actor_lr", "key=dist(args)"),
    ],
)
def test_search_space_bad_input(spec, fragment):
    with pytest.raises(ConfigError) as error:
        sweep.parse_space([spec])
    assert fragment in one_line(error)


def test_search_space_keys_and_values_are_checked_against_the_config():
    with pytest.raises(ConfigError) as error:
        sweep.validate_space(get_preset("sac"), {"agent.actr_lr": ("uniform", [0.1, 0.2])})
    assert "agent.actor_lr" in one_line(error)
    with pytest.raises(ConfigError):
        sweep.validate_space(get_preset("sac"), {"train.batch_size": ("choice", ["many"])})


# ---- manifest and launches -------------------------------------------------------------------------


def test_plan_ids_and_overrides():
    grid = [{"agent.actor_lr": "1e-4"}, {"agent.actor_lr": "3e-4"}]
    trials = sweep.plan_trials([0, 1], grid)
    assert [t.id for t in trials] == ["g00_seed0", "g00_seed1", "g01_seed0", "g01_seed1"]
    assert trials[3].overrides == ["agent.actor_lr=3e-4"] and trials[3].run_dir == "trials/g01_seed1"
    assert [t.id for t in sweep.plan_trials([4], [{}])] == ["seed4"]


def test_a_sweep_of_another_preset_is_refused(tmp_path):
    manifest = sweep.open_sweep(tmp_path / "s", "sac", ["train.total_steps=300"], sweep.plan_trials([0], [{}]))
    manifest.save()
    with pytest.raises(ConfigError) as error:
        sweep.open_sweep(tmp_path / "s", "dqn/cartpole", [], sweep.plan_trials([0], [{}]))
    assert "preset 'sac'" in one_line(error) and "dqn/cartpole" in one_line(error)
    with pytest.raises(ConfigError) as error:
        sweep.open_sweep(tmp_path / "s", "sac", ["train.total_steps=400"], sweep.plan_trials([0], [{}]))
    assert "train.total_steps=300" in one_line(error)
    # The same sweep with one more seed keeps the trial it has and adds the new one.
    again = sweep.open_sweep(tmp_path / "s", "sac", ["train.total_steps=300"], sweep.plan_trials([0, 1], [{}]))
    assert [t.id for t in again.trials] == ["seed0", "seed1"]
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file").write_text("x")
    with pytest.raises(ConfigError, match="not a sweep directory"):
        sweep.open_sweep(tmp_path / "other", "sac", [], [])


def test_launch_resumes_from_a_checkpoint_else_starts_clean(tmp_path):
    manifest = sweep.Manifest(
        tmp_path, "sac", ["train.total_steps=300"], sweep.plan_trials([3], [{"agent.gamma": "0.9"}])
    )
    trial = manifest.trials[0]
    run_dir = tmp_path / trial.run_dir
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "metrics.jsonl").write_text("{}\n")
    mode, step, argv = sweep.trial_launch(manifest, trial, threads=2)
    # No checkpoint: the half-made run directory is cleared (train.py refuses a non-empty one).
    assert mode == "start" and step == 0 and not run_dir.exists()
    assert argv[1:] == [
        str(ROOT / "train.py"), "sac", "--run-dir", str(run_dir), "seed=3", "train.total_steps=300",
        "agent.gamma=0.9", "train.threads=2",
    ]  # fmt: skip
    (run_dir / "checkpoints").mkdir(parents=True)
    (run_dir / "checkpoints" / "step_000000200.pt").write_bytes(b"")
    mode, step, argv = sweep.trial_launch(manifest, trial, threads=2)
    assert (mode, step, argv[1:]) == ("resume", 200, [str(ROOT / "train.py"), "--resume", str(run_dir)])


def test_an_address_that_does_not_answer_fails_fast():
    with socket.socket() as probe:  # a port that nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(ConfigError) as error:
        sweep._wait_for_address(f"127.0.0.1:{port}", timeout_s=1.0)
    assert time.monotonic() - start < 10
    assert f"no Ray cluster answers at 127.0.0.1:{port}" in one_line(error)
    with pytest.raises(ConfigError, match="HOST:PORT"):
        sweep._wait_for_address("nonsense", timeout_s=1.0)


# ---- the Tune-reporting logger ---------------------------------------------------------------------


def test_tune_logger_reports_every_evaluation(tmp_path, tiny_sac_overrides):
    from agents import run_training as train
    from agents.engine.config import apply_overrides

    config = apply_overrides(get_preset("sac"), [*tiny_sac_overrides, "train.eval_every=100", "train.eval_episodes=1"])
    reports = []
    factory = sweep.make_tune_logger_factory(tmp_path / "run", config.train.total_steps, reports.append)
    train(config, tmp_path / "run", logger_factory=factory)
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    logged = [{"step": r["step"], "eval/mean_reward": r["eval/mean_reward"]} for r in rows if "eval/mean_reward" in r]
    assert [r["step"] for r in reports] == [100, 200, 300]
    assert reports == logged


# ---- local runner ----------------------------------------------------------------------------------


def metric_rows(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock columns (they differ between any two runs)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in row.items() if k not in ("time", "time/fps")} for row in rows]


@pytest.fixture(scope="module")
def local_sweep(tmp_path_factory):
    tiny = [
        "agent.hidden=[16,16]", "train.total_steps=300", "train.update_after_steps=100", "train.batch_size=32",
        "train.eval_every=0", "train.eval_episodes=2", "train.log_every=100", "train.checkpoint_every=100",
        "train.progress=false",
    ]  # fmt: skip
    sweep_dir = tmp_path_factory.mktemp("local") / "sweep"
    manifest = sweep.run_sweep("sac", tiny, [0, 1], [], sweep_dir, parallel=2, threads=1, progress=False)
    return tiny, sweep_dir, manifest


def test_local_sweep_runs_every_trial_as_an_ordinary_run(local_sweep):
    tiny, sweep_dir, manifest = local_sweep
    data = json.loads((sweep_dir / "manifest.json").read_text())
    assert data["preset"] == "sac" and data["overrides"] == tiny
    assert [(t["id"], t["seed"], t["run_dir"], t["status"]) for t in data["trials"]] == [
        ("seed0", 0, "trials/seed0", "done"),
        ("seed1", 1, "trials/seed1", "done"),
    ]
    for seed in (0, 1):
        run_dir = sweep_dir / "trials" / f"seed{seed}"
        config = json.loads((run_dir / "config.json").read_text())["config"]
        assert config["train"]["seed"] == seed and config["train"]["threads"] == 1
        assert config["agent"]["hidden"] == [16, 16]
        assert metric_rows(run_dir)[-1]["step"] == 300
    assert metric_rows(sweep_dir / "trials" / "seed0") != metric_rows(sweep_dir / "trials" / "seed1")
    # A finished sweep run again starts nothing.
    again = sweep.run_sweep("sac", tiny, [0, 1], [], sweep_dir, parallel=2, threads=1, progress=False)
    assert [len(t.launches) for t in again.trials] == [1, 1]


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains ``text`` (used to find trials that outlived a sweep)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            state = next(line for line in (entry / "status").read_text().splitlines() if line.startswith("State:"))
        except (OSError, StopIteration):
            continue
        if text in cmdline and "Z" not in state.split()[1]:
            found.append(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = next(line for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("State:"))
    except (OSError, StopIteration):
        return False
    return "Z" not in state.split()[1]


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc")
def test_an_exception_in_the_driver_kills_each_trial_with_its_children(tmp_path, monkeypatch):
    # The "trial" starts a grandchild in its own process group and sleeps; the driver then fails.
    script = "import subprocess, time; p = subprocess.Popen(['sleep', '60']); print(p.pid, flush=True); time.sleep(60)"
    monkeypatch.setattr(sweep, "trial_launch", lambda m, t, threads: ("start", 0, [sys.executable, "-c", script]))
    manifest = sweep.Manifest(tmp_path, "sac", [], sweep.plan_trials([0], [{}]))
    log = tmp_path / "logs" / "seed0.log"
    seen = {}

    def failing_sleep(seconds):
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not log.read_text().strip().splitlines()[-1].isdigit():
            time.sleep(0.05)
        seen["grandchild"] = int(log.read_text().strip().splitlines()[-1])
        raise RuntimeError("driver failure")

    monkeypatch.setattr(sweep, "time", type("T", (), {"sleep": staticmethod(failing_sleep)}))
    with pytest.raises(RuntimeError, match="driver failure"):
        sweep.run_local(manifest, manifest.trials, parallel=1, threads=1, progress=False)
    assert manifest.trials[0].status == "running"  # left for a rerun to resume
    deadline = time.monotonic() + 10
    while alive(seen["grandchild"]) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(seen["grandchild"])


@pytest.mark.skipif(sys.platform != "linux", reason="relies on PR_SET_PDEATHSIG and /proc")
def test_killed_sweep_resumes_unfinished_trials_from_their_checkpoints(tmp_path, tiny_sac_overrides):
    sweep_dir = tmp_path / "sweep"
    # Grid point 0 is short, point 1 long enough to be killed between two of its checkpoints.
    argv = [
        "sac", *tiny_sac_overrides, "--seeds", "0", "--grid", "train.total_steps=300,900", "--parallel", "1",
        "--threads", "1", "--sweep-dir", str(sweep_dir), "--no-progress",
    ]  # fmt: skip
    code = f"import sys; from agents.experiments.sweep import main; sys.exit(main({argv!r}))"
    driver = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    long_dir = sweep_dir / "trials" / "g01_seed0"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        data = json.loads((sweep_dir / "manifest.json").read_text()) if (sweep_dir / "manifest.json").exists() else {}
        statuses = [t["status"] for t in data.get("trials", [])]
        step = sweep.has_checkpoint(long_dir) if long_dir.is_dir() else None
        if statuses == ["done", "running"] and step is not None and step < 900:
            break
        assert driver.poll() is None, driver.stderr.read().decode()
        time.sleep(0.05)
    else:
        pytest.fail("the sweep never reached the state to kill it in")
    driver.send_signal(signal.SIGKILL)
    driver.wait()
    deadline = time.monotonic() + 10
    while processes_mentioning(str(sweep_dir)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert processes_mentioning(str(sweep_dir)) == [], "a trial outlived its killed sweep"

    short_rows = (sweep_dir / "trials" / "g00_seed0" / "metrics.jsonl").read_bytes()
    before = (long_dir / "metrics.jsonl").read_bytes()
    kept_step = sweep.has_checkpoint(long_dir)
    assert sweep.main(argv) == 0

    data = json.loads((sweep_dir / "manifest.json").read_text())
    short, long = data["trials"]
    assert short["status"] == long["status"] == "done"
    assert [launch["mode"] for launch in short["launches"]] == ["start"]  # the finished trial was kept
    assert (sweep_dir / "trials" / "g00_seed0" / "metrics.jsonl").read_bytes() == short_rows
    assert [launch["mode"] for launch in long["launches"]] == ["start", "resume"]
    assert long["launches"][1]["from_step"] == kept_step > 0
    after = (long_dir / "metrics.jsonl").read_bytes()
    # the run continued in place: the rows up to its checkpoint are kept, the later ones logged again
    whole = before[: before.rfind(b"\n") + 1].splitlines()  # a line cut short by the kill is dropped
    kept = b"".join(line + b"\n" for line in whole if json.loads(line)["step"] <= kept_step)
    assert after.startswith(kept) and len(kept) > 0
    assert metric_rows(long_dir)[-1]["step"] == 900


# ---- Ray -------------------------------------------------------------------------------------------


def test_ray_sweep_equals_the_local_sweep(local_sweep, tmp_path):
    pytest.importorskip("ray", reason="the Ray runner needs ray[tune]")
    tiny, local_dir, _ = local_sweep
    sweep_dir = tmp_path / "ray_sweep"
    manifest = sweep.run_sweep("sac", tiny, [0], [], sweep_dir, ray=True, cpus_per_trial=1, threads=1, progress=False)
    assert [(t.id, t.status, t.launches[0]["runner"]) for t in manifest.trials] == [("seed0", "done", "ray")]
    import ray

    assert not ray.is_initialized()  # the Ray instance this sweep started is gone again
    # Same command, same seed, same thread count: the same numbers bit for bit.
    assert metric_rows(sweep_dir / "trials" / "seed0") == metric_rows(local_dir / "trials" / "seed0")


def test_ray_address_that_does_not_answer_is_one_line(tmp_path, tiny_sac_overrides):
    pytest.importorskip("ray", reason="the Ray runner needs ray[tune]")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConfigError) as error:
        sweep.run_sweep(
            "sac", tiny_sac_overrides, [0, 1], [], tmp_path / "new" / "s", ray_address=f"127.0.0.1:{port}",
            connect_timeout_s=1.0, progress=False,
        )  # fmt: skip
    assert "no Ray cluster answers" in one_line(error)
    assert not (tmp_path / "new").exists()  # no manifest, no directory left behind
    space = sweep.parse_space(["agent.actor_lr=loguniform(1e-4,1e-2)"])
    with pytest.raises(ConfigError, match="no Ray cluster answers"):
        sweep.run_search(
            "sac", [*tiny_sac_overrides, "train.eval_every=100"], space, tmp_path / "search",
            ray_address=f"127.0.0.1:{port}",
            connect_timeout_s=1.0, progress=False,
        )  # fmt: skip
    assert not (tmp_path / "search").exists()


@pytest.mark.slow
def test_search_writes_a_loadable_best_config(tmp_path, tiny_sac_overrides):
    pytest.importorskip("ray", reason="search needs ray[tune]")
    pytest.importorskip("optuna", reason="search needs optuna")
    from agents.engine.config import RunConfig, from_dict

    overrides = [*tiny_sac_overrides, "train.eval_every=100", "train.eval_episodes=1", "train.checkpoint_every=0"]
    space = sweep.parse_space(["agent.actor_lr=loguniform(1e-4,1e-2)", "train.batch_size=choice(16,32)"])
    summary = sweep.run_search("sac", overrides, space, tmp_path / "search", num_samples=2, progress=False)
    assert len(summary["trials"]) == 2
    best = summary["best"]
    assert best["eval/mean_reward"] == max(t["eval/mean_reward"] for t in summary["trials"] if t["step"] == 300)
    config = from_dict(RunConfig, json.loads((tmp_path / "search" / "best_config.json").read_text()))
    assert config.agent.actor_lr == best["params"]["agent.actor_lr"]
    assert config.train.batch_size == best["params"]["train.batch_size"] and config.agent.hidden == (16, 16)
    for trial in summary["trials"]:
        assert (tmp_path / "search" / trial["run_dir"] / "metrics.jsonl").is_file()


def test_main_reports_bad_input_in_one_line(capsys, tmp_path):
    assert sweep.main(["sac", "--seeds", "4-2", "--sweep-dir", str(tmp_path / "s")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and "empty" in err and "\n" not in err
    assert not os.path.exists(tmp_path / "s")


def test_search_bad_input_fails_before_starting_ray(capsys, tmp_path):
    assert sweep.main(["sac", "--search", "--space", "agent.actor_lr=normal(0,1)"]) == 2
    assert "expected one of loguniform(...)" in capsys.readouterr().err
    space = sweep.parse_space(["agent.actor_lr=loguniform(1e-4,1e-2)"])
    with pytest.raises(ConfigError, match="train.eval_every > 0"):
        sweep.run_search("sac", ["train.eval_every=0"], space, tmp_path / "s")
    with pytest.raises(ConfigError, match="empty search space"):
        sweep.run_search("sac", [], {}, tmp_path / "s")
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize("option", ["--cpus-per-trial=inf", "--time-budget=nan", "--gpus-per-trial=-inf"])
def test_a_non_finite_float_option_is_one_line_and_writes_nothing(capsys, tmp_path, option):
    with pytest.raises(SystemExit) as exit_:
        sweep.main(["sac", "--seeds", "0-1", option, "--sweep-dir", str(tmp_path / "s")])
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "is out of range; valid: a finite number" in err and "\n" not in err
    assert not (tmp_path / "s").exists()
