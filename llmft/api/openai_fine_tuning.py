"""/v1/fine_tuning/jobs: OpenAI's fine-tuning jobs API over llmft's jobs, so code written for OpenAI runs unchanged.

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key=LLMFT_KEY)
    job = client.fine_tuning.jobs.create(model="tiny-r1", training_file=file_id, hyperparameters={"n_epochs": 2})
    client.fine_tuning.jobs.retrieve(job.id).status         # queued, running, paused, succeeded, failed, cancelled
    client.fine_tuning.jobs.list_events(job.id, limit=20)  # newest first
    client.fine_tuning.jobs.checkpoints.list(job.id)
    client.chat.completions.create(model=job.fine_tuned_model, messages=[...])

A second face over the same jobs (DESIGN.md 15), not a second implementation: create goes through
`llmft.jobs.service.create_job`, and /api/v1/jobs shows the same job. How the fields map:
- training_file, validation_file: file ids, which are dataset ids. model: a base llmft trains (tiny-r1,
  smollm2-135m, a hub id). suffix: the registry model the result becomes a version of (lowercase letters,
  digits, '.', '_', '-'; default <base>-ft), so fine_tuned_model is NAME:V, which chat completions take as is.
- hyperparameters: n_epochs and batch_size are llmft's num_epochs and batch_size. learning_rate_multiplier
  multiplies llmft's default learning rate, the LoRA rate "auto" gives a short run (train/auto.py LORA_RATE,
  1e-3): 1 is that rate, 0.2 the usual 2e-4. "auto", or left out: chosen from the data when training starts,
  then shown as the numbers chosen. They may come at the top level (deprecated by OpenAI) or in
  method.supervised.hyperparameters, not in both.
- method: supervised (trained as LoRA); dpo: llmft's dpo (LoRA) with method.dpo.hyperparameters.beta (default
  0.1), on a preference file; reinforcement: llmft's grpo (LoRA) on a prompts (or SFT) file, rewarded by
  method.reinforcement.grader translated into a grader spec (docs/graders.md): string_check as is, multi as
  one grader per entry (its calculate_output must be their sum, what GRPO adds up), llmft's own grader
  types as they are; text_similarity, python, score_model, label_model and endpoint graders are 400
  grader_not_available naming method.reinforcement.grader.type. For dpo and reinforcement,
  learning_rate_multiplier multiplies the auto rate of a short preference/RL LoRA run (train/auto.py:
  LORA_RATE / PREFERENCE_DIVISOR within PREFERENCE_LORA_RANGE, 2e-4), not the supervised 1e-3.
  integrations: none yet, so a non-empty list is a 400, never ignored.
- Errors take OpenAI's shape (openai_compat.py), so the client raises its own exception types.
Only fine-tuning jobs appear here; exports and evaluations are in /api/v1/jobs only.
"""

import re
from datetime import datetime

from apiflask import APIBlueprint, Schema, fields, validators
from flask import request
from marshmallow import ValidationError
from sqlalchemy import select

from llmft.api.auth import auth, principal, require_write
from llmft.api.context import celery, db, settings
from llmft.api.pages import openai_list_schema, openai_page
from llmft.api.text import Text
from llmft.db.pages import newest_first
from llmft.db.tables import JOB_STATUSES, Job, JobEvent, as_utc
from llmft.errors import Invalid, NotFound
from llmft.evaluate.graders import TYPES as GRADER_TYPES
from llmft.evaluate.graders import load_spec
from llmft.jobs import observe, service
from llmft.jobs.queue import dispatch
from llmft.train.auto import FULL_RATE, LORA_RATE, PREFERENCE_DIVISOR, PREFERENCE_LORA_RANGE

bp = APIBlueprint("fine_tuning", __name__, tag="OpenAI-compatible")

PREFERENCE_RATE = min(PREFERENCE_LORA_RANGE[1], max(PREFERENCE_LORA_RANGE[0], LORA_RATE / PREFERENCE_DIVISOR))
DEFAULT_RATE = {"lora": LORA_RATE, "qlora": LORA_RATE, "full": FULL_RATE,  # what learning_rate_multiplier scales
                "dpo": PREFERENCE_RATE, "grpo": PREFERENCE_RATE}
OPENAI_METHOD = {"lora": "supervised", "dpo": "dpo", "grpo": "reinforcement"}  # llmft's type -> OpenAI's
GRADER_NAME = re.compile(r"[^a-z0-9_-]+")
# the service's names for a parameter -> the names an OpenAI caller sent
PARAMS = {"dataset_id": "training_file", "validation_dataset_id": "validation_file", "base_model": "model",
          "hyperparameters.num_epochs": "hyperparameters.n_epochs",
          "hyperparameters.learning_rate": "hyperparameters.learning_rate_multiplier",
          "method.dpo.beta": "method.dpo.hyperparameters.beta"}
GRPO_GRADERS = "method.grpo.graders"


class AutoOr(fields.Field):
    """"auto" or a number: an integer of at least 1 (integer=True), else a number above 0."""

    def __init__(self, *, integer: bool, **kwargs):
        self.integer = integer
        number = {"type": "integer", "minimum": 1} if integer else {"type": "number", "minimum": 0,
                                                                    "exclusiveMinimum": True}
        kwargs.setdefault("metadata", {})["oneOf"] = [{"type": "string", "enum": ["auto"]}, number]
        super().__init__(**kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        if value == "auto":
            return value
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValidationError('must be "auto" or a number')
        if self.integer and (value != int(value) or value < 1):
            raise ValidationError('must be "auto" or a whole number of at least 1')
        if not value > 0:
            raise ValidationError('must be "auto" or a number above 0')
        return int(value) if self.integer else float(value)


class FineTuningHyperparametersIn(Schema):
    n_epochs = AutoOr(integer=True, load_default="auto", metadata={"description": "passes over the training data"})
    batch_size = AutoOr(integer=True, load_default="auto", metadata={"description": "rows per step (a packed row "
                                                                                     "holds several examples)"})
    learning_rate_multiplier = AutoOr(integer=False, load_default="auto", metadata={
        "description": "times llmft's default learning rate (LoRA: 1e-3, what auto gives a run of 40 steps or fewer)"})


class FineTuningSupervisedIn(Schema):
    hyperparameters = fields.Nested(FineTuningHyperparametersIn, load_default=None, allow_none=True)


class FineTuningDpoHyperparametersIn(FineTuningHyperparametersIn):
    beta = AutoOr(integer=False, load_default="auto", metadata={
        "description": "how far the model may move from its reference (llmft's method.dpo.beta; auto: 0.1)"})
    learning_rate_multiplier = AutoOr(integer=False, load_default="auto", metadata={
        "description": "times llmft's preference learning rate (LoRA: 2e-4, what auto gives a short DPO run)"})


class FineTuningDpoIn(Schema):
    hyperparameters = fields.Nested(FineTuningDpoHyperparametersIn, load_default=None, allow_none=True)


class FineTuningReinforcementHyperparametersIn(FineTuningHyperparametersIn):
    learning_rate_multiplier = AutoOr(integer=False, load_default="auto", metadata={
        "description": "times llmft's RL learning rate (LoRA: 2e-4, what auto gives a short GRPO run)"})


class FineTuningReinforcementIn(Schema):
    grader = fields.Dict(required=True, metadata={
        "description": "string_check, multi (rewards summed), or an llmft grader (docs/graders.md)"})
    hyperparameters = fields.Nested(FineTuningReinforcementHyperparametersIn, load_default=None, allow_none=True)


class FineTuningMethodIn(Schema):
    type = Text(required=True, validate=validators.OneOf(["supervised", "dpo", "reinforcement"]))
    supervised = fields.Nested(FineTuningSupervisedIn, load_default=None, allow_none=True)
    dpo = fields.Nested(FineTuningDpoIn, load_default=None, allow_none=True)
    reinforcement = fields.Nested(FineTuningReinforcementIn, load_default=None, allow_none=True)


class FineTuningJobIn(Schema):
    model = Text(required=True, validate=validators.Length(1, 255), metadata={
        "description": "the base: tiny-r1, smollm2-135m, or a Hugging Face hub id (org/name)"})
    training_file = Text(required=True, validate=validators.Length(1, 255), metadata={"description": "a file id"})
    validation_file = Text(load_default=None, allow_none=True, validate=validators.Length(1, 255))
    hyperparameters = fields.Nested(FineTuningHyperparametersIn, load_default=None, allow_none=True, metadata={
        "description": "deprecated by OpenAI in favour of method.supervised.hyperparameters; one or the other"})
    method = fields.Nested(FineTuningMethodIn, load_default=None, allow_none=True)
    suffix = Text(load_default=None, allow_none=True, validate=validators.Length(1, 64), metadata={
        "description": "the registry model the result becomes a version of (lowercase letters, digits, '.', '_', "
                       "'-'); default <model>-ft"})
    seed = fields.Integer(load_default=None, allow_none=True, validate=validators.Range(0, 2**31 - 1),
                          metadata={"description": "default 42"})
    metadata = fields.Dict(keys=Text(validate=validators.Length(max=64)), values=Text(validate=validators.Length(max=512)),
                           load_default=None, allow_none=True, validate=validators.Length(max=16))
    integrations = fields.List(fields.Dict(), load_default=None, allow_none=True, metadata={
        "description": "none are supported yet: a non-empty list is refused"})


class FineTuningHyperparametersOut(Schema):
    n_epochs = fields.Raw(metadata={"description": '"auto" until training starts, then a number'})
    batch_size = fields.Raw()
    learning_rate_multiplier = fields.Raw()


class FineTuningJobOut(Schema):
    id = fields.String()
    object = fields.String(metadata={"enum": ["fine_tuning.job"]})
    created_at = fields.Integer(metadata={"description": "Unix seconds"})
    error = fields.Dict(allow_none=True, metadata={"description": "code, message, param"})
    fine_tuned_model = fields.String(allow_none=True, metadata={"description": "NAME:V once registered: a model "
                                                                              "for /v1/chat/completions"})
    finished_at = fields.Integer(allow_none=True)
    hyperparameters = fields.Nested(FineTuningHyperparametersOut)
    model = fields.String()
    organization_id = fields.String(metadata={"description": "the tenant"})
    result_files = fields.List(fields.String())
    seed = fields.Integer()
    status = fields.String(metadata={"enum": list(JOB_STATUSES)})
    trained_tokens = fields.Integer(allow_none=True, metadata={
        "description": "training tokens times the epochs trained, once the job succeeded"})
    training_file = fields.String()
    validation_file = fields.String(allow_none=True)
    integrations = fields.List(fields.Dict())
    estimated_finish = fields.Integer(allow_none=True)
    method = fields.Dict()
    metadata = fields.Dict()
    user_provided_suffix = fields.String(allow_none=True)


FineTuningJobListOut = openai_list_schema("FineTuningJobListOut", FineTuningJobOut)


class FineTuningPageIn(Schema):
    after = Text(load_default=None, validate=validators.Length(1, 255),
                 metadata={"description": "the id of the last object of the previous page"})
    limit = fields.Integer(load_default=20, validate=validators.Range(1, 100))


class FineTuningCheckpointPageIn(FineTuningPageIn):
    limit = fields.Integer(load_default=10, validate=validators.Range(1, 100))


class FineTuningJobEventOut(Schema):
    id = fields.String()
    object = fields.String(metadata={"enum": ["fine_tuning.job.event"]})
    created_at = fields.Integer()
    level = fields.String(metadata={"enum": ["info", "warn", "error"]})
    message = fields.String()
    type = fields.String(metadata={"enum": ["message", "metrics"]})
    data = fields.Dict(metadata={"description": "the event's data; `event` is llmft's event type (queued, "
                                                "metrics, checkpoint, ...)"})


FineTuningJobEventListOut = openai_list_schema("FineTuningJobEventListOut", FineTuningJobEventOut)


class FineTuningCheckpointOut(Schema):
    id = fields.String()
    object = fields.String(metadata={"enum": ["fine_tuning.job.checkpoint"]})
    created_at = fields.Integer()
    fine_tuned_model_checkpoint = fields.String(metadata={"description": "a model for /v1/chat/completions"})
    fine_tuning_job_id = fields.String()
    metrics = fields.Dict(metadata={"description": "step, train_loss, valid_loss, full_valid_loss, ..."})
    step_number = fields.Integer()


FineTuningCheckpointListOut = openai_list_schema("FineTuningCheckpointListOut", FineTuningCheckpointOut,
                                                 cursors=True)


@bp.post("/fine_tuning/jobs")
@bp.auth_required(auth)
@bp.input(FineTuningJobIn, arg_name="body")
@bp.output(FineTuningJobOut)
@bp.doc(summary="Create a fine-tuning job (OpenAI protocol)", responses={
    400: "a parameter is wrong, unknown or not supported (named in error.param)", 403: "a viewer key",
    409: "Idempotency-Key reused for a different job"})
def create(body):
    caller = require_write()
    current = settings()
    with db() as session:
        try:
            job, created = service.create_job(session, principal=caller, uploads_dir=current.uploads_dir,
                                              runs_dir=current.runs_dir, max_attempts=current.job_max_attempts,
                                              idempotency_key=request.headers.get("Idempotency-Key"),
                                              **_job_args(body))
        except Invalid as error:
            raise _renamed(error) from None
        shown = _job(session, job)
    if created:
        dispatch(celery(), job.id, processes=job.processes)
    return shown


@bp.get("/fine_tuning/jobs")
@bp.auth_required(auth)
@bp.input(FineTuningPageIn, location="query", arg_name="query")
@bp.output(FineTuningJobListOut)
@bp.doc(summary="The tenant's fine-tuning jobs, newest first (OpenAI protocol)", description=(
    "`metadata[KEY]=VALUE` (repeatable) keeps the jobs whose metadata has KEY set to VALUE, as OpenAI's filter."),
    responses={400: "a parameter is wrong", 404: "the after cursor names no job of the tenant"})
def index(query):
    wanted = [Job.metadata_[key].as_string() == value for key, value in _metadata_filter().items()]
    with db() as session:
        rows = newest_first(session, Job, tenant_id=principal().tenant_id, after=query["after"],
                            limit=query["limit"] + 1, prefix="job", where=[Job.kind == "fine_tune", *wanted])
        return openai_page([_job(session, job) for job in rows[:query["limit"]]], len(rows) > query["limit"])


@bp.get("/fine_tuning/jobs/<job_id>")
@bp.auth_required(auth)
@bp.output(FineTuningJobOut)
@bp.doc(summary="One fine-tuning job (OpenAI protocol)", responses={404: "no such fine-tuning job"})
def show(job_id):
    with db() as session:
        return _job(session, _fine_tune(session, job_id))


@bp.post("/fine_tuning/jobs/<job_id>/cancel")
@bp.auth_required(auth)
@bp.output(FineTuningJobOut)
@bp.doc(summary="Cancel a fine-tuning job (a running one checkpoints and stops)", responses={
    403: "a viewer key", 404: "no such fine-tuning job", 409: "the job already ended"})
def cancel(job_id):
    caller = require_write()
    with db() as session:
        _fine_tune(session, job_id)
        return _job(session, service.cancel_job(session, principal=caller, job_id=job_id))


@bp.post("/fine_tuning/jobs/<job_id>/pause")
@bp.auth_required(auth)
@bp.output(FineTuningJobOut)
@bp.doc(summary="Pause a fine-tuning job: it saves a checkpoint and stops until resumed", responses={
    403: "a viewer key", 404: "no such fine-tuning job", 409: "the job is not queued or running"})
def pause(job_id):
    caller = require_write()
    with db() as session:
        _fine_tune(session, job_id)
        return _job(session, service.pause_job(session, principal=caller, job_id=job_id))


@bp.post("/fine_tuning/jobs/<job_id>/resume")
@bp.auth_required(auth)
@bp.output(FineTuningJobOut)
@bp.doc(summary="Resume a paused fine-tuning job from its checkpoint", responses={
    403: "a viewer key", 404: "no such fine-tuning job", 409: "the job is not paused"})
def resume(job_id):
    caller = require_write()
    with db() as session:
        _fine_tune(session, job_id)
        job = service.resume_job(session, principal=caller, job_id=job_id)
        shown = _job(session, job)
    dispatch(celery(), job.id, processes=job.processes)
    return shown


@bp.get("/fine_tuning/jobs/<job_id>/events")
@bp.auth_required(auth)
@bp.input(FineTuningPageIn, location="query", arg_name="query")
@bp.output(FineTuningJobEventListOut)
@bp.doc(summary="The job's events, newest first (fine_tuning.job.event objects)", responses={
    400: "a parameter is wrong", 404: "no such fine-tuning job"})
def events(job_id, query):
    after = query["after"]
    if after is not None and not (after.isascii() and after.isdigit() and len(after) < 19):
        raise Invalid(f"after: {after!r} is not an event id of this job", details={"param": "after"})
    with db() as session:
        _fine_tune(session, job_id)
        where = [JobEvent.job_id == job_id] + ([JobEvent.id < int(after)] if after else [])
        rows = list(session.scalars(select(JobEvent).where(*where).order_by(JobEvent.id.desc())
                                    .limit(query["limit"] + 1)))
        return openai_page([_event(row) for row in rows[:query["limit"]]], len(rows) > query["limit"])


@bp.get("/fine_tuning/jobs/<job_id>/checkpoints")
@bp.auth_required(auth)
@bp.input(FineTuningCheckpointPageIn, location="query", arg_name="query")
@bp.output(FineTuningCheckpointListOut)
@bp.doc(summary="The job's committed checkpoints, newest first (fine_tuning.job.checkpoint objects)", responses={
    400: "a parameter is wrong", 404: "no such fine-tuning job, or the after cursor names no checkpoint of it"})
def checkpoints(job_id, query):
    with db() as session:
        _fine_tune(session, job_id)
        found = observe.job_checkpoints(session, principal=principal(), job_id=job_id)
        series = observe.job_metrics(session, principal=principal(), job_id=job_id)
    start = 0
    if query["after"] is not None:
        ids = [checkpoint["id"] for checkpoint in found]
        if query["after"] not in ids:
            raise NotFound(f"after: no checkpoint {query['after']!r} of job {job_id}", details={"param": "after"})
        start = ids.index(query["after"]) + 1
    shown = [_checkpoint(checkpoint, series) for checkpoint in found[start:start + query["limit"]]]
    return openai_page(shown, start + query["limit"] < len(found), cursors=True)


@bp.before_request
def _known_query_only():
    """A query argument these views do not read is a 400 naming it, never ignored."""
    for name in request.args:
        known = name in ("after", "limit") or (request.endpoint == "fine_tuning.index" and name.startswith("metadata["))
        if not known:
            raise Invalid(f"{name}: unknown query parameter (after, limit"
                          + (", metadata[KEY])" if request.endpoint == "fine_tuning.index" else ")"),
                          details={"param": name})


def _metadata_filter() -> dict:
    """{KEY: VALUE} from the metadata[KEY]=VALUE query arguments."""
    found = {}
    for name, value in request.args.items():
        if name.startswith("metadata["):
            key = name[len("metadata["):-1]
            if not name.endswith("]") or not key or len(key) > 64 or any(c in key for c in '[]"\\') \
                    or len(value) > 512:
                raise Invalid(f"{name}: a metadata filter is metadata[KEY]=VALUE, KEY up to 64 characters without "
                              "[ ] \" or \\, VALUE up to 512", details={"param": name})
            found[key] = value
    return found


def _job_args(body: dict) -> dict:
    """create_job's arguments from an OpenAI request; Invalid (a 400 on /v1) naming what llmft cannot do."""
    method = body["method"] or {"type": "supervised"}
    kind = method["type"]
    for other in ("supervised", "dpo", "reinforcement"):
        if other != kind and method.get(other) is not None:
            raise Invalid(f"method.{other}: given with method.type {kind!r}", details={"param": f"method.{other}"})
    if kind == "reinforcement" and method.get("reinforcement") is None:
        raise Invalid("method.reinforcement: required with method.type 'reinforcement' (its grader)",
                      details={"param": "method.reinforcement"})
    inner = (method.get(kind) or {}).get("hyperparameters")
    if inner is not None and body["hyperparameters"] is not None:
        raise Invalid(f"hyperparameters: given both at the top level and in method.{kind}.hyperparameters; "
                      "send one", details={"param": "hyperparameters"})
    if body["integrations"]:
        raise Invalid("integrations are not supported by llmft yet; leave integrations out",
                      details={"param": "integrations"}, code="unsupported")
    given = inner or body["hyperparameters"] or {}
    ours = {"supervised": {"type": "lora"}, "dpo": {"type": "dpo"}}.get(kind) or \
        {"type": "grpo", "grpo": {"graders": _grader_spec(method["reinforcement"]["grader"])}}
    if given.get("beta", "auto") != "auto":
        ours["dpo"] = {"beta": given["beta"]}
    names = {"n_epochs": "num_epochs", "batch_size": "batch_size"}
    hyperparameters = {names[key]: value for key, value in given.items() if key in names and value != "auto"}
    if given.get("learning_rate_multiplier", "auto") != "auto":
        hyperparameters["learning_rate"] = given["learning_rate_multiplier"] * DEFAULT_RATE[ours["type"]]
    args = {"base_model": body["model"], "dataset_id": body["training_file"],
            "validation_dataset_id": body["validation_file"], "hyperparameters": hyperparameters,
            "suffix": body["suffix"], "metadata": body["metadata"] or {}, "method": ours}
    return args if body["seed"] is None else {**args, "seed": body["seed"]}


def _grader_spec(grader: dict, where: str = "method.reinforcement.grader") -> list[dict]:
    """llmft's grader spec (a list of graders) from an OpenAI grader: string_check as is, multi as its graders
    (rewards summed: calculate_output must be their sum), llmft's own types as given. Invalid naming the field
    for a type llmft cannot run (text_similarity, python, score_model, label_model, endpoint); the spec itself is
    checked by the service (load_spec), which names the grader field."""
    kind = grader.get("type")
    if kind == "multi":
        graders = grader.get("graders")
        if not isinstance(graders, dict) or not graders:
            raise Invalid(f"{where}.graders: an object of named graders", details={"param": f"{where}.graders"})
        formula = grader.get("calculate_output")
        if formula is not None and (not isinstance(formula, str)
                                    or sorted(part.strip() for part in formula.split("+")) != sorted(graders)):
            raise Invalid(f"{where}.calculate_output: GRPO adds the graders' rewards up; give their sum "
                          f"({' + '.join(graders)}), or set a grader's weight", details={"param": f"{where}.calculate_output"})
        extra = sorted(set(grader) - {"type", "name", "graders", "calculate_output"})
        if extra:
            raise Invalid(f"{where}.{extra[0]}: unknown key", details={"param": f"{where}.{extra[0]}"})
        spec = []
        for name, inner in graders.items():
            if not isinstance(inner, dict) or inner.get("type") == "multi":
                raise Invalid(f"{where}.graders.{name}: a grader object (not multi)",
                              details={"param": f"{where}.graders.{name}"})
            spec += _grader_spec({**inner, "name": inner.get("name", name)}, f"{where}.graders.{name}")
        return spec
    if not isinstance(kind, str) or kind not in GRADER_TYPES:
        raise Invalid(f"{where}.type {kind!r}: llmft runs string_check, multi and its own graders "
                      f"({', '.join(GRADER_TYPES)}); text_similarity, python, score_model, label_model and endpoint "
                      "graders are not available", details={"param": f"{where}.type"}, code="grader_not_available")
    name = GRADER_NAME.sub("_", str(grader.get("name") or kind).lower()).strip("_-")[:40] or kind
    return [{**grader, "name": name}]


def _renamed(error: Invalid) -> Invalid:
    """The service's Invalid with its parameter under the name the OpenAI caller sent."""
    param = error.details.get("param")
    if param in PARAMS:
        renamed = PARAMS[param]
    elif isinstance(param, str) and param.startswith(GRPO_GRADERS):  # the translated spec's field
        renamed = "method.reinforcement.grader" + param.removeprefix(GRPO_GRADERS)
    else:
        return error
    message = error.message.replace(param, renamed, 1).replace("no dataset", "no file", 1)
    return Invalid(message, details={**error.details, "param": renamed}, code=error.code)


def _fine_tune(session, job_id: str) -> Job:
    """The tenant's fine-tuning job; NotFound for another tenant's or for an export or evaluation job."""
    job = service.get_job(session, principal=principal(), job_id=job_id)
    if job.kind != "fine_tune":
        raise NotFound(f"no fine-tuning job {job_id!r}", details={"id": job_id})
    return job


def _job(session, job: Job) -> dict:
    """The job as OpenAI's fine_tuning.job."""
    shown = _hyperparameters(job)
    progress = job.progress or {}
    finish = progress.get("estimated_finish") if job.status == "running" else None
    return {"id": job.id, "object": "fine_tuning.job", "created_at": _unix(job.created_at),
            "error": _error(job.error), "fine_tuned_model": job.fine_tuned_model,
            "finished_at": _unix(job.finished_at) if job.finished_at else None, "hyperparameters": shown,
            "model": job.base_model, "organization_id": job.tenant_id, "result_files": [], "seed": job.seed,
            "status": job.status, "trained_tokens": _trained_tokens(session, job), "training_file": job.dataset_id,
            "validation_file": job.validation_dataset_id, "integrations": [],
            "estimated_finish": _unix(datetime.fromisoformat(finish)) if finish else None,
            "method": _method(job, shown),
            "metadata": job.metadata_ or {}, "user_provided_suffix": job.suffix}


def _method(job: Job, shown: dict) -> dict:
    """The job's method as OpenAI shows it: supervised, dpo (with its beta) or reinforcement (llmft's grpo, with its
    grader spec); other llmft methods (full, orpo, ...) by their own type."""
    kind = OPENAI_METHOD.get(job.method, job.method)
    section = (job.config or {}).get("method", {})
    if kind == "dpo":
        shown = {**shown, "beta": section.get("dpo", {}).get("beta")}
    inner = {"hyperparameters": shown}
    if kind == "reinforcement":
        graders = load_spec(section["grpo"]["graders"]).dump()
        inner["grader"] = {"type": "multi", "graders": {g["name"]: g for g in graders},
                           "calculate_output": " + ".join(g["name"] for g in graders)}
    return {"type": kind, kind: inner}


def _hyperparameters(job: Job) -> dict:
    """n_epochs, batch_size, learning_rate_multiplier from the job's hyperparameters ("auto" until chosen)."""
    values = {service.HYPERPARAMETER_ALIASES.get(key, key): value for key, value in job.hyperparameters.items()}
    epochs, rate = values.get("num_epochs", "auto"), values.get("learning_rate", "auto")
    if isinstance(epochs, float) and epochs.is_integer():
        epochs = int(epochs)
    if rate != "auto":
        rate = float(f"{rate / DEFAULT_RATE.get(job.method, LORA_RATE):.4g}")
    return {"n_epochs": epochs, "batch_size": values.get("batch_size", "auto"), "learning_rate_multiplier": rate}


def _trained_tokens(session, job: Job) -> int | None:
    """The training split's tokens times the epochs trained, once the job succeeded (OpenAI counts the same)."""
    if job.status != "succeeded" or not (job.progress or {}).get("epoch"):
        return None
    ready = session.scalar(select(JobEvent.data).where(JobEvent.job_id == job.id, JobEvent.type == "data_ready")
                           .order_by(JobEvent.id.desc()).limit(1))
    return round(ready["train_tokens"] * job.progress["epoch"]) if ready and ready.get("train_tokens") else None


def _error(error: dict | None) -> dict | None:
    if not error:
        return None
    return {"code": error.get("code") or "error", "message": error.get("message") or "", "param": error.get("param")}


def _event(row: JobEvent) -> dict:
    """A job event as OpenAI's fine_tuning.job.event: training and validation logs are "metrics" (with OpenAI's
    names for the losses beside llmft's), the rest "message"; `data.event` keeps llmft's type."""
    data = {**(row.data or {}), "event": row.type}
    if row.type == "metrics":
        data.update(train_loss=data.get("loss"), train_mean_token_accuracy=data.get("token_accuracy"))
    elif row.type == "eval":
        data.update(valid_loss=data.get("eval_loss"), full_valid_loss=data.get("eval_loss"),
                    valid_mean_token_accuracy=data.get("eval_token_accuracy"))
    return {"id": str(row.id), "object": "fine_tuning.job.event", "created_at": _unix(row.created_at),
            "level": "warn" if row.level == "warning" else row.level, "message": row.message,
            "type": "metrics" if row.type in ("metrics", "eval") else "message", "data": data}


def _checkpoint(checkpoint: dict, series: dict) -> dict:
    """observe.job_checkpoints' checkpoint as OpenAI's fine_tuning.job.checkpoint; its id is also its model name."""
    step = checkpoint["step"]
    logged = [point for point in series["train"] if point["step"] <= step]
    accuracy = logged[-1].get("token_accuracy") if logged else None
    valid = checkpoint["metrics"]["eval_loss"]
    evaluated = [point for point in series["eval"] if point["step"] == step]
    return {"id": checkpoint["id"], "object": "fine_tuning.job.checkpoint",
            "created_at": _unix(checkpoint["created_at"]), "fine_tuned_model_checkpoint": checkpoint["id"],
            "fine_tuning_job_id": checkpoint["fine_tuning_job_id"], "step_number": step,
            "metrics": {"step": step, "train_loss": checkpoint["metrics"]["train_loss"],
                        "train_mean_token_accuracy": accuracy, "valid_loss": valid, "full_valid_loss": valid,
                        "valid_mean_token_accuracy": evaluated[0].get("eval_token_accuracy") if evaluated else None,
                        "epoch": checkpoint["epoch"]}}


def _unix(moment: datetime) -> int:
    return int(as_utc(moment).timestamp())
