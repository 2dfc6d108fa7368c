"""Logger: a resumed run drops what the killed process logged after its checkpoint."""

from __future__ import annotations

import json

from agents.engine.logger import Logger


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


class FakeClock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_without_a_terminal_plain_progress_lines_come_at_a_steady_interval(tmp_path, capsys):
    """Under pytest stderr is not a terminal: the bar is off, so a 9-minute batch run would print
    nothing; instead a plain line every ``plain_every`` seconds of wall clock, and one at the end."""
    clock = FakeClock()
    logger = Logger(tmp_path, 10_000, progress=True, plain_every=30.0, clock=clock)
    assert logger.plain
    for step in range(1_000, 6_001, 1_000):  # 1,000 steps every 10 s: a line every third log
        clock.now += 10.0
        logger.log(step, {"loss": 1.0})
        if step == 4_000:
            logger.log(step, {"eval/mean_reward": -150.25})
    clock.now += 5.0
    logger.log(6_500, {"loss": 1.0})
    logger.close()
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == [
        "step 3,000/10,000 (30%), 100 steps/s, no evaluation yet",
        "step 6,000/10,000 (60%), 100 steps/s, last eval return -150.2",
        "step 6,500/10,000 (65%), 100 steps/s, last eval return -150.2",  # close: where the run stopped
    ]


def test_no_plain_lines_when_progress_is_off(tmp_path, capsys):
    clock = FakeClock()
    logger = Logger(tmp_path, 100, progress=False, plain_every=1.0, clock=clock)
    for step in (10, 20):
        clock.now += 5.0
        logger.log(step, {"loss": 1.0})
    logger.close()
    assert capsys.readouterr().err == ""


def test_final_evaluation_is_the_last_evaluation_row(tmp_path):
    from agents.engine.logger import final_evaluation

    assert final_evaluation(tmp_path) is None
    logger = Logger(tmp_path, 300, progress=False)
    logger.log(100, {"eval/mean_reward": -300.0})
    logger.log(200, {"loss": 1.0})
    logger.log(300, {"eval/mean_reward": -120.5, "eval/std_reward": 3.0})
    logger.log(300, {"loss": 2.0})
    logger.close()
    assert final_evaluation(tmp_path) == (300, -120.5)
