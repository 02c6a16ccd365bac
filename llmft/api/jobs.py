"""/api/v1/jobs: create (Idempotency-Key), list, get, cancel, pause, resume, events, metrics, checkpoints,
stream (SSE)."""

import itertools
import json
from collections.abc import Iterator

from apiflask import APIBlueprint, Schema, fields, validators
from flask import request

from llmft.api import streams
from llmft.api.auth import auth, principal, require_write
from llmft.api.context import celery, db, settings
from llmft.api.pages import EventOut, PageQuery, list_schema, page
from llmft.api.text import Text
from llmft.db.tables import JOB_STATUSES
from llmft.jobs import observe, service
from llmft.jobs.queue import dispatch
from llmft.registry.service import NAME as MODEL_NAME
from llmft.train.config import METHOD_TYPES

bp = APIBlueprint("jobs", __name__, tag="jobs")


class ResourcesIn(Schema):
    processes = fields.Integer(load_default=1, validate=validators.Range(1, 64),
                               metadata={"description": "training processes (GPUs), 1 to 64"})
    nodes = fields.Integer(load_default=1, metadata={"description": "hosts; queued jobs use one (the service checks)",
                                                     "minimum": 1, "maximum": 1})


class JobIn(Schema):
    base_model = Text(load_default="tiny-r1", validate=validators.Length(1, 255))
    dataset_id = Text(required=True, validate=validators.Length(1, 40))
    validation_dataset_id = Text(load_default=None, validate=validators.Length(1, 40))
    method = fields.Raw(load_default="lora", metadata={
        "description": "a method type, or the training config's method section, e.g. {\"type\": \"dpo\", "
                       "\"weights\": \"lora\", \"dpo\": {\"beta\": 0.2}} (docs/preference.md, docs/grpo.md); "
                       "method.grpo.graders is a grader spec inline, never a file path (the service checks)",
        "oneOf": [{"type": "string", "enum": list(METHOD_TYPES)}, {"type": "object"}]})
    hyperparameters = fields.Dict(load_default=dict)
    suffix = Text(load_default=None, metadata={  # the service checks the pattern
        "description": "the registry model the result becomes a version of; default <base>-ft",
        "pattern": MODEL_NAME.pattern.replace("\\Z", "$")})  # JSON Schema has no \Z
    seed = fields.Integer(load_default=42, validate=validators.Range(0, 2**31 - 1))
    metadata = fields.Dict(keys=Text(validate=validators.Length(max=64)), values=Text(validate=validators.Length(max=512)),
                           load_default=dict, validate=validators.Length(max=16), metadata={
                               "description": "at most 16 pairs of strings: keys up to 64 characters, values up to "
                                              "512 (OpenAI's limits)"})
    resources = fields.Nested(ResourcesIn, load_default=dict, metadata={
        "description": "processes > 1: trained through torchrun (DDP) on one worker with that many free slots"})


class JobOut(Schema):
    id = fields.String()
    object = fields.String(dump_default="fine_tuning.job")
    status = fields.String()
    kind = fields.String(metadata={"description": "fine_tune, or export (a LoRA version merged into its base)"})
    base_model = fields.String()
    dataset_id = fields.String(allow_none=True)
    validation_dataset_id = fields.String(allow_none=True)
    method = fields.String(metadata={"description": "the method's type; its section is in the job's config"})
    hyperparameters = fields.Dict(metadata={
        "description": "as sent; \"auto\" (the default of num_epochs, batch_size, learning_rate) until the trainer "
                       "has chosen it from the data, then the number it chose"})
    suffix = fields.String(allow_none=True)
    seed = fields.Integer()
    metadata = fields.Dict(attribute="metadata_")
    progress = fields.Dict()
    attempts = fields.Integer()
    error = fields.Dict(allow_none=True)
    fine_tuned_model = fields.String(allow_none=True, metadata={"description": "NAME:V once registered"})
    result = fields.Dict(allow_none=True, metadata={"description": "an evaluation job's report"})
    resources = fields.Function(lambda job: {"processes": job.processes, "nodes": 1})
    created_at = fields.DateTime()
    started_at = fields.DateTime(allow_none=True)
    finished_at = fields.DateTime(allow_none=True)


JobListOut = list_schema("JobListOut", JobOut)


class JobListQuery(PageQuery):
    status = Text(load_default=None, validate=validators.OneOf(JOB_STATUSES))


EventListOut = list_schema("EventListOut", EventOut)


class EventQuery(Schema):
    after = fields.Integer(load_default=0, validate=validators.Range(0, 2**62))
    limit = fields.Integer(load_default=100, validate=validators.Range(1, 1000))


class StreamQuery(Schema):
    after = fields.Integer(load_default=None, validate=validators.Range(0, 2**62), metadata={
        "description": "send the events after this id (the Last-Event-ID header does the same)"})


class MetricsOut(Schema):
    train = fields.List(fields.Dict(), metadata={"description": "step, epoch, loss, learning_rate, grad_norm, ..."})
    eval = fields.List(fields.Dict(), metadata={"description": "step, epoch, eval_loss, ..."})


class CheckpointOut(Schema):
    id = fields.String()
    object = fields.String()
    fine_tuning_job_id = fields.String()
    step = fields.Integer()
    epoch = fields.Float(allow_none=True)
    best = fields.Boolean(metadata={"description": "the lowest validation loss so far"})
    created_at = fields.DateTime()
    bytes = fields.Integer()
    metrics = fields.Dict()


CheckpointListOut = list_schema("CheckpointListOut", CheckpointOut, paged=False)



@bp.post("/jobs")
@bp.auth_required(auth)
@bp.input(JobIn, arg_name="body")
@bp.output(JobOut, status_code=201)
@bp.doc(summary="Create a fine-tuning job", responses={
    200: "an earlier job with the same Idempotency-Key", 403: "a viewer key", 409: "Idempotency-Key reused",
    422: "an unknown dataset or hyperparameter, a wrong method field, or data of a kind the method does not train on"})
def create(body):
    caller = require_write()
    current = settings()
    key = request.headers.get("Idempotency-Key")
    with db() as session:
        job, created = service.create_job(session, principal=caller, uploads_dir=current.uploads_dir,
                                          runs_dir=current.runs_dir, idempotency_key=key,
                                          max_attempts=current.job_max_attempts, **body)
    if not created:
        return job, 200
    dispatch(celery(), job.id, processes=job.processes)
    return job


@bp.get("/jobs")
@bp.auth_required(auth)
@bp.input(JobListQuery, location="query", arg_name="query")
@bp.output(JobListOut)
@bp.doc(summary="List the tenant's jobs, newest first", responses={
    404: "the after cursor names no job of the tenant"})
def index(query):
    with db() as session:
        rows = service.list_jobs(session, principal=principal(), status=query["status"], after=query["after"],
                                 limit=query["limit"] + 1)
    return page(rows, query["limit"])


@bp.get("/jobs/<job_id>")
@bp.auth_required(auth)
@bp.output(JobOut)
@bp.doc(summary="One job: status, progress, error", responses={404: "no such job"})
def show(job_id):
    with db() as session:
        return service.get_job(session, principal=principal(), job_id=job_id)


@bp.post("/jobs/<job_id>/cancel")
@bp.auth_required(auth)
@bp.output(JobOut)
@bp.doc(summary="Cancel a job (a running one checkpoints and stops)", responses={
    403: "a viewer key", 404: "no such job", 409: "the job already ended"})
def cancel(job_id):
    caller = require_write()
    with db() as session:
        return service.cancel_job(session, principal=caller, job_id=job_id)


@bp.post("/jobs/<job_id>/pause")
@bp.auth_required(auth)
@bp.output(JobOut)
@bp.doc(summary="Pause a fine-tuning job: a queued one at once, a running one checkpoints and stops (status "
                "running until then, then paused); resume continues from that checkpoint", responses={
    403: "a viewer key", 404: "no such job",
    409: "the job is paused already, ended, being cancelled, or not a fine-tune (invalid_state)"})
def pause(job_id):
    caller = require_write()
    with db() as session:
        return service.pause_job(session, principal=caller, job_id=job_id)


@bp.post("/jobs/<job_id>/resume")
@bp.auth_required(auth)
@bp.output(JobOut)
@bp.doc(summary="Resume a paused job: queued again, its trainer continues from the checkpoint the pause saved",
        responses={403: "a viewer key", 404: "no such job", 409: "the job is not paused (invalid_state)"})
def resume(job_id):
    caller = require_write()
    with db() as session:
        job = service.resume_job(session, principal=caller, job_id=job_id)
    dispatch(celery(), job.id, processes=job.processes)
    return job


@bp.get("/jobs/<job_id>/events")
@bp.auth_required(auth)
@bp.input(EventQuery, location="query", arg_name="query")
@bp.output(EventListOut)
@bp.doc(summary="The job's events, oldest first, after an event id", responses={404: "no such job"})
def events(job_id, query):
    with db() as session:
        rows = service.list_events(session, principal=principal(), job_id=job_id, after=query["after"],
                                   limit=query["limit"] + 1)
    return page(rows, query["limit"])


@bp.get("/jobs/<job_id>/metrics")
@bp.auth_required(auth)
@bp.output(MetricsOut)
@bp.doc(summary="The job's training and validation series, one point per step", responses={404: "no such job"})
def metrics(job_id):
    with db() as session:
        return observe.job_metrics(session, principal=principal(), job_id=job_id)


@bp.get("/jobs/<job_id>/checkpoints")
@bp.auth_required(auth)
@bp.output(CheckpointListOut)
@bp.doc(summary="The job's committed checkpoints, newest first", responses={404: "no such job"})
def checkpoints(job_id):
    with db() as session:
        return {"data": observe.job_checkpoints(session, principal=principal(), job_id=job_id)}


@bp.get("/jobs/<job_id>/stream")
@bp.auth_required(auth)
@bp.input(StreamQuery, location="query", arg_name="query")
@bp.doc(summary="Server-sent events: the job's events, its progress, and `end` when it is over", responses={
    200: {"description": "text/event-stream; `event:` is the event's type (or progress, end), `data:` JSON, "
                         "`id:` the event id to resume from",
          "content": {"text/event-stream": {"schema": {"type": "string"}}}},
    404: "no such job", 429: "too many streams open (STREAMS_PER_KEY, STREAMS_TOTAL); see Retry-After"})
def stream(job_id, query):
    after = query["after"]
    if after is None:
        header = request.headers.get("Last-Event-ID", "")
        after = int(header) if header.isascii() and header.isdigit() and len(header) < 19 else 0
    with streams.admit(principal()) as slot:
        follower = observe.follow(settings().sqlalchemy_url, principal=principal(), job_id=job_id, after=after,
                                  alive=slot.key_active, max_seconds=settings().job_stream_max_seconds)
        first = next(follower)  # the job is checked here: an unknown id is a 404 before the stream starts
        return slot.response(_sse(first, follower))


def _sse(first: tuple, follower) -> Iterator[str]:
    for kind, data in itertools.chain([first], follower):
        if kind == "keepalive":
            yield ": keepalive\n\n"
        elif kind == "event":
            yield f"id: {data['id']}\nevent: {data['type']}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"
        else:
            yield f"event: {kind}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"

