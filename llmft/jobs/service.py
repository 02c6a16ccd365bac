"""Job service functions: create (validated, idempotent), read, list, cancel, pause, resume, events.

Jobs are shaped like the hosted fine-tuning APIs: a base model, a dataset, a method,
hyperparameters, a suffix, a seed and metadata; statuses queued -> running -> succeeded | failed |
cancelled, with paused between (pause_job, resume_job; JOB_STATUSES in db/tables.py). A fine-tune's
training config is built here as a dict and checked once by `train.config.build_config`; the job
stores the checked result.

`method` is a type (lora, full, qlora, dpo, orpo, simpo, grpo) or the config's method section:

    create_job(session, ..., method={"type": "dpo", "weights": "lora", "dpo": {"beta": 0.2}})

A request's GRPO graders are a spec inline, never a file path (no path from a request reaches the
filesystem), checked with `load_spec` here; the dataset's kind must fit the method (METHOD_KINDS).
"""

import difflib
from datetime import timedelta
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from llmft.auth.keys import Principal
from llmft.bases.resolve import ALIASES, BUILT_IN, requestable
from llmft.config import ConfigError, format_errors
from llmft.data.service import dataset_path, get_dataset
from llmft.db.events import record_event
from llmft.db.pages import newest_first
from llmft.db.tables import FINAL_STATUSES, Job, JobEvent, Worker, is_id, new_id, now
from llmft.errors import Conflict, Invalid, NotFound
from llmft.evaluate.graders import GraderSpecError, load_spec
from llmft.registry.service import NAME as MODEL_NAME
from llmft.registry.service import REF, get_version, resolve
from llmft.train.config import METHOD_TYPES, METHODS, PREFERENCE_METHODS, TrainConfig, TrainingConfig, build_config

REQUESTABLE = {*BUILT_IN, *ALIASES}
HYPERPARAMETER_ALIASES = {"n_epochs": "num_epochs", "epochs": "num_epochs", "lr": "learning_rate"}
SHOWN_AUTO = ("num_epochs", "batch_size", "learning_rate")  # "auto" on a new job until its trainer chooses them
# the data kinds (data/kinds.py) each method trains on: pairs for preference, prompts (or SFT records, whose last
# answer is the reference) for grpo, conversations for supervised fine-tuning
METHOD_KINDS = {**{name: ("preference",) for name in PREFERENCE_METHODS}, "grpo": ("prompts", "sft"),
                **{name: ("sft",) for name in METHOD_TYPES if name not in (*PREFERENCE_METHODS, "grpo")}}


def create_job(session: Session, *, principal: Principal, uploads_dir: Path, runs_dir: Path, base_model: str,
               dataset_id: str, validation_dataset_id: str | None = None, method: str | dict = "lora",
               hyperparameters: dict | None = None, suffix: str | None = None, seed: int = 42,
               metadata: dict | None = None, idempotency_key: str | None = None, resources: dict | None = None,
               max_attempts: int = 3) -> tuple[Job, bool]:
    """(the job, True) when created; (the earlier job, False) when the Idempotency-Key was seen.

    `resources` {processes, nodes}: processes > 1 trains through torchrun on one worker with that
    many free slots; nodes must be 1 (several hosts: `llmft train --nnodes` on each)."""
    if not requestable(base_model):
        raise Invalid(f"base_model {base_model!r}: name {', '.join(sorted(REQUESTABLE))} or a hub id (org/name); "
                      "local folders are for the command line", details={"param": "base_model"})
    if suffix is not None and not MODEL_NAME.fullmatch(suffix):
        raise Invalid(f"suffix {suffix!r}: lowercase letters, digits, '.', '_' or '-' (64 at most)",
                      details={"param": "suffix"})
    processes = _processes(resources or {})
    section = method_section(method)
    if idempotency_key:
        existing = session.scalar(select(Job).where(Job.tenant_id == principal.tenant_id,
                                                    Job.idempotency_key == idempotency_key))
        if existing is not None:
            if existing.dataset_id != dataset_id or existing.base_model != base_model:
                raise Conflict("this Idempotency-Key was used for a different job",
                               details={"job_id": existing.id}, code="idempotency_conflict")
            return existing, False
    try:
        dataset = get_dataset(session, principal=principal, dataset_id=dataset_id, lock="share")
    except NotFound:
        raise Invalid(f"dataset_id: no dataset {dataset_id!r}", details={"param": "dataset_id"}) from None
    _kind_fits(dataset, section["type"], "dataset_id")
    validation_file = None
    if validation_dataset_id:
        try:
            validation = get_dataset(session, principal=principal, dataset_id=validation_dataset_id, lock="share")
        except NotFound:
            raise Invalid(f"validation_dataset_id: no dataset {validation_dataset_id!r}",
                          details={"param": "validation_dataset_id"}) from None
        _kind_fits(validation, section["type"], "validation_dataset_id")
        validation_file = dataset_path(validation, uploads_dir)
    job_id = new_id("job")
    config = training_config(base_model=base_model, train_file=dataset_path(dataset, uploads_dir),
                             validation_file=validation_file, method=section,
                             hyperparameters=hyperparameters or {}, seed=seed, output_dir=runs_dir / job_id)
    job = Job(id=job_id, tenant_id=principal.tenant_id, status="queued", base_model=base_model,
              dataset_id=dataset.id, validation_dataset_id=validation_dataset_id, method=config.method.type,
              hyperparameters=_shown(hyperparameters or {}), suffix=suffix, seed=seed, metadata_=dict(metadata or {}),
              config=_stored(config), idempotency_key=idempotency_key, max_attempts=max_attempts,
              processes=processes)
    session.add(job)
    session.flush()
    record_event(session, job, "validating", f"validating {dataset.filename} and the hyperparameters")
    record_event(session, job, "queued", "validated; waiting for a worker"
                 + (f" with {processes} free slots" if processes > 1 else ""), {"processes": processes})
    if processes > 1 and not _a_worker_fits(session, processes):
        record_event(session, job, "warning", f"no live worker has {processes} slots: the job waits until one "
                     f"starts (llmft worker --slots {processes})", {"processes": processes}, level="warning")
    return job, True


def training_config(*, base_model: str, train_file: str | Path, validation_file: str | Path | None,
                    method: str | dict, hyperparameters: dict, seed: int, output_dir: str | Path) -> TrainConfig:
    """The config a fine-tuning job trains with: what the request names, everything else the defaults
    (the training values left out are "auto"). Invalid (422) naming the method field or the hyperparameter
    that is wrong."""
    data = {"train_file": str(train_file)}
    if validation_file:
        data["validation_file"] = str(validation_file)
    section = method_section(method)
    values = {"model": {"base_model": base_model}, "data": data, "method": section,
              "training": {**_training(hyperparameters), "seed": seed}, "output": {"output_dir": str(output_dir)}}
    try:
        return build_config(values, where="the job")
    except ConfigError as error:
        wrong = [key for key, value in hyperparameters.items() if _wrong_alone(key, value)]
        param = f"hyperparameters.{wrong[0]}" if len(wrong) == 1 else "hyperparameters"
        raise Invalid(str(error), details={"param": param}, code="invalid_hyperparameters") from None


def _stored(config: TrainConfig) -> dict:
    """The checked config as the job stores it, loadable again: the method section holds only what its type uses
    (the child validates it again, and a section of another method, or weights beside a supervised type, is an
    error there)."""
    values = config.model_dump()
    kind = config.method.type
    unused = {"dpo", "orpo", "simpo", "grpo", "weights"} - {kind} - ({"weights"} if kind not in METHODS else set())
    values["method"] = {key: value for key, value in values["method"].items() if key not in unused}
    return values


def method_section(method) -> dict:
    """The config's method section from a request's `method`: a type name, or the section itself. A GRPO grader
    spec given as a string (a file path) is refused: over HTTP the spec comes inline. Its spec is checked here
    (Invalid naming the grader field, `method.grpo.graders[0].type`), and the section as the config checks it
    (Invalid naming the field, `method.dpo.beta`)."""
    if isinstance(method, str):
        if method not in METHOD_TYPES:
            raise Invalid(f"method {method!r}: one of {', '.join(METHOD_TYPES)}, or the method section as an object",
                          details={"param": "method"})
        return {"type": method}
    if not isinstance(method, dict) or not isinstance(method.get("type"), str):
        raise Invalid(f"method.type: required, one of {', '.join(METHOD_TYPES)}", details={"param": "method.type"})
    graders = method.get("grpo", {}).get("graders") if isinstance(method.get("grpo"), dict) else None
    if isinstance(graders, str):
        raise Invalid("method.grpo.graders: give the grader spec inline (a list of graders); a file path is for "
                      "the command line", details={"param": "method.grpo.graders"})
    if graders is not None:
        try:
            load_spec(graders)
        except GraderSpecError as error:
            field = error.field if error.field.startswith("graders") else f"graders.{error.field}"
            raise Invalid(f"method.grpo.graders: {error}", details={"param": f"method.grpo.{field}"},
                          code="invalid_graders") from None
    _check_method(method)
    return method


def _check_method(section: dict) -> None:
    """Invalid (422) naming the first wrong field of the method section (`method.dpo.beta`), with every problem
    in the message; the whole config is checked again with the hyperparameters."""
    try:
        TrainConfig.model_validate({"method": section})
    except ValidationError as error:
        first = error.errors()[0]["loc"]
        raise Invalid(format_errors(error, TrainConfig, "method"), details={"param": ".".join(map(str, first))},
                      code="invalid_method") from None


def _kind_fits(dataset, method: str, param: str) -> None:
    """Invalid naming `param` when the dataset's kind (recorded by its upload) is not data `method` trains on."""
    kind = (dataset.report or {}).get("kind", "sft")
    if kind not in METHOD_KINDS[method]:
        wanted = " or ".join(METHOD_KINDS[method])
        raise Invalid(f"{param}: {dataset.id} holds {kind} data; method {method} trains on {wanted} data",
                      details={"param": param, "kind": kind}, code="wrong_data_kind")


def _training(hyperparameters: dict) -> dict:
    """The `training` section from the job's hyperparameters: aliases resolved, names checked (seed is a
    field of the job); the values are checked with the whole config."""
    training = {}
    for key, value in hyperparameters.items():
        name = HYPERPARAMETER_ALIASES.get(key, key)
        if name not in TrainingConfig.model_fields or name == "seed":
            close = difflib.get_close_matches(name, list(TrainingConfig.model_fields), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise Invalid(f"hyperparameters.{key}: unknown hyperparameter{hint}",
                          details={"param": f"hyperparameters.{key}"}, code="invalid_hyperparameters")
        training[name] = value
    return training


def _wrong_alone(key: str, value) -> bool:
    """Whether hyperparameter `key`'s value is wrong by itself (a string such as "[unclosed" where a number
    belongs), so that the 422 can name it; how values combine is the whole config's check."""
    name = HYPERPARAMETER_ALIASES.get(key, key)
    try:
        TrainingConfig.model_validate({name: value})
    except ValidationError as error:
        return any(item["loc"][:1] == (name,) for item in error.errors())
    return False


def _shown(hyperparameters: dict) -> dict:
    """The job's hyperparameters as the caller spelt them, with "auto" for each of SHOWN_AUTO not given."""
    given = {HYPERPARAMETER_ALIASES.get(key, key) for key in hyperparameters}
    return {**{name: "auto" for name in SHOWN_AUTO if name not in given}, **hyperparameters}


def resolved_hyperparameters(shown: dict, chosen: dict) -> dict:
    """The job's hyperparameters once its trainer chose the "auto" ones: each "auto" becomes the number
    `chosen` (train/auto.hyperparameters) holds for it, as OpenAI's jobs show them after they start."""
    return {key: chosen.get(HYPERPARAMETER_ALIASES.get(key, key), value) if value == "auto" else value
            for key, value in shown.items()}


def _processes(resources: dict) -> int:
    processes, nodes = resources.get("processes", 1), resources.get("nodes", 1)
    if nodes != 1:
        raise Invalid("resources.nodes: queued jobs run on one host; train on several hosts with "
                      "`llmft train --nproc-per-node N --nnodes M --rdzv-endpoint HOST:PORT` on each",
                      details={"param": "resources.nodes"})
    return processes


def _a_worker_fits(session: Session, processes: int) -> bool:
    since = now() - timedelta(seconds=120)
    return session.scalar(select(Worker.name).where(Worker.seen_at >= since, Worker.slots >= processes).limit(1)) \
        is not None


def create_export_job(session: Session, *, principal: Principal, name: str, version: int, runs_dir: Path,
                      max_attempts: int = 3) -> Job:
    """A job that merges an adapter version into its base and registers the result as the next version."""
    model, source = get_version(session, principal=principal, name=name, version=version)
    if source.kind != "adapter":
        raise Conflict(f"{model.name}:{version} already holds full weights; there is no adapter to merge",
                       details={"kind": source.kind}, code="not_an_adapter")
    job_id = new_id("job")
    job = Job(id=job_id, tenant_id=principal.tenant_id, status="queued", kind="export", base_model=model.base_model,
              dataset_id=None, method="export", hyperparameters={}, seed=0, metadata_={"source": f"{name}:{version}"},
              suffix=model.name, config={"version_id": source.id, "output": {"output_dir": str(runs_dir / job_id)}},
              max_attempts=max_attempts)
    session.add(job)
    session.flush()
    record_event(session, job, "queued", f"export of {model.name}:{version} waiting for a worker")
    return job


def create_evaluation_job(session: Session, *, principal: Principal, model: str, dataset_id: str, runs_dir: Path,
                          uploads_dir: Path, max_samples: int = 200, max_new_tokens: int | str = "auto",
                          max_length: int = 2048, max_attempts: int = 3, grading: dict | None = None) -> Job:
    """A job that evaluates a registry version (NAME:V, NAME@ALIAS, next to its base) or a base model alone
    on the validation split of a dataset; its report becomes the job's `result`. `max_new_tokens`: "auto"
    (from the references, llmft.evaluate.run) or a number; `grading`: `evaluate`'s graders (a checked spec's
    dump), pass_k, thinking_budgets and answer_tokens (llmft.evaluate.graders), or None."""
    version_id, base_model, ref = None, model, model
    if not REF.fullmatch(model) and not requestable(model):
        raise Invalid(f"model {model!r}: NAME:V, NAME@ALIAS, {', '.join(sorted(REQUESTABLE))} or a hub id",
                      details={"param": "model"})
    if REF.fullmatch(model):
        registered, version = resolve(session, principal=principal, ref=model)
        version_id, base_model, ref = version.id, registered.base_model, f"{registered.name}:{version.version}"
    try:
        dataset = get_dataset(session, principal=principal, dataset_id=dataset_id, lock="share")
    except NotFound:
        raise Invalid(f"dataset_id: no dataset {dataset_id!r}", details={"param": "dataset_id"}) from None
    job_id = new_id("job")
    job = Job(id=job_id, tenant_id=principal.tenant_id, status="queued", kind="evaluation", base_model=base_model,
              dataset_id=dataset.id, method="evaluation", hyperparameters={}, seed=0, metadata_={"model": ref},
              config={"model": ref, "version_id": version_id, "base_model": base_model,
                      "data_file": str(dataset_path(dataset, uploads_dir)), "max_samples": max_samples,
                      "max_new_tokens": max_new_tokens, "max_length": max_length, "grading": grading or {},
                      "output": {"output_dir": str(runs_dir / job_id)}},
              max_attempts=max_attempts)
    session.add(job)
    session.flush()
    record_event(session, job, "queued", f"evaluation of {ref} on {dataset.filename} waiting for a worker")
    return job


def get_job(session: Session, *, principal: Principal, job_id: str) -> Job:
    job = session.get(Job, job_id) if is_id(job_id, "job") else None
    if job is None or job.tenant_id != principal.tenant_id:
        raise NotFound(f"no job {job_id!r}", details={"id": job_id})
    return job


def list_jobs(session: Session, *, principal: Principal, status: str | None = None, kind: str | None = None,
              after: str | None = None, limit: int = 20) -> list[Job]:
    where = ([Job.status == status] if status else []) + ([Job.kind == kind] if kind else [])
    return newest_first(session, Job, tenant_id=principal.tenant_id, after=after, limit=limit, prefix="job",
                        where=where)


def cancel_job(session: Session, *, principal: Principal, job_id: str) -> Job:
    """Queued and paused jobs end at once; a running job's runner signals its trainer, which checkpoints and
    stops (a cancel during a pause wins: the job ends cancelled)."""
    job = get_job(session, principal=principal, job_id=job_id)
    if job.status in FINAL_STATUSES:
        raise Conflict(f"job {job_id} already {job.status}", details={"status": job.status})
    job.cancel_requested = True
    if job.status in ("queued", "paused"):
        was = job.status
        job.status, job.pause_requested, job.finished_at = "cancelled", False, now()
        record_event(session, job, "cancelled", "cancelled before it started" if was == "queued"
                     else "cancelled while paused")
    else:
        record_event(session, job, "cancelling", "cancel requested; the trainer saves a checkpoint and stops")
    return job


def pause_job(session: Session, *, principal: Principal, job_id: str) -> Job:
    """Pause a fine-tune: it stops with a checkpoint and waits, holding no worker, until `resume_job`.

    queued: paused at once (a message still in the queue for it finds nothing to claim). running:
    `pause_requested` is set (it stays set while the job is paused) and the job stays running while
    its runner signals the trainer as for a cancel (SIGTERM: it saves a checkpoint and exits); the
    runner then ends the attempt as "paused", with the checkpoint's step in the "paused" event, and
    that attempt does not count against max_attempts. Asking again while it pauses changes nothing.
    Conflict (409, invalid_state) when the job is paused already, final, being cancelled, or not a
    fine-tune (exports and evaluations have no checkpoint to continue from)."""
    job = get_job(session, principal=principal, job_id=job_id)
    if job.kind != "fine_tune":
        raise Conflict(f"job {job_id} is an {job.kind} job; only fine-tuning jobs can be paused",
                       details={"kind": job.kind}, code="invalid_state")
    if job.status == "queued" and _move(session, job, "queued", status="paused", pause_requested=True):
        record_event(session, job, "paused", "paused before it started", {"step": None})
        return job
    # running (or claimed by a worker since it was read: `_move` read it again)
    if job.status == "running" and job.pause_requested and not job.cancel_requested:
        return job  # asked again while it pauses
    if job.status != "running" or job.cancel_requested or not _move(session, job, "running", pause_requested=True):
        state = "being cancelled" if job.status == "running" else job.status
        raise Conflict(f"job {job_id} is {state}; only a queued or running job can be paused",
                       details={"status": job.status}, code="invalid_state")
    record_event(session, job, "pausing", "pause requested; the trainer saves a checkpoint and stops")
    return job


def resume_job(session: Session, *, principal: Principal, job_id: str) -> Job:
    """Put a paused job back in the queue ("queued", event "resumed"); the caller dispatches it
    (`llmft.jobs.queue.dispatch(celery(), job.id, processes=job.processes)`). Its trainer continues from
    the newest committed checkpoint in its output_dir, exactly where the pause stopped it. Conflict (409,
    invalid_state) unless the job is paused (a job still pausing is running: resume once it is paused)."""
    job = get_job(session, principal=principal, job_id=job_id)
    if job.status != "paused" or not _move(session, job, "paused", status="queued", pause_requested=False):
        state = "still pausing" if job.pause_requested and job.status == "running" else job.status
        raise Conflict(f"job {job_id} is {state}; only a paused job can be resumed",
                       details={"status": job.status}, code="invalid_state")
    record_event(session, job, "resumed", "resumed; waiting for a worker" +
                 (f" with {job.processes} free slots" if job.processes > 1 else ""), {"processes": job.processes})
    return job


def _move(session: Session, job: Job, was: str, **values) -> bool:
    """Change the job only while its status is still `was` (a worker's claim, or another request, may have
    changed it since it was read); the job is read again either way."""
    moved = session.execute(update(Job).where(Job.id == job.id, Job.status == was).values(**values)
                            .execution_options(synchronize_session=False)).rowcount == 1
    session.refresh(job)
    return moved


def list_events(session: Session, *, principal: Principal, job_id: str, after: int = 0, limit: int = 100) -> list[JobEvent]:
    get_job(session, principal=principal, job_id=job_id)
    return list(session.scalars(select(JobEvent).where(JobEvent.job_id == job_id, JobEvent.id > after)
                                .order_by(JobEvent.id).limit(limit)))
