"""Aggregation: IQM, optimality gap, profiles and P(X > Y) against hand computation, the stratified
bootstrap, normalization, and an end-to-end report over synthetic run and sweep directories."""

import json
import math

import numpy as np
import pytest
import scipy.stats

from agents.experiments import aggregate as agg

# ---- metrics by hand -------------------------------------------------------------------------------


def test_iqm_of_known_arrays():
    # 8 scores: drop floor(8 / 4) = 2 from each end -> mean(4, 8, 16, 32) = 15 (order does not matter);
    # trimming 1 or 3 per end would give 21 or 12, no trimming 31.875.
    assert agg.iqm(np.array([32, 1, 128, 2, 64, 4, 16, 8])) == 15.0
    # 10 scores: drop 2 from each end -> mean(1, 2, 4, 8, 16, 32) = 10.5 (3 per end would give 7.5).
    values = np.array([0, 0, 1, 2, 4, 8, 16, 32, 64, 128])
    assert agg.iqm(values) == 10.5
    assert agg.iqm(values) == pytest.approx(scipy.stats.trim_mean(values, 0.25))  # the definition rliable uses
    # An outlier in the top quarter does not move the IQM; a [runs, tasks] matrix is pooled.
    assert agg.iqm(np.array([[0.0, 1.0], [2.0, 3.0], [4.0, 1000.0]])) == pytest.approx((1 + 2 + 3 + 4) / 4)
    # Fewer than 4 scores: nothing is trimmed, the IQM is the mean.
    assert agg.iqm(np.array([1.0, 2.0, 6.0])) == 3.0


def test_optimality_gap_and_profile_by_hand():
    scores = np.array([[0.5, 1.2], [0.9, 0.0]])  # [runs, tasks]
    # gaps below gamma = 1: 0.5, 0 (1.2 is clipped), 0.1, 1.0 -> mean 0.4
    assert agg.optimality_gap(scores) == pytest.approx(0.4)
    # tau = 0.6: task 0 has 1 of 2 runs above, task 1 has 1 of 2 -> 0.5; tau = 1.0: 0/2 and 1/2 -> 0.25.
    assert agg.score_profile(scores, np.array([0.6, 1.0])).tolist() == [0.5, 0.25]


def test_probability_of_improvement_by_hand():
    x = np.array([[1.0, 5.0], [3.0, 5.0]])
    y = np.array([[2.0, 5.0], [2.0, 4.0], [0.0, 6.0]])
    # Task 0: pairs (x > y) = 1>2 1>2 1>0 3>2 3>2 3>0 -> 4 of 6, no ties.
    # Task 1: 5 vs (5, 4, 6) twice -> 2 wins and 2 ties of 6 -> (2 + 0.5 * 2) / 6 = 0.5.
    assert agg.probability_of_improvement(x, y) == pytest.approx((4 / 6 + 0.5) / 2)
    assert agg.probability_of_improvement(x, x) == pytest.approx(0.5)  # a method against itself


def test_stratified_resample_stays_within_each_task():
    matrix = np.array([[1.0, 10.0, 100.0], [2.0, 20.0, 200.0], [3.0, 30.0, 300.0]])
    rng = np.random.default_rng(0)
    for _ in range(20):
        sample = agg.stratified_resample(matrix, rng)
        assert sample.shape == matrix.shape
        for task in range(3):
            assert set(sample[:, task]) <= set(matrix[:, task])


def test_bootstrap_interval_contains_the_point_and_matches_the_normal_theory():
    rng = np.random.default_rng(1)
    scores = rng.normal(5.0, 2.0, size=(40, 1))
    point, low, high = agg.bootstrap_interval(scores, agg.METRICS["mean"], reps=4000, seed=0)
    assert point == pytest.approx(scores.mean())
    assert low < point < high
    # For a mean the bootstrap interval is close to +-1.96 standard errors.
    half_width = 1.96 * scores.std(ddof=1) / math.sqrt(len(scores))
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.2)
    point, low, high = agg.bootstrap_interval(scores, agg.iqm, reps=1000, seed=0)
    assert low <= point <= high and low < high
    # One run per task: every resample is the data itself.
    assert agg.bootstrap_interval(np.array([[0.3, 0.7]]), agg.iqm, reps=50) == (0.5, 0.5, 0.5)


def test_ranges_and_normalization():
    matrices = {"a": np.array([[0.0, 10.0], [2.0, 30.0]]), "b": np.array([[4.0, 20.0], [1.0, 20.0]])}
    ranges = agg.task_ranges(matrices, ["t0", "t1"])
    assert ranges == {"t0": (0.0, 4.0), "t1": (10.0, 30.0)}
    assert agg.normalize(matrices["a"], ["t0", "t1"], ranges).tolist() == [[0.0, 0.0], [0.5, 1.0]]
    given = agg.task_ranges(matrices, ["t0", "t1"], {"t1": (0.0, 100.0)})
    assert given["t1"] == (0.0, 100.0) and given["t0"] == (0.0, 4.0)
    flat = agg.task_ranges({"a": np.array([[3.0], [3.0]])}, ["t"])
    assert flat == {"t": (3.0, 4.0)}  # all equal: no division by zero


# ---- end to end on synthetic runs ------------------------------------------------------------------


def write_run(run_dir, algo, env, seed, curve, truncated_tail=False):
    run_dir.mkdir(parents=True)
    config = {"algo": algo, "env": {"id": env}, "train": {"seed": seed}}
    (run_dir / "config.json").write_text(json.dumps({"config": config}))
    lines = [json.dumps({"step": 50, "time": 0.0, "rollout/ep_rew_mean": float("nan")})]
    lines += [
        json.dumps({"step": s, "time": 0.0, "eval/mean_reward": v, "rollout/ep_rew_mean": v - 1}) for s, v in curve
    ]
    text = "\n".join(lines) + "\n"
    if truncated_tail:
        text += '{"step": 999, "eval/mean_re'  # a run killed while writing its last line
    (run_dir / "metrics.jsonl").write_text(text)


def test_aggregate_report_over_runs_and_a_sweep(tmp_path):
    # Method "fast" as a sweep (two tasks, three seeds); method "slow" as loose run directories.
    final = {
        ("fast", "A"): [10.0, 12.0, 14.0],
        ("fast", "B"): [100.0, 80.0, 90.0],
        ("slow", "A"): [8.0, 9.0, 10.0],
        ("slow", "B"): [70.0, 60.0, 50.0],
    }
    sweep_dir = tmp_path / "sweep"
    trials = []
    for task in ("A", "B"):
        for seed, value in enumerate(final[("fast", task)]):
            tid = f"g{'AB'.index(task):02d}_seed{seed}"
            write_run(sweep_dir / "trials" / tid, "sac", task, seed, [(100, value / 2), (200, value)])
            trials.append({"id": tid, "seed": seed, "overrides": [], "run_dir": f"trials/{tid}", "status": "done"})
    (sweep_dir / "manifest.json").write_text(json.dumps({"kind": "sweep", "preset": "sac", "trials": trials}))
    for task in ("A", "B"):
        for seed, value in enumerate(final[("slow", task)]):
            write_run(tmp_path / "runs" / f"{task}{seed}", "erc", task, seed, [(100, value / 2), (200, value)], True)

    summary = agg.aggregate([f"fast={sweep_dir}", tmp_path / "runs"], tmp_path / "out", reps=300)

    assert summary["tasks"] == ["A", "B"]
    assert summary["ranges"] == {"A": (8.0, 14.0), "B": (50.0, 100.0)}
    # Per task: 3 runs -> nothing trimmed, the IQM is the mean of the three final evaluations.
    for (method, task), values in final.items():
        name = "fast" if method == "fast" else "erc"
        point, low, high = summary["per_task"][name][task]["IQM"]
        assert point == pytest.approx(np.mean(values))
        assert low <= point <= high
    # Aggregate IQM of "fast" on normalized scores: A -> (10-8)/6, (12-8)/6, (14-8)/6; B -> 1, 0.6, 0.8.
    normalized = [2 / 6, 4 / 6, 6 / 6, 1.0, 0.6, 0.8]
    expected = np.mean(sorted(normalized)[1:5])  # 6 scores: floor(6 / 4) = 1 trimmed from each end
    point, low, high = summary["aggregate"]["fast"]["IQM"]
    assert point == pytest.approx(expected) and low <= point <= high
    gap = np.mean([1 - v for v in normalized])
    assert summary["aggregate"]["fast"]["optimality gap"][0] == pytest.approx(gap)
    # "fast" beats "erc" in every pair on both tasks except A: 10 vs (8, 9, 10) gives one tie.
    p_fast = ((9 - 1 + 0.5) / 9 + 1.0) / 2
    assert list(summary["probability_of_improvement"]) == ["erc > fast"]  # each pair once
    point, low, high = summary["probability_of_improvement"]["erc > fast"]
    assert point == pytest.approx(1 - p_fast) and low <= point <= high
    text = (tmp_path / "out" / "summary.md").read_text()
    assert "| fast | A | 3 |" in text and "Probability of improvement" in text
    for name in ("profile.png", "intervals.png", "curves_A.png", "curves_B.png"):
        assert (tmp_path / "out" / name).stat().st_size > 1000


def test_learning_curve_uses_the_steps_every_run_has(tmp_path):
    write_run(tmp_path / "r0", "sac", "T", 0, [(100, 1.0), (200, 2.0), (300, 3.0)])
    write_run(tmp_path / "r1", "sac", "T", 1, [(100, 3.0), (200, 4.0)])  # stopped early
    runs = agg.load_runs([tmp_path])
    steps, point, low, high = agg.learning_curves(runs, "T", reps=200)["sac"]
    assert steps.tolist() == [100, 200]
    assert point.tolist() == [2.0, 3.0]  # two runs: the IQM is their mean
    assert (low <= point).all() and (point <= high).all()


def test_one_task_few_seeds_and_scores_from_evaluate(tmp_path):
    write_run(tmp_path / "r0", "sac", "Pendulum-v1", 0, [(100, -300.0)])
    write_run(tmp_path / "r1", "sac", "Pendulum-v1", 1, [(100, -200.0)])
    (tmp_path / "r1" / "eval").mkdir()
    (tmp_path / "r1" / "eval" / "eval_step100.json").write_text(json.dumps({"nominal": {"eval/mean_reward": -150.0}}))
    write_run(tmp_path / "r2", "sac", "Pendulum-v1", 2, [])  # never evaluated: left out with a note
    runs = agg.load_runs([tmp_path])
    matrices, tasks, notes = agg.score_matrices(runs, "eval")
    assert tasks == ["Pendulum-v1"] and matrices["sac"][:, 0].tolist() == [-300.0, -150.0]
    assert any("r2" in note for note in notes)
    assert agg.score_matrices(runs, "rollout")[0]["sac"][:, 0].tolist() == [-301.0, -201.0]
    summary = agg.aggregate([tmp_path], tmp_path / "out", reps=100, plots=False)
    assert summary["per_task"]["sac"]["Pendulum-v1"]["IQM"][0] == -250.0
    assert "One task" in (tmp_path / "out" / "summary.md").read_text()


def test_unequal_seed_counts_are_cut_and_said(tmp_path):
    write_run(tmp_path / "a0", "sac", "A", 0, [(1, 1.0)])
    write_run(tmp_path / "a1", "sac", "A", 1, [(1, 2.0)])
    write_run(tmp_path / "b0", "sac", "B", 0, [(1, 5.0)])
    matrices, tasks, notes = agg.score_matrices(agg.load_runs([tmp_path]))
    assert matrices["sac"].tolist() == [[1.0, 5.0]]  # the lowest seed of A is kept
    assert any("cut to 1" in note for note in notes)


def test_main_bad_input(tmp_path, capsys):
    assert agg.main([str(tmp_path / "missing")]) == 2
    assert "no such sweep or run directory" in capsys.readouterr().err
    with pytest.raises(ValueError, match="TASK=LOW,HIGH"):
        agg.parse_range("A=1")
    with pytest.raises(ValueError, match="finite LOW < HIGH"):
        agg.parse_range("A=0,inf")


def _report(clean, noisy, attacked, jacobian):
    return {
        "nominal": {"mean_reward": clean},
        "observation_noise": [{"sigma": 0.0, "mean_reward": clean}, {"sigma": 0.5, "mean_reward": noisy}],
        "observation_attack": {
            "clean": {"mean_reward": clean + 1.0},
            "steps": 10,
            "results": [{"eps": 0.2, "mean_reward": attacked, "delta": clean + 1.0 - attacked}],
        },
        "agent_mass": [{"scale": 2.0, "mean_reward": clean - 3.0}],
        "mass_friction": {
            "mass_scales": [0.5],
            "friction_scales": [1.0, 2.0],
            "grid": [[{"mean_reward": 7.0}, {"mean_reward": 8.0}]],
        },  # fmt: skip
        "adversary": {"fresh": {"mean_reward": 4.0, "steps": 100}, "random_force": {"mean_reward": 5.0}},
        "lipschitz": {"radius": 0.05, "jacobian_mean": jacobian, "jacobian_mean_per_agent": [jacobian]},
        "video": "episode.mp4",
    }


def test_report_measures_flattens_every_condition():
    m = agg.report_measures(_report(-50.0, -55.0, -60.0, 2.0))
    assert m == {
        "nominal": -50.0,
        "observation_noise 0": -50.0,
        "observation_noise 0.5": -55.0,
        "observation_attack clean": -49.0,
        "observation_attack 0.2": -60.0,
        "agent_mass 2": -53.0,
        "mass_friction 0.5x1": 7.0,
        "mass_friction 0.5x2": 8.0,
        "adversary fresh": 4.0,
        "adversary random_force": 5.0,
        "lipschitz jacobian_mean": 2.0,
    }


def test_condition_table_means_over_seeds(tmp_path):
    values = {"maddpg": [(-50.0, -56.0, -61.0, 6.0), (-52.0, -58.0, -65.0, 8.0)], "ernie": [(-53.0, -54.0, -54.0, 1.0)]}
    for method, rows in values.items():
        for seed, row in enumerate(rows):
            write_run(tmp_path / f"{method}{seed}", method, "mpe:simple_spread", seed, [(100, row[0])])
            (tmp_path / f"{method}{seed}" / "eval").mkdir()
            (tmp_path / f"{method}{seed}" / "eval" / "eval_a.json").write_text(json.dumps(_report(*row)))
    lines, stats = agg.condition_table(agg.load_runs([tmp_path]))
    two = stats["maddpg"]["mpe:simple_spread"]
    assert two["observation_attack 0.2"]["mean"] == -63.0 and two["observation_attack 0.2"]["n"] == 2
    half = scipy.stats.t.ppf(0.975, 1) * np.std([-61.0, -65.0], ddof=1) / math.sqrt(2)
    assert math.isclose(two["observation_attack 0.2"]["half"], half)
    assert stats["ernie"]["mpe:simple_spread"]["lipschitz jacobian_mean"]["mean"] == 1.0
    text = "\n".join(lines)
    assert "| observation_attack 0.2 | -54.0 | -63.0 ± 25.4 |" in text and "| lipschitz jacobian_mean |" in text
    summary = agg.aggregate([tmp_path], tmp_path / "out", reps=50, plots=False)
    assert summary["conditions"]["ernie"]["mpe:simple_spread"]["observation_noise 0.5"]["mean"] == -54.0
    assert "## Conditions of evaluate.py" in (tmp_path / "out" / "summary.md").read_text()


def test_compare_of_methods_with_no_common_task_prints_the_per_task_tables(tmp_path, capsys):
    """A SAC sweep against a ROE sweep: every run has a final score, no task is shared. The per-task
    tables are printed and one line says the cross-task aggregate needs shared tasks."""
    for seed, value in enumerate([-200.0, -150.0]):
        write_run(tmp_path / "sac" / f"r{seed}", "sac", "Pendulum-v1", seed, [(100, value)])
    for seed, value in enumerate([8.0, 11.0]):
        write_run(tmp_path / "roe" / f"r{seed}", "roe", "climbing", seed, [(100, value)])
    out = tmp_path / "out"
    assert agg.main([f"sac={tmp_path / 'sac'}", f"roe={tmp_path / 'roe'}", "--out", str(out), "--reps", "50"]) == 0
    printed = capsys.readouterr().out
    assert "| sac | Pendulum-v1 | 2 | -175.0" in printed and "| roe | climbing | 2 | 9.5 [" in printed
    assert [line for line in printed.splitlines() if "cross-task aggregate" in line] == [
        "No cross-task aggregate: it needs tasks that every method ran, and roe, sac share none."
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["per_task"]["roe"]["climbing"]["IQM"][0] == 9.5 and summary["aggregate"] == {}
    assert (out / "curves_Pendulum-v1.png").is_file() and not (out / "profile.png").exists()
