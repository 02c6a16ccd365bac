"""Prometheus metrics at /metrics, on the API port.

    curl localhost:8000/metrics                                  # open: aggregate series only
    METRICS_TOKEN=s3cret  ->  curl -H 'Authorization: Bearer s3cret' localhost:8000/metrics

HTTP requests are counted as they happen; everything else is read when Prometheus scrapes:
jobs by status, the queue depth and the live workers and their slots from the database, and the
inference engine's counters and histograms. With METRICS_TOKEN set (the endpoint then needs it)
the series that name a tenant, a job or a worker's host:pid are added: each worker's heartbeat
and slots, and each running job's latest loss, tokens/s and progress. Each app has its own
registry (tests build several apps in one process).
"""

import hmac
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from sqlalchemy import func, select

from llmft.api.errors import error_body
from llmft.db.session import session_scope
from llmft.db.tables import JOB_STATUSES, Job, Tenant, Worker, as_utc, now
from llmft.settings import Settings

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


def install_metrics(app: Flask, settings: Settings) -> None:
    disable_created_metrics()  # no *_created series: they double every counter for nothing Prometheus uses
    registry = CollectorRegistry()
    requests_total = Counter("llmft_http_requests", "HTTP requests by method, route and status",
                             ["method", "route", "status"], registry=registry)
    latency = Histogram("llmft_http_request_duration_seconds", "Time to the response's headers, by route",
                        ["method", "route"], buckets=LATENCY_BUCKETS, registry=registry)
    registry.register(_ServiceCollector(app, settings))

    @app.before_request
    def _started():
        g.llmft_started = time.perf_counter()

    @app.after_request
    def _count(response):
        route = request.url_rule.rule if request.url_rule else "<unmatched>"  # the pattern: bounded labels
        if route != "/metrics":
            requests_total.labels(request.method, route, str(response.status_code)).inc()
            started = g.get("llmft_started")
            if started is not None:
                latency.labels(request.method, route).observe(time.perf_counter() - started)
        return response

    @app.get("/metrics")
    @app.doc(hide=True)
    def metrics():
        token = settings.metrics_token
        if token:
            given = request.headers.get("Authorization", "")
            if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
                return error_body("unauthorized", "/metrics needs Authorization: Bearer METRICS_TOKEN"), 401
        return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)

    app.extensions["llmft_limiter"].exempt(metrics)  # scrapes are never rate limited


class _ServiceCollector:
    """Read at scrape time: the database's view of jobs and workers, and the inference engine."""

    def __init__(self, app: Flask, settings: Settings):
        self.app, self.settings = app, settings

    def collect(self):
        yield from self._jobs_and_workers()
        engine = self.app.extensions.get("llmft_engine")
        if engine is not None and hasattr(engine, "histograms"):
            yield from _engine_metrics(engine)

    def _jobs_and_workers(self):
        jobs = GaugeMetricFamily("llmft_jobs", "Jobs by status", labels=["status"])
        queue = GaugeMetricFamily("llmft_queue_depth", "Jobs waiting for a worker")
        live = GaugeMetricFamily("llmft_workers_live", "Workers with a heartbeat in the last two lease periods")
        all_slots = GaugeMetricFamily("llmft_workers_slots", "Training processes the live workers may run")
        all_busy = GaugeMetricFamily("llmft_workers_busy_slots", "Slots in use on the live workers")
        seen = GaugeMetricFamily("llmft_worker_heartbeat_age_seconds", "Seconds since a worker's last heartbeat",
                                 labels=["worker"])
        slots = GaugeMetricFamily("llmft_worker_slots", "Training processes a worker may run", labels=["worker"])
        busy = GaugeMetricFamily("llmft_worker_busy_slots", "Slots in use at the last heartbeat", labels=["worker"])
        loss = GaugeMetricFamily("llmft_job_loss", "A running job's latest training loss", labels=["job_id", "tenant"])
        speed = GaugeMetricFamily("llmft_job_tokens_per_second", "A running job's latest training tokens/s",
                                  labels=["job_id", "tenant"])
        done = GaugeMetricFamily("llmft_job_progress_ratio", "A running job's share of its steps done",
                                 labels=["job_id", "tenant"])
        at = now()
        with session_scope(self.settings.sqlalchemy_url) as session:
            counts = dict(session.execute(select(Job.status, func.count()).group_by(Job.status)).all())
            for status in JOB_STATUSES:
                jobs.add_metric([status], counts.get(status, 0))
            queue.add_metric([], counts.get("queued", 0))
            workers = [(worker, (at - as_utc(worker.seen_at)).total_seconds()) for worker in session.scalars(select(Worker))]
            alive = [worker for worker, age in workers if age <= 2 * self.settings.lease_seconds]
            live.add_metric([], len(alive))
            all_slots.add_metric([], sum(worker.slots for worker in alive))
            all_busy.add_metric([], sum(worker.busy for worker in alive))
            yield from (jobs, queue, live, all_slots, all_busy)
            if not self.settings.metrics_token:  # open to anyone: nothing that names a tenant, a job or a host
                return
            for worker, age in workers:
                seen.add_metric([worker.name], age)
                slots.add_metric([worker.name], worker.slots)
                busy.add_metric([worker.name], worker.busy)
            running = session.execute(select(Job.id, Tenant.name, Job.progress).join(Tenant, Tenant.id == Job.tenant_id)
                                      .where(Job.status == "running")).all()
            for job_id, tenant, progress in running:
                progress = progress or {}
                if progress.get("loss") is not None:
                    loss.add_metric([job_id, tenant], progress["loss"])
                if progress.get("tokens_per_second") is not None:
                    speed.add_metric([job_id, tenant], progress["tokens_per_second"])
                if progress.get("percent") is not None:
                    done.add_metric([job_id, tenant], progress["percent"] / 100.0)
        yield from (seen, slots, busy, loss, speed, done)


def _engine_metrics(engine):
    stats = dict(engine.stats)
    yield CounterMetricFamily("llmft_inference_requests", "Generation requests accepted", value=stats["requests"])
    yield CounterMetricFamily("llmft_inference_tokens", "Tokens generated", value=stats["tokens"])
    yield GaugeMetricFamily("llmft_inference_tokens_per_second", "Tokens generated per second over the last 10 s",
                            value=engine.recent_tokens_per_second())
    yield CounterMetricFamily("llmft_inference_model_loads", "Models and adapters loaded", value=stats["loads"])
    yield CounterMetricFamily("llmft_inference_evictions", "Models and adapters evicted (LRU)",
                              value=stats["evictions"])
    loaded = engine.loaded()
    yield GaugeMetricFamily("llmft_inference_loaded_models", "Models and adapters in memory", value=len(loaded))
    yield GaugeMetricFamily("llmft_inference_loaded_adapters", "LoRA adapters in memory",
                            value=sum(1 for entry in loaded if entry["kind"] == "adapter"))
    yield GaugeMetricFamily("llmft_inference_loaded_bytes", "Bytes of weights in memory",
                            value=sum(entry["bytes"] for entry in loaded))
    prefixes = getattr(engine, "prefixes", None)  # the default engine's prefix cache (serve/prefix_cache.py)
    if prefixes is not None:
        yield CounterMetricFamily("llmft_inference_prefix_cache_hits", "Prompts that started with a cached prefix",
                                  value=prefixes.stats["hits"])
        yield CounterMetricFamily("llmft_inference_prefix_cache_tokens_reused",
                                  "Prompt tokens whose KV came from the prefix cache", value=prefixes.stats["tokens_reused"])
        yield GaugeMetricFamily("llmft_inference_prefix_cache_bytes", "Bytes of prefix KV kept", value=prefixes.used)
    for name, histogram, doc in (("llmft_inference_time_to_first_token_seconds", engine.histograms["ttft"],
                                  "From a generation's arrival to its first token"),
                                 ("llmft_inference_batch_size", engine.histograms["batch"],
                                  "Rows decoded together per step")):
        buckets, total, count = histogram.snapshot()
        yield HistogramMetricFamily(name, doc, buckets=[(str(float(b)), c) for b, c in buckets] + [("+Inf", count)],
                                    sum_value=total)

