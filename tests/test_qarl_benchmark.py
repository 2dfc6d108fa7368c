"""The QARL robustness benchmark script (benchmarks/qarl_robustness.py): tier 1 and tier 2 plans, the Hopper
model grid, and the pass numbers ``summarize`` computes, all without training anything.
"""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import qarl_robustness as bench  # noqa: E402


def _args(tmp_path: Path, *extra: str, command: str = "run"):
    return bench.parse_args(
        [command, "--root", str(tmp_path / "runs"), "--figures", str(tmp_path / "figs"), "--seeds", "0", "1", *extra]
        + (["--results", str(tmp_path / "results.json")] if "--results" not in extra else [])
    )


def _plan(args) -> tuple[bench.Results, list[dict]]:
    results = bench.Results(Path(args.results), {"env": bench.TASKS[args.task].env_id, "seeds": args.seeds})
    bench.maybe_choose_force(args, results)
    return results, bench.plan(args, results)


def test_defaults_per_task(tmp_path):
    tier1 = bench.parse_args(["run"])
    assert (tier1.task, tier1.tag, tier1.adversary_steps) == ("inverted-pendulum", "tier1", 10_000)
    assert tier1.results.endswith("benchmarks/results/qarl_tier1.json")
    tier2 = bench.parse_args(["run", "--task", "hopper"])
    assert (tier2.tag, tier2.adversary_steps) == ("tier2", 50_000)
    assert tier2.results.endswith("benchmarks/results/qarl_tier2.json")
    assert bench.parse_args(["run", "--task", "hopper", "--adversary-steps", "7"]).adversary_steps == 7


def test_hopper_plan_takes_the_presets_force_and_skips_calibration(tmp_path):
    args = _args(tmp_path, "--task", "hopper")
    results, jobs = _plan(args)
    meta = results.data["meta"]
    assert meta["force_limit"] == 5.0 and "not calibrated" in meta["force_rule"]
    assert not [j for j in jobs if j["kind"] == "calibrate"]
    trains = {j["key"]: j["spec"] for j in jobs if j["kind"] == "train"}
    assert set(trains) == {f"train/{m}/s{s}" for m in bench.METHODS for s in (0, 1)}
    assert trains["train/qarl/s1"]["preset"] == "qarl-authors/hopper"
    assert trains["train/rarl/s0"]["preset"] == "rarl-authors/hopper"
    assert trains["train/sac/s0"]["preset"] == "sac-adv0-authors/hopper"
    assert "agent.force_limit=5.0" in trains["train/qarl/s0"]["overrides"]
    assert not any(o.startswith("agent.force_limit") for o in trains["train/sac/s0"]["overrides"])
    evals = [j for j in jobs if j["kind"] == "evaluate"]
    assert len(evals) == 6
    assert {(j["spec"]["task"], j["spec"]["adversary_steps"], j["spec"]["force"]) for j in evals} == {
        ("hopper", 50_000, 5.0)
    }
    assert {j["spec"]["adversary_seed"] for j in evals} == {1000, 1001}


def test_tier1_plan_still_calibrates(tmp_path):
    args = _args(tmp_path)
    results, jobs = _plan(args)
    assert results.data["meta"].get("force_limit") is None  # undecided until the calibration finishes
    assert [j["key"] for j in jobs if j["kind"] == "calibrate"] == [f"calibrate/F{f:g}" for f in args.forces]
    assert all(j["spec"]["preset"] == "sac-adv0-authors/inverted-pendulum" for j in jobs if j["kind"] == "train")
    hopper, hopper_jobs = _plan(_args(tmp_path / "h", "--task", "hopper", "--calibrate"))
    assert hopper.data["meta"].get("force_limit") is None
    assert [j for j in hopper_jobs if j["kind"] == "calibrate"]


def test_hopper_grid_sets_torso_mass_and_scales_friction():
    import mujoco

    from envs import make_env, resolve_wrapper
    from envs.perturb import mujoco_model

    masses, frictions, wrappers = bench.grid("hopper", 11)
    assert np.allclose(masses, np.linspace(1, 9, 11)) and masses[0] == 1.0
    assert np.allclose(frictions, np.linspace(0.1, 1.9, 11)) and frictions[5] == 1.0
    plain = make_env("Hopper-v5")
    nominal = mujoco_model(plain)
    nominal_mass, nominal_friction = nominal.body_mass.copy(), nominal.geom_friction.copy()
    nominal_inertia = nominal.body_inertia.copy()
    torso = mujoco.mj_name2id(nominal, mujoco.mjtObj.mjOBJ_BODY, "torso")
    plain.close()
    for mass, friction in ((masses[0], frictions[0]), (masses[-1], frictions[7])):
        (spec,) = wrappers(mass, friction)
        _, wrap = resolve_wrapper(spec)
        env = wrap(make_env("Hopper-v5"))  # a fresh env per cell
        env.reset(seed=0)
        model = mujoco_model(env)
        assert model.body_mass[torso] == pytest.approx(mass)
        others = np.arange(model.nbody) != torso
        assert np.allclose(model.body_mass[others], nominal_mass[others])
        assert np.allclose(model.body_inertia, nominal_inertia)  # mass only, as the authors' setter
        assert np.allclose(model.geom_friction[:, 0], friction * nominal_friction[:, 0])
        assert np.allclose(model.geom_friction[:, 1:], nominal_friction[:, 1:])
        env.close()


def test_tier1_grid_is_the_pole_and_cart_mass_grid():
    rows, columns, wrappers = bench.grid("inverted-pendulum", 11)
    assert rows == columns == bench.grid_scales(11)
    (wrapper,) = wrappers(rows[0], columns[-1])
    assert callable(wrapper)  # the script's own body scaling (pole inertia scaled too), as tier 1 ran


def _table(values: dict[str, dict[str, dict[int, float]]]) -> dict:
    return {m: {q: {**bench.t_interval(list(v.values())), "per_seed": v} for q, v in row.items()}
            for m, row in values.items()}  # fmt: skip


def test_done_when_numbers():
    kept = {"qarl": {0: 0.6, 1: 0.5, 2: 0.3}, "sac": {0: 0.5, 1: 0.4, 2: 0.3}, "rarl": {0: 0.1, 1: 0.2, 2: 0.3}}
    nominal = {"qarl": {0: 900.0, 1: 1000.0, 2: 1100.0}, "sac": {0: 1000.0, 1: 1000.0, 2: 1000.0},
               "rarl": {0: 800.0, 1: 1000.0, 2: 1000.0}}  # fmt: skip
    grid = {"qarl": {0: 600.0, 1: 660.0, 2: 720.0}, "sac": {0: 600.0, 1: 600.0, 2: 600.0},
            "rarl": {0: 500.0, 1: 600.0, 2: 700.0}}  # fmt: skip
    fresh = {m: {s: kept[m][s] * nominal[m][s] for s in range(3)} for m in kept}
    table = _table({m: {"retained (det.)": kept[m], "nominal (det.)": nominal[m], "grid mean (det.)": grid[m],
                        "fresh adversary (det.)": fresh[m]} for m in kept})  # fmt: skip
    out, lines = bench.done_when(table)
    ratios = out["retained"]["qarl/sac"]["per_seed"]
    assert ratios == pytest.approx({0: 1.2, 1: 1.25, 2: 1.0})
    assert out["retained"]["seeds with qarl/sac >= 1.2"] == [0, 1] and out["retained"]["count"] == "2 of 3"
    assert out["grid mean qarl/sac"]["of seed means"] == pytest.approx(660 / 600)
    assert out["grid mean qarl/sac"]["per seed"]["mean"] == pytest.approx((1.0 + 1.1 + 1.2) / 3)
    assert out["nominal qarl/sac"]["of seed means"] == pytest.approx(1.0)
    diff = out["qarl-rarl"]["grid mean (det.)"]
    assert diff["per_seed"] == pytest.approx({0: 100.0, 1: 60.0, 2: 20.0}) and diff["mean"] == pytest.approx(60.0)
    assert diff["low"] < 60.0 < diff["high"]
    assert out["grid mean qarl/rarl (of seed means)"] == pytest.approx(660 / 600)
    assert any("2 of 3 seeds [0, 1]" in line for line in lines)
    rarl = out["retained rarl"]  # kept 0.1 / 0.5, 0.2 / 0.4, 0.3 / 0.3 of SAC's
    assert rarl["rarl/sac"]["per_seed"] == pytest.approx({0: 0.2, 1: 0.5, 2: 1.0}) and rarl["count"] == "0 of 3"


def test_done_when_leaves_out_seeds_without_a_positive_denominator():
    result = bench.paired({0: 1.0, 1: 2.0, 3: 5.0}, {0: 0.0, 1: 4.0, 2: 1.0}, "ratio")
    assert set(result["per_seed"]) == {0, 1} and np.isnan(result["per_seed"][0])
    assert result["n"] == 1 and result["mean"] == 0.5


def _eval_record(task: str, nominal: float, fresh: float, grid_mean: float) -> dict:
    score = {"mean_reward": nominal, "mean_discounted_reward": nominal / 10}
    attacked = {"mean_reward": fresh, "mean_discounted_reward": nominal / 20}  # half the discounted return
    keys = bench.TASKS[task].grid_keys
    return {
        "nominal": {"deterministic": score, "stochastic": score},
        "random_force": {"deterministic": score, "stochastic": score},
        "fresh_adversary": {"deterministic": attacked, "stochastic": attacked},
        "grid": {keys[0]: [1.0, 2.0], keys[1]: [0.5, 1.5], "returns": [[grid_mean] * 2] * 2, "mean": grid_mean},
    }


@pytest.mark.parametrize(
    "task, prefix, extra",
    [
        ("hopper", "qarl_hopper", []),
        ("inverted-pendulum", "qarl_tier1", []),
        ("hopper", "mine", ["--figure-prefix", "mine"]),
    ],
)
def test_summarize_writes_the_task_figures_and_the_done_when_block(tmp_path, task, prefix, extra, capsys):
    path = tmp_path / "results.json"
    meta = {"env": bench.TASKS[task].env_id, "seeds": [0, 1], "force_limit": 5.0, "force_rule": "test"}
    if task == "hopper":
        meta["task"] = task
    jobs = {}
    for seed in (0, 1):  # QARL keeps 0.6 / 0.5 of its nominal return, SAC 0.4 in both seeds
        jobs[f"eval/qarl/s{seed}"] = _eval_record(task, 1000.0, 1000.0 * (0.6 - 0.1 * seed), 700.0)
        jobs[f"eval/rarl/s{seed}"] = _eval_record(task, 900.0, 450.0, 650.0)
        jobs[f"eval/sac/s{seed}"] = _eval_record(task, 1000.0, 400.0, 600.0)
    jobs["eval/sac/s0"]["fresh_adversary"]["curve"] = [[10, 900.0], [20, 400.0]]  # its learning curve
    jobs["calibrate/F5"] = {
        "force": 5.0,
        "cut": 0.6,
        "nominal": {"mean_reward": 1000.0},
        "attacked": {"mean_reward": 400.0},
    }
    path.write_text(json.dumps({"meta": meta, "jobs": jobs}))
    summary = bench.summarize(_args(tmp_path, "--results", str(path), *extra, command="summarize"))
    assert summary["calibration"]["calibrate/F5"]["cut"] == 0.6
    for name in ("grid_sac", "grid_rarl", "grid_qarl", "learning", "adversaries"):
        assert (tmp_path / "figs" / f"{prefix}_{name}.png").exists()
    done = summary["done_when"]
    assert done["retained"]["qarl/sac"]["per_seed"] == pytest.approx({0: 1.5, 1: 1.25})
    assert done["retained"]["count"] == "2 of 2"
    assert done["grid mean qarl/sac"]["of seed means"] == pytest.approx(700 / 600)
    saved = json.loads((tmp_path / "results_summary.json").read_text())
    assert saved["done_when"]["retained"]["count"] == "2 of 2"
    assert done["retained, discounted"]["qarl/sac"]["per_seed"] == pytest.approx({0: 1.0, 1: 1.0})
    printed = capsys.readouterr().out
    assert "QARL / SAC per seed | s0 1.50, s1 1.25" in printed
    assert "the same on discounted returns | s0 1.00, s1 1.00" in printed
    # the per-seed table: return / length / discounted return (a dash where not recorded), grid mean
    assert "| 1 | QARL | 1,000 / - / 100.0 | 500 / - / 50.0 | 1,000 / - / 100.0 | 700 |" in printed


def test_run_refuses_a_results_file_of_another_task(tmp_path):
    path = tmp_path / "results.json"
    path.write_text(json.dumps({"meta": {"env": "InvertedPendulum-v5"}, "jobs": {}}))
    with pytest.raises(SystemExit, match="InvertedPendulum-v5"):
        bench.run_all(_args(tmp_path, "--task", "hopper", "--results", str(path)))


def test_a_second_scheduler_is_refused_before_it_touches_the_results(tmp_path):
    import subprocess
    import time

    args = _args(tmp_path, "--task", "hopper", "--tag", "t", "--workers", "0")  # were it let through: no jobs
    logs = Path(args.root) / "t" / "jobs_results"
    logs.mkdir(parents=True)
    # a process whose command line reads like a running scheduler of this script
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", "qarl_robustness.py", "run"])
    try:
        for _ in range(200):  # its command line appears once it has started
            if "qarl_robustness.py" in Path(f"/proc/{other.pid}/cmdline").read_text():
                break
            time.sleep(0.05)
        (logs / "scheduler.pid").write_text(f"{other.pid}\n")
        with pytest.raises(SystemExit, match=f"pid {other.pid}"):
            bench.run_all(args)
        assert not Path(args.results).exists()
    finally:
        other.kill()
        other.wait()


def test_evaluation_keeps_finished_stages_for_the_same_plan_only(tmp_path):
    import agents

    run_dir = tmp_path / "run"
    tiny = ["agent.protagonist.hidden=[16,16]", "train.total_steps=200", "train.phase_min_steps=50",
            "train.eval_every=0", "train.checkpoint_every=100", "train.progress=false", "train.threads=1"]  # fmt: skip
    agents.train("sac-adv0/inverted-pendulum", tiny, run_dir=run_dir)
    partial = tmp_path / "partial.json"
    spec = {"run_dir": str(run_dir), "force": 5.0, "episodes": 1, "adversary_steps": 20, "adversary_seed": 1000,
            "grid": 2, "task": "inverted-pendulum", "partial": str(partial)}  # fmt: skip
    sentinel = {"deterministic": {"mean_reward": -1.0}, "stochastic": {"mean_reward": -2.0}}
    kept = {"checkpoint_step": 200, "force": 5.0, "nominal": sentinel, "random_force": sentinel,
            "fresh_adversary": {"steps": 20, "seed": 1000, **sentinel}, "grid_row_0": [-3.0, -4.0]}  # fmt: skip
    made_for = {k: v for k, v in spec.items() if k != "partial"} | {"checkpoint_step": 200}
    partial.write_text(json.dumps({"made_for": made_for, "out": kept}))
    out = bench.job_evaluate(spec)
    assert out["nominal"] == sentinel and out["fresh_adversary"]["deterministic"]["mean_reward"] == -1.0
    assert out["grid"]["returns"][0] == [-3.0, -4.0] and min(out["grid"]["returns"][1]) > 0  # row 1 was played
    assert set(out["grid"]) == {"pole_scales", "cart_scales", "returns", "mean"}  # tier 1's record, unchanged
    assert not any(k.startswith("grid_row") for k in out)
    partial.write_text(json.dumps({"made_for": made_for, "out": kept}))
    changed = bench.job_evaluate({**spec, "adversary_steps": 30})  # another plan: nothing kept applies
    assert changed["nominal"]["deterministic"]["mean_reward"] > 0 and changed["fresh_adversary"]["steps"] == 30
    assert min(changed["grid"]["returns"][0]) > 0


def test_choose_force_rules():
    # the first F in the band; unmeasured smaller forces keep the choice open
    assert bench.choose_force({5.0: 0.1, 10.0: 0.4, 20.0: None})[0] == 10.0
    assert bench.choose_force({5.0: None, 10.0: 0.4})[0] is None
    assert "above the band" in bench.choose_force({5.0: 0.1, 10.0: 0.8})[1]
    # none reaches the band: the largest cut, not the largest force (40 N raised the return here)
    force, rule = bench.choose_force({5.0: 0.0, 10.0: -0.1, 20.0: 0.25, 40.0: -1.6})
    assert force == 20.0 and "largest cut (25%)" in rule
    assert bench.choose_force({5.0: 0.05, 10.0: 0.05})[0] == 5.0  # equal cuts: the smaller force
    # nothing cut at all: the largest force tried
    assert bench.choose_force({5.0: -0.1, 10.0: 0.0}) == (10.0, "no F cut >= 30%; the largest F tried")


def test_tier3_plan_uses_the_suite_presets_a_30_to_70_percent_band_and_flattening_adversaries(tmp_path):
    args = _args(tmp_path, "--task", "tier3-inverted-pendulum")
    assert (args.tag, args.adversary_steps) == ("tier3", 40_000)
    results, jobs = _plan(args)
    assert all(j["spec"]["preset"] == "sac-adv0/inverted-pendulum" for j in jobs if j["kind"] == "train")
    calibrations = [j for j in jobs if j["kind"] == "calibrate"]
    assert calibrations and all(j["spec"]["until_flat"] == 0.05 for j in calibrations)
    # flatness is checked from half the budget on: a return still at 1000 early is not a finished adversary
    assert all(j["spec"]["min_steps"] == args.calibration_steps // 2 for j in calibrations)
    assert all(j["spec"]["adversary_learner"] == "run" for j in calibrations)  # the task's learners attack
    band = bench.TASKS["tier3-inverted-pendulum"].band
    assert bench.choose_force({2.0: 0.1, 5.0: 0.65, 10.0: None}, band)[0] == 5.0  # in [30 %, 70 %]
    assert "above the band" in bench.choose_force({2.0: 0.1, 5.0: 0.65}, bench.CUT_BAND)[1]  # tiers 1-2: 30-60 %
    rows, columns, wrappers = bench.grid("tier3-inverted-pendulum", 3)
    assert rows == bench.grid_scales(3) and wrappers(1.0, 2.0)[0]  # the pendulum's pole x cart grid
    results.data["meta"]["force_limit"] = 5.0
    evals = [j for j in bench.plan(args, results) if j["kind"] == "evaluate"]
    assert evals and all(j["spec"]["until_flat"] == 0.05 and j["spec"]["adversary_steps"] == 40_000 for j in evals)
    assert all(j["spec"]["min_steps"] == 20_000 and j["spec"]["adversary_learner"] == "run" for j in evals)
    assert "adversary_learner" not in bench.fresh_adversary_spec("inverted-pendulum", 10_000)  # tier 1: FRESH_ADVERSARY


def test_qualify_counts_seeds_that_reach_ninety_percent_of_the_best_return(tmp_path):
    def sac_run(name, curve, total=6):
        run_dir = tmp_path / name
        run_dir.mkdir()
        (run_dir / "config.json").write_text(json.dumps({"config": {"train": {"total_steps": total}}}))
        rows = [{"step": 2 * (i + 1), "eval/mean_reward": v} for i, v in enumerate(curve)]
        (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        return run_dir

    runs = [sac_run("s0", [10, 1000, 950]), sac_run("s1", [10, 905, 500]), sac_run("s2", [10, 800, 899])]
    out = bench.qualify(runs, 0.9, need=2, seeds=3)
    assert out["best"] == 1000 and out["reached"] == 2 and out["final_reached"] == 1
    assert out["verdict"] == "qualifies"
    assert bench.qualify(runs, 0.9, need=3, seeds=3)["verdict"] == "fails"  # s2 peaks at 899 < 900
    unfinished = [*runs[:1], sac_run("s3", [10, 20], total=100)]
    assert bench.qualify(unfinished, 0.9, need=2, seeds=3)["verdict"] == "undecided"
