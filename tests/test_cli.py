"""The command line: bad input gives one line naming the problem, non-zero exit, no traceback."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
TINY = [
    "agent.hidden=[16,16]",
    "update_after_steps=100",
    "batch_size=32",
    "eval_every=0",
    "eval_episodes=2",
    "progress=false",
    "threads=1",
]


def run(*args, timeout=600):  # a guard against hangs, generous for a loaded machine
    return subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def assert_clean_error(proc, *fragments):
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(
    "args, fragments",
    [
        (["train.py", "sac/hoper"], ["unknown preset 'sac/hoper'", "sac/hopper"]),
        (["train.py", "sac", "totl_steps=5"], ["unknown key 'totl_steps'", "train.total_steps"]),
        (["train.py", "sac", "total_steps=abc"], ["train.total_steps expects an integer"]),
        (["train.py", "--resume", "/nonexistent/run"], ["/nonexistent/run: no such run directory"]),
        (["evaluate.py", "/nonexistent/run"], ["no such run directory"]),
        (["train.py", "sac", "env.id=Pendulumm-v1"], ["Pendulumm-v1", "Pendulum-v1"]),
        (["train.py", "sac", "agent.critic_lr=-1"], ["agent.critic_lr=-1.0 is out of range", "> 0"]),
        (["train.py", "sac", "agent.critic_lr=inf"], ["agent.critic_lr=inf is out of range", "finite"]),
        (["train.py", "sac", "total_steps=-5"], ["train.total_steps=-5 is out of range", ">= 1"]),
        (["train.py", "dqn/cartpole", "agent.loss=l1"], ["agent.loss='l1' is not valid", "mse, huber"]),
        (["train.py", "roe/climbing", "agent.risk_start=2"], ["agent.risk_start=2.0 is out of range", "<= 1"]),
        (["train.py", "sac", "agent.hidden=[64,0]"], ["agent.hidden=[64, 0] is out of range", ">= 1"]),
        (["train.py", "sac", "agent.hidden=[]"], ["agent.hidden=[] is out of range", "at least 1 item, each >= 1"]),
        (["train.py", "sac", "train.device=gpu7"], ["train.device='gpu7' is not valid", "torch device"]),
        (["train.py", "sac", "env.vectorization=threads"], ["env.vectorization='threads'", "sync, async"]),
    ],
)
def test_bad_input_is_one_line(args, fragments):
    assert_clean_error(run(*args), *fragments)


def test_truncated_and_foreign_checkpoints(tmp_path):
    run_dir = tmp_path / "run"
    proc = run("train.py", "sac", *TINY, "total_steps=200", "checkpoint_every=100", "--run-dir", str(run_dir))
    assert proc.returncode == 0, proc.stderr
    assert "python evaluate.py" in proc.stdout and "tensorboard --logdir" in proc.stdout
    assert "Final evaluation return: " in proc.stdout and "(step 200, eval/mean_reward)" in proc.stdout
    first, latest = sorted((run_dir / "checkpoints").glob("*.pt"))
    latest.write_bytes(latest.read_bytes()[:500])
    (run_dir / "checkpoints" / f"{latest.name}.sha256").unlink()  # as a checkpoint from before checksums
    chosen = run("evaluate.py", str(run_dir), "--checkpoint", str(latest))
    assert_clean_error(chosen, str(latest), "not a readable checkpoint (not a complete torch file")
    assert "weights_only" not in chosen.stderr
    assert_clean_error(run("train.py", "--resume", str(latest), "total_steps=300"), str(latest))
    # not chosen: the newest readable checkpoint, and one line naming the file that was passed over
    fallback = run("evaluate.py", str(run_dir), "--episodes", "1", "--envs", "1")
    assert fallback.returncode == 0, fallback.stderr
    assert "checkpoint step 100," in fallback.stdout and f"warning: {latest}: not a readable" in fallback.stderr
    resumed = run("train.py", "--resume", str(first), "total_steps=200")  # a chosen file of the run
    assert resumed.returncode == 0, resumed.stderr
    assert len(list((run_dir / "checkpoints").glob("*.pt"))) == 2 and latest.stat().st_size > 500
    foreign = tmp_path / "foreign.pt"
    foreign.write_bytes(b"PK\x03\x04 definitely not torch")
    assert_clean_error(run("evaluate.py", str(run_dir), "--checkpoint", str(foreign)), str(foreign))


def test_nan_loss_stops_run_naming_the_loss(tmp_path):
    proc = run("train.py", "sac", *TINY, "total_steps=300", "agent.critic_lr=1e30", "--run-dir", str(tmp_path / "r"))
    assert_clean_error(proc, "loss/critic")
    assert proc.returncode == 3


def test_sigkill_then_resume_loses_at_most_one_interval(tmp_path):
    run_dir = tmp_path / "run"
    args = [
        "train.py",
        "sac",
        *TINY,
        "total_steps=100000",
        "checkpoint_every=100",
        "log_every=100",
        "--run-dir",
        str(run_dir),
    ]
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 90
        while time.time() < deadline:
            ckpts = list((run_dir / "checkpoints").glob("step_*.pt")) if (run_dir / "checkpoints").exists() else []
            if len(ckpts) >= 2:
                break
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait()
    kept = sorted((run_dir / "checkpoints").glob("step_*.pt"))
    assert kept, "no checkpoint was written before the kill"
    last_step = int(kept[-1].stem.split("_")[1])
    resumed = run("train.py", "--resume", str(run_dir), f"total_steps={last_step + 100}")
    assert resumed.returncode == 0, resumed.stderr
    assert (run_dir / "checkpoints" / f"step_{last_step + 100:09d}.pt").exists()


def test_list_and_show():
    listing = run("train.py", "--list")
    assert listing.returncode == 0 and "sac/hopper" in listing.stdout
    show = run("train.py", "sac/hopper", "--show")
    assert "train.total_steps" in show.stdout and "Hopper-v5" in show.stdout


def test_options_may_sit_between_overrides(tmp_path):
    from train import parse_args

    args = parse_args(["sac", "--run-dir", str(tmp_path), "train.total_steps=10", "seed=3"])
    assert args.preset == "sac" and args.overrides == ["train.total_steps=10", "seed=3"]
    assert args.run_dir == tmp_path or str(args.run_dir) == str(tmp_path)


def test_config_file_from_a_search_is_accepted(tmp_path):
    """train.py --config takes a preset-shaped JSON (what a search's best_config.json holds)."""
    import json

    from agents import get_preset
    from agents.engine.config import apply_overrides, to_dict

    path = tmp_path / "best_config.json"
    path.write_text(json.dumps(to_dict(apply_overrides(get_preset("dqn/cartpole"), ["agent.lr=0.00042"]))))
    proc = run("train.py", "--config", str(path), "train.seed=3", "--show")
    assert proc.returncode == 0, proc.stderr
    assert "0.00042" in proc.stdout and "train.seed" in proc.stdout
    path.write_text("{}")
    assert_clean_error(run("train.py", "--config", str(path)), "not a regula config")
