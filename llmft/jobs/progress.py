"""A job's progress from its trainer's events: step, percent, latest losses, and an ETA.

    pace = None
    progress, pace = advance(progress, event, pace, at=time.time())

The ETA uses this attempt's own pace, measured from its first logged step, so neither model
loading nor the steps an earlier attempt did distort it.
"""

from datetime import UTC, datetime

Pace = tuple[int, float] | None  # (step, time) of the attempt's first logged step


def advance(progress: dict, event: dict, pace: Pace, *, at: float) -> tuple[dict, Pace]:
    kind = event["type"]
    progress = dict(progress or {})
    if kind == "started":
        progress.update(step=event["step"], max_steps=event["max_steps"])
        return _with_percent(progress), None
    if kind == "metrics":
        progress.update(step=event["step"], epoch=event["epoch"])
        progress.update({k: event[k] for k in ("loss", "learning_rate", "tokens_per_second") if k in event})
        if pace is None:
            return _with_percent(progress), (event["step"], at)
        steps, seconds = event["step"] - pace[0], at - pace[1]
        if steps > 0 and seconds > 0 and progress.get("max_steps"):
            eta = max(0.0, (progress["max_steps"] - event["step"]) * seconds / steps)
            progress["eta_seconds"] = round(eta, 1)
            progress["estimated_finish"] = datetime.fromtimestamp(at + eta, UTC).isoformat()
        return _with_percent(progress), pace
    if kind == "eval":
        progress["eval_loss"] = event.get("eval_loss")
    elif kind == "trained":
        progress.update(step=progress.get("max_steps", progress.get("step")), eta_seconds=0.0)
    return _with_percent(progress), pace


def _with_percent(progress: dict) -> dict:
    if progress.get("max_steps") and progress.get("step") is not None:
        progress["percent"] = round(100.0 * min(progress["step"], progress["max_steps"]) / progress["max_steps"], 1)
    return progress
