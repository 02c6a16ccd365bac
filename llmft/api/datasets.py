"""/api/v1/datasets: upload (validated), list, get, delete, preview."""

from apiflask import APIBlueprint, Schema, fields, validators

from llmft.api.auth import auth, principal, require_write
from llmft.api.context import db, settings
from llmft.api.pages import PageQuery, list_schema, page
from llmft.api.text import Text
from llmft.data import service

bp = APIBlueprint("datasets", __name__, tag="datasets")


class UploadIn(Schema):
    file = fields.File(required=True, metadata={"description": "JSONL, JSON, CSV, TSV or Parquet"})
    model = Text(load_default="tiny-r1", validate=validators.Length(1, 255),
                          metadata={"description": "base model whose tokenizer counts the tokens: a built-in "
                                          "name or a hub id, as a job's base_model (never a server path)"})
    max_length = fields.Integer(load_default=4096, validate=validators.Range(16, 1_048_576))
    kind = Text(load_default="auto", validate=validators.OneOf(["auto", "sft", "preference", "prompts"]),
                metadata={"description": "what the file holds: sft conversations, preference pairs (DPO, ORPO, "
                                         "SimPO) or RL prompts; auto tells it from the first record"})


class DatasetOut(Schema):
    id = fields.String()
    object = fields.String(dump_default="dataset")
    filename = fields.String()
    bytes = fields.Integer()
    sha256 = fields.String()
    examples = fields.Integer()
    created_at = fields.DateTime()
    report = fields.Dict()


DatasetListOut = list_schema("DatasetListOut", DatasetOut)


class PreviewQuery(Schema):
    n = fields.Integer(load_default=3, validate=validators.Range(1, 50))


class PreviewOut(Schema):
    data = fields.List(fields.Dict())



@bp.post("/datasets")
@bp.post("/datasets/upload")
@bp.auth_required(auth)
@bp.input(UploadIn, location="form_and_files", arg_name="form")
@bp.output(DatasetOut, status_code=201)
@bp.doc(summary="Upload and validate a dataset", responses={
    403: "a viewer key", 413: "larger than MAX_UPLOAD_MB",
    422: "the file has errors (the report says which), or model is not a built-in name or a loadable hub id"})
def create(form):
    caller = require_write()
    upload = form["file"]
    with db() as session:
        dataset, _ = service.upload_dataset(session, principal=caller, uploads_dir=settings().uploads_dir,
                                            filename=upload.filename or "", stream=upload.stream,
                                            model=form["model"], max_length=form["max_length"], kind=form["kind"])
    return dataset


@bp.get("/datasets")
@bp.auth_required(auth)
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(DatasetListOut)
@bp.doc(summary="List the tenant's datasets, newest first", responses={404: "the after cursor names no dataset of the tenant"})
def index(query):
    with db() as session:
        rows = service.list_datasets(session, principal=principal(), limit=query["limit"] + 1, after=query["after"])
    return page(rows, query["limit"])


@bp.get("/datasets/<dataset_id>")
@bp.auth_required(auth)
@bp.output(DatasetOut)
@bp.doc(summary="One dataset with its validation report", responses={404: "no such dataset"})
def show(dataset_id):
    with db() as session:
        return service.get_dataset(session, principal=principal(), dataset_id=dataset_id)


@bp.delete("/datasets/<dataset_id>")
@bp.auth_required(auth)
@bp.output({}, status_code=204)
@bp.doc(summary="Delete a dataset: its file, report and prepared data go; a tombstone (filename, sha256, "
                "deleted_at) stays for the lineage of jobs and versions made from it",
        responses={403: "a viewer key", 404: "no such dataset", 409: "a queued or running job uses it"})
def delete(dataset_id):
    caller = require_write()
    with db() as session:
        service.delete_dataset(session, principal=caller, dataset_id=dataset_id, uploads_dir=settings().uploads_dir)
    return ""


@bp.get("/datasets/<dataset_id>/preview")
@bp.auth_required(auth)
@bp.input(PreviewQuery, location="query", arg_name="query")
@bp.output(PreviewOut)
@bp.doc(summary="Rendered examples with the trained spans marked", responses={404: "no such dataset"})
def preview(dataset_id, query):
    with db() as session:
        data = service.preview_dataset(session, principal=principal(), dataset_id=dataset_id,
                                       uploads_dir=settings().uploads_dir, limit=query["n"])
    return {"data": data}
