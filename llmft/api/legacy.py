"""The v0 API's training endpoints (docs/architecture.md, "The v0 API"), on top of datasets and jobs.

    POST /api/v1/train {"dataset_path", "config": {"learning_rate", "batch_size", "num_epochs"}} -> {"task_id"}
    GET  /api/v1/train/status/<task_id>
    POST /api/v1/train/cancel/<task_id>

`dataset_path` is a dataset id of the caller's tenant or a file inside DATA_ROOT; anything
else (`..`, an absolute path elsewhere, a URL) is a 400 that touches nothing.
"""

from pathlib import Path

from apiflask import APIBlueprint, Schema, fields, validators

from llmft.api.auth import auth, principal, require_write
from llmft.api.context import celery, db, settings
from llmft.api.text import Text
from llmft.data.service import upload_dataset
from llmft.db.tables import Dataset, is_id
from llmft.errors import ServiceError
from llmft.jobs import service
from llmft.jobs.queue import dispatch

bp = APIBlueprint("legacy", __name__, tag="legacy (v0 API)")


class InvalidPath(ServiceError):
    status, code = 400, "invalid_path"


class LegacyConfig(Schema):
    learning_rate = fields.Float(validate=validators.Range(min=0, min_inclusive=False))
    batch_size = fields.Integer(validate=validators.Range(min=1))
    num_epochs = fields.Float(validate=validators.Range(min=0, min_inclusive=False))


class TrainIn(Schema):
    dataset_path = Text(required=True, validate=validators.Length(1, 1024))
    config = fields.Nested(LegacyConfig, load_default=dict)
    base_model = Text(load_default="tiny-r1", validate=validators.Length(1, 255))


class TaskOut(Schema):
    task_id = fields.String()
    status = fields.String()
    progress = fields.Dict()
    error = fields.Dict(allow_none=True)


def _task(job) -> dict:
    return {"task_id": job.id, "status": job.status, "progress": job.progress or {}, "error": job.error}



@bp.post("/train")
@bp.auth_required(auth)
@bp.input(TrainIn, arg_name="body")
@bp.output(TaskOut, status_code=202)
@bp.doc(summary="Start training (v0 API)", responses={400: "dataset_path outside DATA_ROOT",
                                                                403: "a viewer key", 422: "bad config"})
def train(body):
    caller = require_write()
    current = settings()
    with db() as session:
        dataset = session.get(Dataset, body["dataset_path"]) if is_id(body["dataset_path"], "ds") else None
        if dataset is None or dataset.tenant_id != caller.tenant_id:
            source = _inside_data_root(body["dataset_path"], current.legacy_data_root)
            with open(source, "rb") as stream:
                dataset, _ = upload_dataset(session, principal=caller, uploads_dir=current.uploads_dir,
                                            filename=source.name, stream=stream)
        job, _ = service.create_job(session, principal=caller, uploads_dir=current.uploads_dir,
                                    runs_dir=current.runs_dir, base_model=body["base_model"], dataset_id=dataset.id,
                                    hyperparameters=body["config"], max_attempts=current.job_max_attempts)
    dispatch(celery(), job.id)
    return _task(job)


@bp.get("/train/status/<task_id>")
@bp.auth_required(auth)
@bp.output(TaskOut)
@bp.doc(summary="Training status (v0 API)", responses={404: "no such task"})
def status(task_id):
    with db() as session:
        return _task(service.get_job(session, principal=principal(), job_id=task_id))


@bp.post("/train/cancel/<task_id>")
@bp.auth_required(auth)
@bp.output(TaskOut)
@bp.doc(summary="Cancel training (v0 API)", responses={403: "a viewer key", 404: "no such task",
                                                                 409: "the task already ended"})
def cancel(task_id):
    caller = require_write()
    with db() as session:
        return _task(service.cancel_job(session, principal=caller, job_id=task_id))


def _inside_data_root(raw: str, root: Path) -> Path:
    """The file `raw` names inside `root`, or InvalidPath; nothing is read before the checks pass."""
    if "://" in raw or raw.startswith(("/", "\\", "~")) or ".." in Path(raw).parts or "\x00" in raw:
        raise InvalidPath("dataset_path must be a dataset id or a path relative to DATA_ROOT, without '..'",
                          details={"param": "dataset_path"})
    candidate = (root / raw).resolve()
    if not candidate.is_relative_to(root.resolve()) or not candidate.is_file():
        raise InvalidPath(f"dataset_path {raw!r} is not a dataset id or a file inside DATA_ROOT",
                          details={"param": "dataset_path"})
    return candidate
