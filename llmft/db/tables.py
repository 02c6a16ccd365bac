"""Tables. Every row a user can see carries its tenant_id; queries always filter on it."""

import secrets
from datetime import UTC, datetime

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def now() -> datetime:
    return datetime.now(UTC)


def as_utc(moment: datetime) -> datetime:
    """A timestamp read through an aggregate (no column type) may come back without its zone."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(8)}"


def is_id(value: str, prefix: str) -> bool:
    """True for an id new_id(prefix) could have made (checked before any lookup: no odd bytes reach SQL)."""
    return len(value) == len(prefix) + 17 and value.startswith(prefix + "-") and \
        all(c in "0123456789abcdef" for c in value[len(prefix) + 1:])


class UTCDateTime(TypeDecorator):
    """Timestamps in UTC, timezone-aware on the way out (SQLite stores them without a zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        return value.astimezone(UTC) if value is not None and value.tzinfo else value

    def process_result_value(self, value, dialect):
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class Base(DeclarativeBase):
    type_annotation_map = {dict: JSON, list: JSON, datetime: UTCDateTime}


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("tn"))
    name: Mapped[str] = mapped_column(String(100), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=now)


class ApiKey(Base):
    __tablename__ = "api_keys"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("key"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    prefix: Mapped[str] = mapped_column(String(24), index=True)  # shown in listings: llmft_ab12cd34
    secret_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of the whole key
    name: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=now)
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]


class Dataset(Base):
    __tablename__ = "datasets"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("ds"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    stored_name: Mapped[str] = mapped_column(String(255))  # inside settings.uploads_dir/<tenant_id>/
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    examples: Mapped[int] = mapped_column(Integer)
    report: Mapped[dict]
    created_at: Mapped[datetime] = mapped_column(default=now)
    # Deleted: the file and the report are gone; the row stays as a tombstone (filename, sha256) for lineage.
    deleted_at: Mapped[datetime | None]


# queued -> running -> one of the last 3; queued or running -> paused -> queued (llmft/jobs/service.py, pause_job)
JOB_STATUSES = ("queued", "running", "paused", "succeeded", "failed", "cancelled")
FINAL_STATUSES = ("succeeded", "failed", "cancelled")


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (UniqueConstraint("tenant_id", "idempotency_key"), Index("ix_jobs_status", "status"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("job"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    status: Mapped[str] = mapped_column(String(16), default="queued")  # one of JOB_STATUSES
    kind: Mapped[str] = mapped_column(String(16), default="fine_tune")  # fine_tune | export | evaluation
    base_model: Mapped[str] = mapped_column(String(255))
    dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id"))
    validation_dataset_id: Mapped[str | None] = mapped_column(ForeignKey("datasets.id"))
    method: Mapped[str] = mapped_column(String(16))
    hyperparameters: Mapped[dict]
    suffix: Mapped[str | None] = mapped_column(String(64))
    seed: Mapped[int] = mapped_column(Integer)
    metadata_: Mapped[dict] = mapped_column("metadata", JSON)
    config: Mapped[dict]  # the resolved training config
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    max_attempts: Mapped[int] = mapped_column(Integer, default=3)
    processes: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # training processes (torchrun)
    lease_owner: Mapped[str | None] = mapped_column(String(100))
    lease_expires_at: Mapped[datetime | None]
    heartbeat_at: Mapped[datetime | None]
    fencing_token: Mapped[int] = mapped_column(Integer, default=0)
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    pause_requested: Mapped[bool] = mapped_column(default=False, server_default=false())  # running -> paused
    progress: Mapped[dict] = mapped_column(JSON, default=dict)
    error: Mapped[dict | None] = mapped_column(JSON)
    fine_tuned_model: Mapped[str | None] = mapped_column(String(100))  # NAME:V once registered
    result: Mapped[dict | None] = mapped_column(JSON)  # an evaluation job's report
    created_at: Mapped[datetime] = mapped_column(default=now)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]


class JobEvent(Base):
    __tablename__ = "job_events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("jobs.id"), index=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=now)
    level: Mapped[str] = mapped_column(String(8), default="info")
    type: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict] = mapped_column(JSON, default=dict)


class Worker(Base):
    """A job worker's heartbeat (written by its reaper loop; /readyz counts the recent ones)."""
    __tablename__ = "workers"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)  # name@host:pid
    started_at: Mapped[datetime] = mapped_column(default=now)
    seen_at: Mapped[datetime] = mapped_column(default=now)
    slots: Mapped[int] = mapped_column(Integer, default=1, server_default="1")  # training processes it can run at once
    busy: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # of which in use, at seen_at


class RegisteredModel(Base):
    """A name in the registry (per tenant); its versions are the fine-tunes registered under it."""
    __tablename__ = "models"
    __table_args__ = (UniqueConstraint("tenant_id", "name"),)
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("mdl"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(64))
    base_model: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(default=now)
    last_version: Mapped[int] = mapped_column(Integer, default=0, server_default="0")  # numbers are never reused


class ModelVersion(Base):
    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("model_id", "version"), UniqueConstraint("job_id"))
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("mv"))
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"), index=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"))
    kind: Mapped[str] = mapped_column(String(16))  # adapter | full
    files: Mapped[dict]  # relative path -> {"sha256", "bytes"}; the folder is artifacts/<tenant>/<id>/
    lineage: Mapped[dict]
    metrics: Mapped[dict]
    evaluation: Mapped[dict | None]
    created_at: Mapped[datetime] = mapped_column(default=now)


class ModelAlias(Base):
    __tablename__ = "model_aliases"
    __table_args__ = (UniqueConstraint("model_id", "alias"),)
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"), index=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    alias: Mapped[str] = mapped_column(String(64))
    version_id: Mapped[str] = mapped_column(ForeignKey("model_versions.id"))
    updated_at: Mapped[datetime] = mapped_column(default=now)


class ModelEvent(Base):
    """The registry's history: versions registered and deleted, aliases moved (by whom, gate overrides)."""
    __tablename__ = "model_events"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(ForeignKey("models.id"), index=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(default=now)
    type: Mapped[str] = mapped_column(String(32))
    message: Mapped[str] = mapped_column(Text)
    actor: Mapped[str | None] = mapped_column(String(100))
    data: Mapped[dict] = mapped_column(JSON, default=dict)


class Alert(Base):
    """Something an operator should see: a rule fired on a job (tenant_id set) or on the service (none)."""
    __tablename__ = "alerts"
    id: Mapped[str] = mapped_column(String(40), primary_key=True, default=lambda: new_id("alr"))
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id"), index=True)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("jobs.id"), index=True)
    rule: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(200), unique=True)  # one alert per occurrence, however many watchers
    severity: Mapped[str] = mapped_column(String(16))  # warning | critical
    message: Mapped[str] = mapped_column(Text)
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=now)
    notified_at: Mapped[datetime | None]
    notify_error: Mapped[str | None] = mapped_column(Text)


class AlertSettings(Base):
    """A tenant's webhooks and rule thresholds (llmft/monitor/alerts.py: AlertRules)."""
    __tablename__ = "alert_settings"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    webhooks: Mapped[list] = mapped_column(JSON, default=list)
    rules: Mapped[dict] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(default=now)
