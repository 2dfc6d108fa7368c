"""The ERNIE benchmark's summary: arms from the sweep's grid, losses against the paired clean episodes, and the
four pass criteria computed by hand on a synthetic sweep (two seeds per arm)."""

import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import ernie_robustness as bench  # noqa: E402

# weight -> per seed: (clean, noise 0.5, noise 1, attack clean, attack 0.2, jacobian)
ARMS = {
    "0": [(-50.0, -55.0, -60.0, -50.0, -60.0, 6.0), (-52.0, -57.0, -62.0, -52.0, -58.0, 8.0)],
    "0.2": [(-53.0, -55.0, -58.0, -53.0, -55.0, 2.0), (-53.0, -55.0, -57.0, -53.0, -56.0, 2.0)],
    "1": [(-61.0, -62.0, -62.0, -61.0, -62.0, 1.0), (-61.0, -62.0, -63.0, -61.0, -61.0, 1.0)],
}


def report(clean, noise_half, noise_one, attack_clean, attacked, jacobian):
    noise = ((0.0, clean), (0.5, noise_half), (1.0, noise_one))
    return {
        "nominal": {"mean_reward": clean},
        "observation_noise": [{"sigma": s, "mean_reward": r} for s, r in noise],
        "observation_attack": {"clean": {"mean_reward": attack_clean},
                               "results": [{"eps": 0.2, "mean_reward": attacked}]},
        "agent_mass": [{"scale": 2.0, "mean_reward": clean - 1.0}],
        "lipschitz": {"jacobian_mean": jacobian, "jacobian_p95": jacobian, "pgd_mean": jacobian},
    }  # fmt: skip


@pytest.fixture
def sweep(tmp_path):
    trials = []
    for index, (weight, seeds) in enumerate(ARMS.items()):
        for seed, row in enumerate(seeds):
            run_dir = f"trials/g{index:02d}_seed{seed}"
            (tmp_path / "simple-spread" / run_dir / "eval").mkdir(parents=True)
            config = {"config": {"algo": "ernie", "env": {"id": "mpe:simple_spread"}, "train": {"seed": seed}}}
            (tmp_path / "simple-spread" / run_dir / "config.json").write_text(json.dumps(config))
            metrics = [{"step": s, "eval/mean_reward": row[0] - 10.0 / s} for s in (1, 2)]
            (tmp_path / "simple-spread" / run_dir / "metrics.jsonl").write_text("\n".join(map(json.dumps, metrics)))
            (tmp_path / "simple-spread" / run_dir / "eval" / "eval_1.json").write_text(json.dumps(report(*row)))
            trials.append({"run_dir": run_dir, "seed": seed, "status": "done",
                           "overrides": [f"agent.ernie_weight={weight}"]})  # fmt: skip
    (tmp_path / "simple-spread" / "manifest.json").write_text(
        json.dumps({"preset": "ernie/simple-spread", "trials": trials})
    )
    return tmp_path


def test_summary_criteria_by_hand(sweep, capsys):
    out = sweep / "summary.json"
    summary = bench.summarize(
        bench.parse(["summarize", "--root", str(sweep), "--results", str(out), "--figures", str(sweep)])
    )
    assert summary["seeds"] == {"MADDPG": [0, 1], "ERNIE λ=0.2": [0, 1], "ERNIE λ=1": [0, 1]}
    maddpg = summary["stats"]["MADDPG"]
    assert maddpg["loss observation_noise 0.5"]["mean"] == 5.0 and maddpg["loss observation_attack 0.2"]["mean"] == 8.0
    small = summary["criteria"]["ERNIE λ=0.2"]
    # jacobian 2 / 7; noise 0.5: 2 / 5; noise 1: 4.5 / 10; attack: 2.5 / 8, -55.5 > -59; clean -53 >= -51 - 7.65
    assert small["jacobian <= 0.5x"]["ratio"] == pytest.approx(2 / 7) and small["jacobian <= 0.5x"]["pass"]
    assert small["noise 0.5 loss <= 0.8x"]["ratio"] == pytest.approx(0.4)
    assert small["noise 1 loss <= 0.8x"]["ratio"] == pytest.approx(0.45)
    assert (
        small["attack 0.2 loss <= 0.5x"]["ratio"] == pytest.approx(2.5 / 8)
        and small["attack 0.2 return higher"]["pass"]
    )
    assert small["clean >= maddpg - 15%"]["floor"] == pytest.approx(-51.0 - 0.15 * 51.0)
    assert all(check["pass"] for check in small.values())
    big = summary["criteria"]["ERNIE λ=1"]
    assert not big["clean >= maddpg - 15%"]["pass"]  # -61 < -58.65: robustness bought with too much return
    assert json.loads(out.read_text())["criteria"]["ERNIE λ=1"]["clean >= maddpg - 15%"]["pass"] is False
    assert (sweep / "ernie_simple-spread_curves.png").stat().st_size > 0
    assert (sweep / "ernie_simple-spread_robustness.png").stat().st_size > 0
    text = capsys.readouterr().out
    assert "FAIL  clean >= maddpg - 15%" in text and "| MADDPG (2) | -51.0 ± " in text


def _single_arm_sweep(root, name, preset, rows, value=True):
    trials = []
    for seed, row in enumerate(rows):
        run_dir = f"trials/seed{seed}"
        (root / name / run_dir / "eval").mkdir(parents=True)
        config = {"config": {"algo": "ernie", "env": {"id": "mpe:simple_spread"}, "train": {"seed": seed}}}
        (root / name / run_dir / "config.json").write_text(json.dumps(config))
        metrics = [{"step": s, "eval/mean_reward": row[0] - 10.0 / s} for s in (1, 2)]
        (root / name / run_dir / "metrics.jsonl").write_text("\n".join(map(json.dumps, metrics)))
        data = report(*row[:6])
        if value:
            data["value_attack"] = {"clean": {"mean_reward": row[3]}, "results": [{"eps": 0.2, "mean_reward": row[6]}]}
        (root / name / run_dir / "eval" / "eval_1.json").write_text(json.dumps(data))
        trials.append({"run_dir": run_dir, "seed": seed, "status": "done", "overrides": []})
    (root / name / "manifest.json").write_text(json.dumps({"preset": preset, "overrides": [], "trials": trials}))


def test_ablation_sweeps_join_a_reused_summary_with_the_value_attack(sweep, capsys):
    """Single-arm sweeps of the ablation presets are labelled by preset; an earlier summary fills the arms and
    seeds no sweep holds; the value-aimed attack's loss is against its own clean episodes; a measure older reports
    lack is averaged over the seeds that have it and shows their number."""
    earlier = sweep / "earlier.json"
    bench.summarize(
        bench.parse(["summarize", "--root", str(sweep), "--results", str(earlier), "--figures", str(sweep)])
    )
    (sweep / "simple-spread" / "manifest.json").unlink()  # the old runs are gone: only their summary is left
    _single_arm_sweep(
        sweep,
        "wo",
        "ernie-wo-st/simple-spread",
        [(-55.0, -57.0, -60.0, -55.0, -57.0, 2.0, -59.0), (-57.0, -59.0, -62.0, -57.0, -59.0, 2.0, -61.0)],
    )
    _single_arm_sweep(sweep, "gauss", "ernie-gaussian/simple-spread", [(-54.0, -58.0, -63.0, -54.0, -60.0, 3.0, -64.0)])
    # a fresh MADDPG seed 0 with the value attack replaces the reused seed 0; seed 1 stays reused
    _single_arm_sweep(sweep, "base", "maddpg/simple-spread", [(-50.0, -55.0, -60.0, -50.0, -60.0, 6.0, -70.0)])
    manifest = json.loads((sweep / "base" / "manifest.json").read_text())
    manifest["trials"][0]["overrides"] = ["agent.ernie_weight=0"]
    (sweep / "base" / "manifest.json").write_text(json.dumps(manifest))
    out = sweep / "ablations.json"
    summary = bench.summarize(bench.parse([
        "summarize", "--root", str(sweep), "--name", "ablations", "--sweeps", "base", "wo", "gauss",
        "--reuse", str(earlier), "--results", str(out), "--figures", str(sweep),
    ]))  # fmt: skip
    assert list(summary["seeds"]) == ["MADDPG", "ERNIE λ=0.2", "ERNIE λ=1", "ERNIE w/o ST", "Baseline-Gaussian"]
    assert summary["seeds"]["ERNIE w/o ST"] == [0, 1] and summary["seeds"]["MADDPG"] == [0, 1]
    assert summary["sources"]["MADDPG"] == {"0": "sweep base", "1": "reused earlier.json"}
    wo = summary["stats"]["ERNIE w/o ST"]
    assert wo["loss value_attack 0.2"]["mean"] == 4.0 and wo["loss observation_attack 0.2"]["mean"] == 2.0
    maddpg = summary["stats"]["MADDPG"]
    assert maddpg["value_attack 0.2"]["n"] == 1 and maddpg["nominal"]["n"] == 2
    assert "ERNIE λ=1" in summary["criteria"] and "value_attack 0.2" not in summary["stats"]["ERNIE λ=1"]
    text = capsys.readouterr().out
    assert "value attack ε = 0.2 (Δ)" in text and "-70.0 [1 seeds] (20.0)" in text
    assert (sweep / "ernie_ablations_robustness.png").stat().st_size > 0


def test_run_names_the_sweep_after_the_preset():
    args = bench.parse(["run", "--preset", "ernie-wo-st", "--seeds", "0-4"])
    assert bench.sweep_name(args) == "simple-spread-wo-st"
    assert bench.sweep_name(bench.parse(["run"])) == "simple-spread"
    assert bench.arm_of({"overrides": ["agent.ernie_weight=1"], "sweep_overrides": ["agent.ernie_scale=spread"]},
                        "ernie/vmas-navigation") == "ERNIE λ=1 (ball spread)"  # fmt: skip
    assert bench.arm_of({"overrides": []}, "ernie-gaussian/simple-spread") == "Baseline-Gaussian"
