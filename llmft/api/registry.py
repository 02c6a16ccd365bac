"""/api/v1/models: the registry. Versions are `NAME:V`, aliases `NAME@ALIAS`.

The v0 API's `GET /api/v1/models` and `GET /api/v1/models/{id}` answer here too (a
model is found by its name or its `mdl-...` id).
"""

import tarfile
import tempfile

from apiflask import APIBlueprint, Schema, fields, validators
from flask import send_file

from llmft.api.auth import auth, principal, require_write
from llmft.api.context import celery, db, settings
from llmft.api.jobs import JobOut
from llmft.api.pages import EventOut, list_schema
from llmft.api.text import Text
from llmft.errors import Conflict
from llmft.jobs import service as jobs_service
from llmft.jobs.queue import dispatch
from llmft.registry import service
from llmft.registry.artifacts import IntegrityError

bp = APIBlueprint("models", __name__, tag="models")


class VersionOut(Schema):
    id = fields.String()
    object = fields.String()
    name = fields.String()
    version = fields.Integer()
    ref = fields.String(metadata={"description": "NAME:V, what inference and evaluation take"})
    kind = fields.String(metadata={"description": "adapter or full"})
    job_id = fields.String(allow_none=True)
    created_at = fields.DateTime()
    metrics = fields.Dict()
    lineage = fields.Dict()
    evaluation = fields.Dict(allow_none=True)
    files = fields.List(fields.Dict(), metadata={"description": "path, sha256, bytes"})


class ModelOut(Schema):
    id = fields.String()
    object = fields.String()
    name = fields.String()
    base_model = fields.String()
    created_at = fields.DateTime()
    latest_version = fields.Integer(allow_none=True)
    aliases = fields.Dict(keys=fields.String(), values=fields.Integer())
    versions = fields.List(fields.Nested(VersionOut))


ModelListOut = list_schema("ModelListOut", ModelOut, paged=False)


class AliasIn(Schema):
    version = fields.Integer(required=True, validate=validators.Range(1, 10**9))
    force = fields.Boolean(load_default=False, metadata={"description": "move a gated alias past a failed gate (recorded)"})
    reason = Text(load_default=None, validate=validators.Length(1, 500))


class AliasOut(Schema):
    name = fields.String()
    alias = fields.String()
    version = fields.Integer()
    previous = fields.Integer(allow_none=True)
    override = fields.Boolean(metadata={"description": "true when force moved it past a failed gate"})
    failures = fields.List(fields.Dict())


ModelEventListOut = list_schema("ModelEventListOut", EventOut, paged=False)


@bp.get("/models")
@bp.auth_required(auth)
@bp.output(ModelListOut)
@bp.doc(summary="The tenant's models with their versions and aliases")
def index():
    with db() as session:
        return {"data": service.list_models(session, principal=principal())}


@bp.get("/models/<name>")
@bp.auth_required(auth)
@bp.output(ModelOut)
@bp.doc(summary="One model by name (or mdl-... id)", responses={404: "no such model"})
def show(name):
    with db() as session:
        return service.describe_model(session, service.get_model(session, principal=principal(), name=name))


@bp.get("/models/<name>/versions/<int:version>")
@bp.auth_required(auth)
@bp.output(VersionOut)
@bp.doc(summary="One version: artifacts with hashes, lineage, metrics, evaluation", responses={404: "no such version"})
def version(name, version):
    with db() as session:
        model, row = service.get_version(session, principal=principal(), name=name, version=version)
        return service.describe_version(model, row)


@bp.delete("/models/<name>/versions/<int:version>")
@bp.auth_required(auth)
@bp.output({}, status_code=204)
@bp.doc(summary="Delete a version and its files", responses={
    403: "a viewer key", 404: "no such version", 409: "an alias points at it"})
def delete_version(name, version):
    caller = require_write()
    with db() as session:
        service.delete_version(session, principal=caller, name=name, version=version, home=settings().llmft_home)
    return ""


@bp.get("/models/<name>/versions/<int:version>/download")
@bp.auth_required(auth)
@bp.doc(summary="The version's artifacts as a .tar.gz, after checking every file's sha256", responses={
    200: {"description": "application/gzip", "content": {"application/gzip": {"schema": {"type": "string",
                                                                                         "format": "binary"}}}},
    404: "no such version", 409: "an artifact no longer matches its hash"})
def download(name, version):
    with db() as session:
        model, row = service.get_version(session, principal=principal(), name=name, version=version)
        try:
            folder = service.verified_folder(settings().llmft_home, row)
        except IntegrityError as error:
            raise Conflict(str(error), code="integrity_error") from None
        files = sorted(row.files)
    spool = tempfile.TemporaryFile()  # on disk, not in memory: a full model is gigabytes; gone when sent
    with tarfile.open(fileobj=spool, mode="w:gz") as archive:
        for relative in files:
            archive.add(folder / relative, arcname=f"{model.name}-{version}/{relative}")
    spool.seek(0)
    return send_file(spool, mimetype="application/gzip", as_attachment=True,
                     download_name=f"{model.name}-{version}.tar.gz")


@bp.post("/models/<name>/versions/<int:version>/export")
@bp.auth_required(auth)
@bp.output(JobOut, status_code=202)
@bp.doc(summary="Merge a LoRA version into its base as a job; the full model becomes the next version",
        responses={403: "a viewer key", 404: "no such version", 409: "the version holds full weights already"})
def export(name, version):
    caller = require_write()
    current = settings()
    with db() as session:
        job = jobs_service.create_export_job(session, principal=caller, name=name, version=version,
                                             runs_dir=current.runs_dir, max_attempts=current.job_max_attempts)
    dispatch(celery(), job.id)
    return job


@bp.put("/models/<name>/aliases/<alias>")
@bp.auth_required(auth)
@bp.input(AliasIn, arg_name="body")
@bp.output(AliasOut)
@bp.doc(summary="Point an alias at a version (gated aliases check the metrics first)", responses={
    403: "a viewer key", 404: "no such model or version", 409: "the promotion gate refused (force to override)",
    422: "a malformed alias"})
def set_alias(name, alias, body):
    caller = require_write()
    current = settings()
    with db() as session:
        return service.set_alias(session, principal=caller, name=name, alias=alias, version=body["version"],
                                 gate=service.Gate.from_settings(current), force=body["force"],
                                 reason=body["reason"])


@bp.delete("/models/<name>/aliases/<alias>")
@bp.auth_required(auth)
@bp.output({}, status_code=204)
@bp.doc(summary="Remove an alias", responses={403: "a viewer key", 404: "no such model or alias"})
def delete_alias(name, alias):
    caller = require_write()
    with db() as session:
        service.delete_alias(session, principal=caller, name=name, alias=alias)
    return ""


@bp.get("/models/<name>/events")
@bp.auth_required(auth)
@bp.output(ModelEventListOut)
@bp.doc(summary="The model's history: versions registered and deleted, aliases moved (who, overrides)",
        responses={404: "no such model"})
def events(name):
    with db() as session:
        return {"data": service.model_events(session, principal=principal(), name=name)}
