"""Alerts: a rule fires -> a record (GET /api/v1/alerts), an event on its job, and a JSON POST to
the tenant's webhooks and the operator's (ALERT_WEBHOOKS), retried with backoff.

    raise_alert(session, settings=s, job=job, rule="loss_spike", severity="warning",
                message="...", key="loss_spike:job-1:40", data={...})

The payload is Slack-compatible (`text`) and carries the alert itself (`alert`). Every alert has
a `key` naming its occurrence: a second watcher raising the same one changes nothing. Webhooks
are delivered on a thread; `flush()` waits for them (a job process calls it before it exits).
"""

import json
import logging
import threading
import time
import urllib.error
import urllib.request

from pydantic import Field
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from llmft.config import Strict
from llmft.db.events import record_event
from llmft.db.session import session_scope
from llmft.db.tables import Alert, AlertSettings, Job, now
from llmft.settings import Settings

RULES = ("nan_loss", "loss_spike", "stalled", "job_failed", "eval_rising", "gpu_memory", "disk_full")
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


def rules_for(session: Session, tenant_id: str | None) -> AlertRules:
    row = session.get(AlertSettings, tenant_id) if tenant_id else None
    return AlertRules.model_validate(row.rules if row else {})


def webhooks_for(session: Session, tenant_id: str | None, settings: Settings) -> list[str]:
    row = session.get(AlertSettings, tenant_id) if tenant_id else None
    operator = [url.strip() for url in settings.alert_webhooks.split(",") if url.strip()]
    return list(dict.fromkeys((row.webhooks if row else []) + operator))


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
    urls = webhooks_for(session, alert.tenant_id, settings)
    if urls:
        notifier.send(settings.sqlalchemy_url, alert.id, urls, _payload(alert))
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

    def send(self, url: str, alert_id: str, webhooks: list[str], payload: dict) -> None:
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

    def _deliver(self, database_url: str, alert_id: str, webhooks: list[str], payload: dict) -> None:
        errors = [error for error in (_post(webhook, payload) for webhook in webhooks) if error]
        for _ in range(50):  # the alert's row may not be committed yet: its transaction is the caller's
            with session_scope(database_url) as session:
                alert = session.get(Alert, alert_id)
                if alert is not None:
                    alert.notified_at = now() if len(errors) < len(webhooks) else None
                    alert.notify_error = "; ".join(errors)[:2000] or None
                    return
            time.sleep(0.1)


def _post(webhook: str, payload: dict) -> str | None:
    """None when delivered; else why not, after every attempt."""
    body = json.dumps(payload).encode()
    backoff, error = FIRST_BACKOFF, None
    for attempt in range(ATTEMPTS):
        request = urllib.request.Request(webhook, data=body, method="POST",
                                         headers={"Content-Type": "application/json", "User-Agent": "llmft-alerts"})
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
                if 200 <= response.status < 300:
                    return None
                error = f"{webhook}: HTTP {response.status}"
        except urllib.error.HTTPError as failure:
            error = f"{webhook}: HTTP {failure.code}"
        except (urllib.error.URLError, OSError) as failure:
            error = f"{webhook}: {failure}"
        if attempt + 1 < ATTEMPTS:
            time.sleep(backoff)
            backoff *= 2
    log.warning("alert webhook failed after %d attempts: %s", ATTEMPTS, error)
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


def alert_settings(session: Session, *, tenant_id: str) -> dict:
    row = session.get(AlertSettings, tenant_id)
    return {"webhooks": list(row.webhooks) if row else [], "rules": rules_for(session, tenant_id).model_dump()}


def update_alert_settings(session: Session, *, tenant_id: str, webhooks: list[str] | None,
                          rules: dict | None) -> dict:
    """Replace the tenant's webhooks and/or change some rule thresholds (the others keep their values)."""
    from llmft.config import ConfigError, check
    from llmft.errors import Invalid

    row = session.get(AlertSettings, tenant_id) or AlertSettings(tenant_id=tenant_id, webhooks=[], rules={})
    if webhooks is not None:
        for index, webhook in enumerate(webhooks):
            if not webhook.startswith(("http://", "https://")) or len(webhook) > 2000:
                raise Invalid(f"webhooks[{index}]: an http:// or https:// URL (2000 characters at most)",
                              details={"param": f"webhooks[{index}]"})
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
    return alert_settings(session, tenant_id=tenant_id)
