"""Progress and ETA from trainer events, with this attempt's own pace."""

from llmft.jobs.progress import advance


def test_eta_uses_the_pace_since_the_attempts_first_logged_step():
    progress, pace = advance({}, {"type": "started", "step": 40, "max_steps": 100}, None, at=1000.0)
    assert progress == {"step": 40, "max_steps": 100, "percent": 40.0} and pace is None
    # model loading took 50 s: the first logged step only sets the pace, no ETA yet
    progress, pace = advance(progress, {"type": "metrics", "step": 41, "epoch": 0.41, "loss": 2.0}, pace, at=1050.0)
    assert pace == (41, 1050.0) and "eta_seconds" not in progress and progress["loss"] == 2.0
    progress, pace = advance(progress, {"type": "metrics", "step": 51, "epoch": 0.51, "loss": 1.5}, pace, at=1070.0)
    assert progress["eta_seconds"] == 98.0  # 49 steps left at 2 s a step
    assert progress["percent"] == 51.0 and progress["loss"] == 1.5
    assert progress["estimated_finish"].startswith("1970-01-01T00:19:28")


def test_eval_and_success_update_the_latest_values():
    progress, pace = advance({"step": 10, "max_steps": 20}, {"type": "eval", "step": 10, "eval_loss": 3.5}, None,
                             at=0.0)
    assert progress["eval_loss"] == 3.5 and progress["percent"] == 50.0
    progress, _ = advance(progress, {"type": "trained"}, pace, at=1.0)
    assert progress["percent"] == 100.0 and progress["eta_seconds"] == 0.0
