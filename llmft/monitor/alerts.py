"""Alerts: a rule fires -> a record (GET /api/v1/alerts), an event on its job, and a JSON POST to
the tenant's webhooks and the operator's (ALERT_WEBHOOKS), retried with backoff. A tenant's webhooks
reach public addresses only (llmft/monitor/outbound.py) unless WEBHOOK_ALLOW_PRIVATE; the operator's
reach any.

    raise_alert(session, settings=s, job=job, rule="loss_spike", severity="warning",
                message="...", key="loss_spike:job-1:40", data={...})

The payload is Slack-compatible (`text`) and carries the alert itself (`alert`). Every alert has
a `key` naming its occurrence: a second watcher raising the same one changes nothing. Webhooks
are delivered on a thread; `flush()` waits for them (a job process calls it before it exits).
"""

import logging
import threading
import time
from typing import NamedTuple

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from llmft.config import Strict
from llmft.db.events import record_event
from llmft.db.session import session_scope
from llmft.db.tables import Alert, AlertSettings, Job, now
from llmft.monitor.outbound import REFUSED, masked, post_json, refused_literal
from llmft.settings import Settings

RULES = ("nan_loss", "loss_spike", "stalled", "job_failed", "eval_rising", "gpu_memory", "disk_full",
         "rl_clipped", "rl_zero_variance", "rl_length_collapse", "rl_reward_flat")
ATTEMPTS, FIRST_BACKOFF, TIMEOUT = 4, 0.5, 5.0
log = logging.getLogger("llmft.alerts")


class AlertRules(Strict):
    """A tenant's thresholds (PUT /api/v1/alerts/settings); NaN loss and disk always alert."""
    loss_spike_factor: float = Field(3.0, gt=1, description="Alert when a loss exceeds its moving average this many times.")
    loss_spike_window: int = Field(20, ge=2, le=1000, description="Logged steps in the moving average.")
    loss_spike_min_steps: int = Field(5, ge=1, description="Logged steps before spikes are looked for.")
    stalled_minutes: float = Field(15.0, gt=0, description="Alert when a running job logs nothing for this long.")
    eval_rising_evaluations: int = Field(3, ge=1, description="Alert when validation loss rises this many evaluations in a row.")
    gpu_memory_fraction: float = Field(0.95, gt=0, le=1, description="Alert when a job's peak GPU memory passes this share.")
    job_failed: bool = Field(True, description="Alert when a job fails.")
    rl_clipped_share: float = Field(0.5, gt=0, le=1, description=(
        "GRPO: alert when more than this share of completions is clipped at max_completion_length."))
    rl_zero_variance_share: float = Field(0.9, gt=0, le=1, description=(
        "GRPO: alert when more than this share of groups has rewards that do not vary (no signal)."))
    rl_length_collapse_fraction: float = Field(0.25, gt=0, lt=1, description=(
        "GRPO: alert when mean completion length falls below this fraction of its early value."))
    rl_length_early_steps: int = Field(5, ge=1, le=1000, description=(
        "GRPO: logged steps whose mean completion length is the early value."))
    rl_reward_flat_steps: int = Field(20, ge=2, le=10000, description=(
        "GRPO: alert when the mean reward stays within rl_reward_flat_tolerance for this many logged steps."))
    rl_reward_flat_tolerance: float = Field(1e-3, ge=0, description="GRPO: how far a flat mean reward may move.")


def rules_for(session: Session, tenant_id: str | None) -> AlertRules:
    row = session.get(AlertSettings, tenant_id) if tenant_id else None
    return AlertRules.model_validate(row.rules if row else {})


class Webhook(NamedTuple):
    url: str
    label: str  # how errors name it: the tenant's URL masked, or ALERT_WEBHOOKS[i]
    allow_private: bool


def webhooks_for(session: Session, tenant_id: str | None, settings: Settings) -> list[Webhook]:
    row = session.get(AlertSettings, tenant_id) if tenant_id else None
    hooks = {url: Webhook(url, masked(url), settings.webhook_allow_private) for url in (row.webhooks if row else [])}
    operator = [url.strip() for url in settings.alert_webhooks.split(",") if url.strip()]
    hooks.update({url: Webhook(url, f"ALERT_WEBHOOKS[{index}]", True) for index, url in enumerate(operator)})
    return list(hooks.values())


def raise_alert(session: Session, *, settings: Settings, rule: str, severity: str, message: str, key: str,
                job: Job | None = None, data: dict | None = None) -> Alert | None:
    """The new alert, or None when this occurrence (`key`) was raised already."""
    if rule not in RULES or severity not in ("warning", "critical"):
        raise ValueError(f"unknown alert {rule!r} / {severity!r}")
    alert = Alert(tenant_id=job.tenant_id if job else None, job_id=job.id if job else None, rule=rule, key=key,
                  severity=severity, message=message, data=data or {})
    try:
        with session.begin_nested():
            session.add(alert)
    except IntegrityError:
        return None
    if job is not None:
        record_event(session, job, "alert", message, {"rule": rule, "alert_id": alert.id, **(data or {})},
                     level="error" if severity == "critical" else "warning")
    hooks = webhooks_for(session, alert.tenant_id, settings)
    if hooks:
        notifier.send(settings.sqlalchemy_url, alert.id, hooks, _payload(alert))
    log.warning("alert %s (%s): %s", rule, severity, message)
    return alert


def _payload(alert: Alert) -> dict:
    where = f" (job {alert.job_id})" if alert.job_id else ""
    return {"text": f"[llmft] {alert.severity.upper()} {alert.rule}{where}: {alert.message}",
            "alert": {"id": alert.id, "rule": alert.rule, "severity": alert.severity, "message": alert.message,
                      "job_id": alert.job_id, "data": alert.data, "created_at": (alert.created_at or now()).isoformat()}}


class Notifier:
    """Webhook deliveries on threads; each URL tried ATTEMPTS times with doubling backoff."""

    def __init__(self):
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def send(self, url: str, alert_id: str, webhooks: list[Webhook], payload: dict) -> None:
        thread = threading.Thread(target=self._deliver, args=(url, alert_id, webhooks, payload), daemon=True,
                                  name=f"alert-{alert_id}")
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()] + [thread]
        thread.start()

    def flush(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def _deliver(self, database_url: str, alert_id: str, webhooks: list[Webhook], payload: dict) -> None:
        errors = [f"{webhook.label}: {error}" for webhook in webhooks if (error := _post(webhook, payload))]
        for _ in range(50):  # the alert's row may not be committed yet: its transaction is the caller's
            with session_scope(database_url) as session:
                alert = session.get(Alert, alert_id)
                if alert is not None:
                    alert.notified_at = now() if len(errors) < len(webhooks) else None
                    alert.notify_error = "; ".join(errors)[:2000] or None
                    return
            time.sleep(0.1)


def _post(webhook: Webhook, payload: dict) -> str | None:
    """None when delivered; else why not (a reason the tenant may read), after every attempt; a refused address
    is not retried."""
    backoff = FIRST_BACKOFF
    for attempt in range(ATTEMPTS):
        error = post_json(webhook.url, payload, allow_private=webhook.allow_private, timeout=TIMEOUT)
        if error is None or error == REFUSED:
            return error
        if attempt + 1 < ATTEMPTS:
            time.sleep(backoff)
            backoff *= 2
    log.warning("alert webhook %s failed after %d attempts: %s", webhook.label, ATTEMPTS, error)
    return error


notifier = Notifier()


def alerts_of(session: Session, *, tenant_id: str, include_service: bool, job_id: str | None = None,
              after: str | None = None, limit: int = 20) -> list[Alert]:
    """Newest first; the service's own alerts (disk) only for admins."""
    query = select(Alert)
    query = query.where(Alert.tenant_id == tenant_id) if not include_service else \
        query.where((Alert.tenant_id == tenant_id) | Alert.tenant_id.is_(None))
    if job_id:
        query = query.where(Alert.job_id == job_id)
    if after:
        cursor = session.get(Alert, after)
        if cursor is not None:
            query = query.where((Alert.created_at < cursor.created_at) |
                                ((Alert.created_at == cursor.created_at) & (Alert.id < cursor.id)))
    return list(session.scalars(query.order_by(Alert.created_at.desc(), Alert.id.desc()).limit(limit + 1)))


def alert_settings(session: Session, *, tenant_id: str, unmasked: bool) -> dict:
    """The tenant's webhooks and thresholds; the webhooks masked (masked()) unless `unmasked` (for admins: a URL
    may carry a credential, and a Slack webhook's path is its secret)."""
    row = session.get(AlertSettings, tenant_id)
    webhooks = list(row.webhooks) if row else []
    return {"webhooks": webhooks if unmasked else [masked(url) for url in webhooks],
            "rules": rules_for(session, tenant_id).model_dump()}


def update_alert_settings(session: Session, *, tenant_id: str, webhooks: list[str] | None, rules: dict | None,
                          allow_private: bool) -> dict:
    """Replace the tenant's webhooks and/or change some rule thresholds (the others keep their values). A webhook
    whose host is a non-public address is refused unless `allow_private` (WEBHOOK_ALLOW_PRIVATE); a name is
    checked when an alert is delivered."""
    from llmft.config import ConfigError, check
    from llmft.errors import Invalid

    row = session.get(AlertSettings, tenant_id) or AlertSettings(tenant_id=tenant_id, webhooks=[], rules={})
    if webhooks is not None:
        for index, webhook in enumerate(webhooks):
            if not webhook.startswith(("http://", "https://")) or len(webhook) > 2000:
                raise Invalid(f"webhooks[{index}]: an http:// or https:// URL (2000 characters at most)",
                              details={"param": f"webhooks[{index}]"})
            if not allow_private and refused_literal(webhook):
                raise Invalid(f"webhooks[{index}]: a loopback, private, link-local or reserved address is not allowed "
                              "(the operator's WEBHOOK_ALLOW_PRIVATE allows them)", details={"param": f"webhooks[{index}]"})
        row.webhooks = list(dict.fromkeys(webhooks))
    if rules is not None:
        try:
            merged = check(AlertRules, {**row.rules, **rules}, where="rules")
        except ConfigError as error:
            raise Invalid(str(error), details={"param": "rules"}) from None
        row.rules = {key: value for key, value in merged.model_dump().items() if key in {**row.rules, **rules}}
    row.updated_at = now()
    session.add(row)
    session.flush()
    return alert_settings(session, tenant_id=tenant_id, unmasked=True)
