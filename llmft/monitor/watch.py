"""The alert rules, evaluated where their evidence is.

    watch = TrainingWatch(rules, fire)     # in the job's process: fed every training event
    check_service(session, settings)       # in every worker's reaper loop: stalled jobs, failed jobs, disk

Training rules: nan_loss (the trainer stopped on a NaN or infinite loss or gradient), loss_spike
(a loss above loss_spike_factor times the mean of the previous loss_spike_window), eval_rising
(validation loss up eval_rising_evaluations times in a row), gpu_memory (peak above
gpu_memory_fraction of the device); for GRPO, on the health numbers of llmft/train/rl_health.py:
rl_clipped (clipped_share above rl_clipped_share), rl_zero_variance (zero_variance_share above
rl_zero_variance_share), rl_length_collapse (completion_length below rl_length_collapse_fraction of its
mean over the first rl_length_early_steps logs) and rl_reward_flat (reward_mean within
rl_reward_flat_tolerance for rl_reward_flat_steps logs); each fires when its condition begins, and again
only after it has cleared. Service rules: stalled (a running job silent for
stalled_minutes), job_failed, disk_full (free share of LLMFT_HOME's disk below
ALERT_DISK_FREE_FRACTION, at most once an hour).
"""

import math
import shutil
import time
from collections import deque
from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from llmft.db.tables import Alert, Job, JobEvent, as_utc, now
from llmft.monitor.alerts import AlertRules, raise_alert, rules_for
from llmft.settings import Settings

Fire = Callable[..., None]  # fire(rule, severity, message, key, data)


class TrainingWatch:
    def __init__(self, rules: AlertRules, fire: Fire, *, job_id: str):
        self.rules, self.fire, self.job_id = rules, fire, job_id
        self.losses: deque[float] = deque(maxlen=rules.loss_spike_window)
        self.evals: list[float] = []
        self.gpu_fired = False
        self.early_lengths: list[float] = []  # the first rl_length_early_steps completion lengths
        self.rewards: deque[float] = deque(maxlen=rules.rl_reward_flat_steps)
        self.alarmed: set[str] = set()  # the RL rules whose condition holds now (fired when it began)

    def __call__(self, event: dict) -> None:
        kind = event["type"]
        if kind == "nan_loss":
            self.fire("nan_loss", "critical",
                      f"the loss or gradient became NaN or infinite at step {event['step']}; the job stopped, "
                      f"last good checkpoint: {event.get('last_good_checkpoint') or 'none'}",
                      f"nan_loss:{self.job_id}:{event['step']}", {"step": event["step"],
                                                                  "last_good_checkpoint": event.get("last_good_checkpoint")})
        elif kind == "metrics":
            self._loss(event)
            self._gpu(event)
            self._rl(event)
        elif kind == "eval" and isinstance(event.get("eval_loss"), float) and math.isfinite(event["eval_loss"]):
            self._eval(event)

    def _loss(self, event: dict) -> None:
        loss = event.get("loss")
        if not isinstance(loss, (int, float)) or not math.isfinite(loss):
            return
        if len(self.losses) >= self.rules.loss_spike_min_steps:
            mean = sum(self.losses) / len(self.losses)
            if mean > 0 and loss > self.rules.loss_spike_factor * mean:
                self.fire("loss_spike", "warning",
                          f"loss {loss:.4g} at step {event['step']} is {loss / mean:.1f}x its moving average {mean:.4g}",
                          f"loss_spike:{self.job_id}:{event['step']}", {"step": event["step"], "loss": loss,
                                                                        "moving_average": mean})
        self.losses.append(loss)

    def _gpu(self, event: dict) -> None:
        fraction = event.get("gpu_memory_fraction")
        if self.gpu_fired or fraction is None or fraction < self.rules.gpu_memory_fraction:
            return
        self.gpu_fired = True
        self.fire("gpu_memory", "warning",
                  f"peak GPU memory at {fraction:.0%} of the device (threshold {self.rules.gpu_memory_fraction:.0%})",
                  f"gpu_memory:{self.job_id}", {"step": event["step"], "gpu_memory_fraction": fraction})

    def _rl(self, event: dict) -> None:
        rules, step = self.rules, event["step"]
        clipped, flat = _finite(event.get("clipped_share")), _finite(event.get("zero_variance_share"))
        self._holds("rl_clipped", step, None if clipped is None else clipped > rules.rl_clipped_share,
                    lambda: (f"{clipped:.0%} of completions were clipped at max_completion_length at step {step} "
                             f"(threshold {rules.rl_clipped_share:.0%}): their answers are cut off and score 0; raise "
                             f"method.grpo.max_completion_length or add a length penalty", {"clipped_share": clipped}))
        self._holds("rl_zero_variance", step, None if flat is None else flat > rules.rl_zero_variance_share,
                    lambda: (f"{flat:.0%} of groups had rewards that did not vary at step {step} (threshold "
                             f"{rules.rl_zero_variance_share:.0%}): they give no signal; the prompts are too easy or "
                             f"too hard for the model, or the graders too coarse", {"zero_variance_share": flat}))
        length = _finite(event.get("completion_length"))
        if length is not None and len(self.early_lengths) < rules.rl_length_early_steps:
            self.early_lengths.append(length)
        elif length is not None:
            early = sum(self.early_lengths) / len(self.early_lengths)
            self._holds("rl_length_collapse", step, length < rules.rl_length_collapse_fraction * early,
                        lambda: (f"mean completion length fell to {length:.0f} tokens at step {step}, below "
                                 f"{rules.rl_length_collapse_fraction:.0%} of its early {early:.0f}",
                                 {"completion_length": length, "early_length": early}))
        reward = _finite(event.get("reward_mean"))
        if reward is not None:
            self.rewards.append(reward)
            window = list(self.rewards)
            self._holds("rl_reward_flat", step, len(window) == rules.rl_reward_flat_steps
                        and max(window) - min(window) <= rules.rl_reward_flat_tolerance,
                        lambda: (f"the mean reward stayed at {reward:.4g} (within {rules.rl_reward_flat_tolerance:g}) "
                                 f"for {len(window)} logged steps, to step {step}: the policy is not learning",
                                 {"reward_mean": reward, "steps": len(window)}))

    def _holds(self, rule: str, step: int, condition: bool | None, describe: Callable[[], tuple[str, dict]]) -> None:
        """Fire `rule` when its condition begins to hold (not again while it holds; again once it cleared). None:
        not known at this step (TRL logged no value), which changes nothing."""
        if condition is None:
            return
        if not condition:
            self.alarmed.discard(rule)
            return
        if rule in self.alarmed:
            return
        self.alarmed.add(rule)
        message, data = describe()
        self.fire(rule, "warning", message, f"{rule}:{self.job_id}:{step}", {"step": step, **data})

    def _eval(self, event: dict) -> None:
        self.evals.append(event["eval_loss"])
        k = self.rules.eval_rising_evaluations
        recent = self.evals[-(k + 1):]
        if len(recent) == k + 1 and all(b > a for a, b in zip(recent, recent[1:])):
            self.fire("eval_rising", "warning",
                      f"validation loss rose {k} evaluations in a row, to {recent[-1]:.4g} at step {event['step']}",
                      f"eval_rising:{self.job_id}:{event['step']}", {"step": event["step"], "eval_losses": recent})


def _finite(value) -> float | None:
    return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def check_service(session: Session, settings: Settings) -> None:
    """One round of the service rules (every worker runs it; an alert's key makes it fire once)."""
    at = now()
    last_event = (select(JobEvent.job_id, func.max(JobEvent.created_at).label("at"), func.max(JobEvent.id).label("id"))
                  .group_by(JobEvent.job_id).subquery())
    running = session.execute(select(Job, last_event.c.at, last_event.c.id)
                              .join(last_event, last_event.c.job_id == Job.id).where(Job.status == "running")).all()
    for job, last_at, last_id in running:
        rules = rules_for(session, job.tenant_id)
        silent = at - as_utc(last_at)
        if silent > timedelta(minutes=rules.stalled_minutes) and not _raised(session, f"stalled:{job.id}:{last_id}"):
            raise_alert(session, settings=settings, job=job, rule="stalled", severity="warning",
                        message=f"no progress for {silent.total_seconds() / 60:.1f} minutes "
                                f"(threshold {rules.stalled_minutes:g})",
                        key=f"stalled:{job.id}:{last_id}", data={"silent_seconds": round(silent.total_seconds())})
    failed = session.scalars(select(Job).where(Job.status == "failed", Job.finished_at >= at - timedelta(hours=1)))
    for job in failed:
        code = (job.error or {}).get("code")
        if code != "nan_loss" and rules_for(session, job.tenant_id).job_failed \
                and not _raised(session, f"job_failed:{job.id}"):  # a NaN alerted already, as nan_loss
            raise_alert(session, settings=settings, job=job, rule="job_failed", severity="critical",
                        message=f"job failed: {(job.error or {}).get('message', 'no reason recorded')}",
                        key=f"job_failed:{job.id}", data={"code": code})
    usage = shutil.disk_usage(settings.llmft_home)
    free = usage.free / usage.total
    hour_key = f"disk_full:{int(time.time() // 3600)}"
    if free < settings.alert_disk_free_fraction and not _raised(session, hour_key):
        raise_alert(session, settings=settings, rule="disk_full", severity="critical",
                    message=f"{free:.1%} of the disk holding {settings.llmft_home} is free "
                            f"(threshold {settings.alert_disk_free_fraction:.0%})",
                    key=hour_key, data={"free_fraction": round(free, 4)})


def _raised(session: Session, key: str) -> bool:
    """Already alerted (checked first, so rounds do not hit the unique key; it still settles races)."""
    return session.scalar(select(Alert.id).where(Alert.key == key)) is not None
