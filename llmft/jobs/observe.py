"""The read side of a running or finished job: its metric series, its checkpoints, and a
follower that yields its events as they are written (the HTTP layer turns it into SSE).

    job_metrics(session, principal=p, job_id=j)     -> {"train": [...], "eval": [...]}
    job_checkpoints(session, principal=p, job_id=j) -> [{"step", "epoch", "metrics", "best", ...}]
    for item in follow(url, principal=p, job_id=j, after=0): ...
"""

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session

from llmft.auth.keys import Principal
from llmft.db.session import session_scope
from llmft.db.tables import FINAL_STATUSES, Job, JobEvent
from llmft.jobs.service import get_job
from llmft.train import checkpoints

SERIES_KEYS = ("step", "epoch", "time", "loss", "learning_rate", "grad_norm", "tokens_per_second", "token_accuracy",
               "cpu_percent", "ram_gb", "ram_percent", "gpu_utilization", "gpu_memory_gb", "gpu_memory_fraction",
               "peak_rss_gb", "gpu_peak_memory_gb",
               "eval_loss", "eval_token_accuracy", "eval_perplexity", "eval_tokens",
               "reward_mean", "reward_std", "zero_variance_share", "clipped_share", "completion_length", "kl")  # GRPO


def job_metrics(session: Session, *, principal: Principal, job_id: str) -> dict:
    """Training and validation series, one point per step; a step re-run after a resume keeps its latest value."""
    get_job(session, principal=principal, job_id=job_id)
    series: dict[str, dict[int, dict]] = {"metrics": {}, "eval": {}}
    rows = session.scalars(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.type.in_(("metrics", "eval")))
                           .order_by(JobEvent.id))
    for row in rows:
        series[row.type][row.data["step"]] = {k: row.data[k] for k in SERIES_KEYS if k in row.data}
    return {"train": [series["metrics"][s] for s in sorted(series["metrics"])],
            "eval": [series["eval"][s] for s in sorted(series["eval"])]}


def job_checkpoints(session: Session, *, principal: Principal, job_id: str) -> list[dict]:
    """Committed checkpoints, newest first, with the training loss logged at their step and their validation loss."""
    job = get_job(session, principal=principal, job_id=job_id)
    train = {point["step"]: point for point in job_metrics(session, principal=principal, job_id=job_id)["train"]}
    found = checkpoints.committed(Path(job.config["output"]["output_dir"]))
    infos = [(path, checkpoints.info(path)) for path in found]
    scored = [(info["eval_loss"], path) for path, info in infos if info.get("eval_loss") is not None]
    best = min(scored, key=lambda item: item[0])[1] if scored else None
    out = []
    for path, info in reversed(infos):
        logged = [step for step in train if step <= info["step"]]
        out.append({"id": f"{job.id}:{path.name}", "object": "fine_tuning.job.checkpoint", "fine_tuning_job_id": job.id,
                    "step": info["step"], "epoch": info.get("epoch"), "best": path == best,
                    "created_at": datetime.fromtimestamp((path / checkpoints.MARKER).stat().st_mtime, UTC),
                    "bytes": sum(f.stat().st_size for f in path.rglob("*") if f.is_file()),
                    "metrics": {"train_loss": train[max(logged)].get("loss") if logged else None,
                                "eval_loss": info.get("eval_loss")}})
    return out


def follow(url: str, *, principal: Principal, job_id: str, after: int = 0, poll_seconds: float = 0.5,
           keepalive_seconds: float = 15.0, max_seconds: float = 600.0,
           alive: Callable[[], bool] = lambda: True) -> Iterator[tuple[str, dict | None]]:
    """("event", {...}) for each new event, ("progress", {...}) when progress changes, ("keepalive", None)
    when idle, and ("end", {"status"}) once the job has ended and every event was sent. Stops after
    max_seconds, or at the poll where alive() is false (the caller's key revoked); the client reconnects with
    the last event id."""
    with session_scope(url) as session:
        get_job(session, principal=principal, job_id=job_id)
    started = last_sent = time.monotonic()
    progress = None
    while time.monotonic() - started < max_seconds and alive():
        with session_scope(url) as session:
            rows = list(session.scalars(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after)
                                        .order_by(JobEvent.id).limit(500)))
            job = session.get(Job, job_id)
            status, current = job.status, {"status": job.status, **(job.progress or {})}
            events = [{"id": r.id, "created_at": r.created_at.isoformat(), "level": r.level, "type": r.type,
                       "message": r.message, "data": r.data} for r in rows]
        for event in events:
            yield "event", event
            after = event["id"]
        if current != progress:
            progress = current
            yield "progress", current
            last_sent = time.monotonic()
        elif events:
            last_sent = time.monotonic()
        if status in FINAL_STATUSES and not events:
            yield "end", {"status": status}
            return
        if time.monotonic() - last_sent > keepalive_seconds:
            last_sent = time.monotonic()
            yield "keepalive", None
        if not events:
            time.sleep(poll_seconds)
