"""Logger: a resumed run drops what the killed process logged after its checkpoint."""

from __future__ import annotations

import json

from agents.core.logger import Logger


def _steps(run_dir) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def _tensorboard_steps(run_dir, tag: str) -> list[int]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(run_dir))
    events.Reload()
    return [e.step for e in events.Scalars(tag)]


def test_resume_drops_rows_logged_after_the_checkpoint(tmp_path):
    first = Logger(tmp_path, 10, progress=False)
    for step in range(1, 7):  # the process is killed after step 6; its last checkpoint was at step 4
        first.log(step, {"loss": float(step)})
    first.close()
    with open(tmp_path / "metrics.jsonl", "a") as f:
        f.write('{"step": 7, "lo')  # a line cut short by the kill
    resumed = Logger(tmp_path, 10, start_step=4, progress=False)
    assert _steps(tmp_path) == [1, 2, 3, 4]
    for step in range(5, 9):
        resumed.log(step, {"loss": 10.0 * step})
    resumed.close()
    assert _steps(tmp_path) == list(range(1, 9))  # each step once, as in a straight run
    assert _tensorboard_steps(tmp_path, "loss") == list(range(1, 9))


def test_a_fresh_logger_keeps_what_is_there(tmp_path):
    (tmp_path / "metrics.jsonl").write_text('{"step": 9}\n')
    Logger(tmp_path, 10, progress=False).close()
    assert _steps(tmp_path) == [9]
