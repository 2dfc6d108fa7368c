"""The earlier results re-aggregate through the shared statistics (benchmarks/aggregate_existing.py)."""

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import aggregate_existing  # noqa: E402

from agents.experiments.aggregate import aggregate_runs, curve_record  # noqa: E402


def test_curve_records_aggregate_like_runs(tmp_path):
    runs = [curve_record("a", "t", s, [[1, 0.0], [2, float(s)]]) for s in range(4)]
    runs += [curve_record("b", "t", s, [[1, 0.0], [2, 10.0 + s]]) for s in range(4)]
    summary = aggregate_runs(runs, tmp_path, reps=50, plots=False)
    assert summary["per_task"]["a"]["t"]["IQM"][0] == 1.5  # the middle two of 0, 1, 2, 3
    assert summary["probability_of_improvement"]["a > b"][0] == 0.0


def test_earlier_results_reaggregate(tmp_path):
    assert aggregate_existing.main(["--out", str(tmp_path), "--reps", "50"]) == 0
    games = json.loads((tmp_path / "matrix_games" / "summary.json").read_text())["per_task"]
    assert games["ROE on DMIX"]["matrix:wqmix"]["IQM"][0] == 8.0 > games["baseline on DMIX"]["matrix:wqmix"]["IQM"][0]
    assert (tmp_path / "sac_pendulum" / "profile.png").stat().st_size > 1000
