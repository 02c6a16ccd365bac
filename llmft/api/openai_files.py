"""/v1/files: OpenAI's Files API over llmft's datasets, so the official client uploads training data unchanged.

    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key=LLMFT_KEY)
    file = client.files.create(file=open("train.jsonl", "rb"), purpose="fine-tune")
    client.files.list(); client.files.retrieve(file.id); client.files.content(file.id).read()
    client.files.delete(file.id)

A file is a dataset (its id is the dataset's id, also usable on /api/v1/datasets): stored and validated as
POST /api/v1/datasets does, so a file with errors is refused with the line-numbered report in the error's
`details`. Only purpose "fine-tune" is stored. Errors take OpenAI's shape (api/openai_compat.py).
"""

from apiflask import APIBlueprint, Schema, fields, validators
from flask import send_file

from llmft.api.auth import auth, principal, require_write
from llmft.api.context import db, settings
from llmft.api.pages import openai_list_schema, openai_page
from llmft.api.text import Text
from llmft.data import service
from llmft.db.tables import Dataset, as_utc
from llmft.errors import NotFound

bp = APIBlueprint("openai_files", __name__, tag="OpenAI-compatible")

PURPOSE = "fine-tune"


class FileIn(Schema):
    file = fields.File(required=True, metadata={"description": "JSONL (as OpenAI), or JSON, CSV, TSV, Parquet"})
    purpose = Text(required=True, validate=validators.OneOf(
        [PURPOSE], error="llmft stores only fine-tuning files: purpose must be 'fine-tune'"))


class FileOut(Schema):
    id = fields.String()
    object = fields.String()
    bytes = fields.Integer()
    created_at = fields.Integer(metadata={"description": "Unix seconds"})
    filename = fields.String()
    purpose = fields.String()
    status = fields.String()
    status_details = fields.String(allow_none=True)
    expires_at = fields.Integer(allow_none=True)


class FileListQuery(Schema):
    after = Text(load_default=None, metadata={"description": "the id of the last file of the previous page"})
    limit = fields.Integer(load_default=10_000, validate=validators.Range(1, 10_000))
    order = fields.String(load_default="desc", validate=validators.OneOf(["asc", "desc"]),
                          metadata={"description": "by created_at"})
    purpose = Text(load_default=None, metadata={"description": "only files of this purpose (all are fine-tune)"})


FileListOut = openai_list_schema("FileListOut", FileOut, cursors=True)


class FileDeletedOut(Schema):
    id = fields.String()
    object = fields.String()
    deleted = fields.Boolean()


@bp.post("/files")
@bp.auth_required(auth)
@bp.input(FileIn, location="form_and_files", arg_name="form")
@bp.output(FileOut)
@bp.doc(summary="Upload and validate a fine-tuning file (a dataset)", responses={
    400: "purpose is not fine-tune, or the file has errors (details.report says which, line by line)",
    403: "a viewer key", 413: "larger than MAX_UPLOAD_MB"})
def create(form):
    caller = require_write()
    upload = form["file"]
    with db() as session:
        dataset, _ = service.upload_dataset(session, principal=caller, uploads_dir=settings().uploads_dir,
                                            filename=upload.filename or "", stream=upload.stream)
        return _file(dataset)


@bp.get("/files")
@bp.auth_required(auth)
@bp.input(FileListQuery, location="query", arg_name="query")
@bp.output(FileListOut)
@bp.doc(summary="List the tenant's files (newest first unless order=asc)", responses={
    400: "a parameter is wrong", 404: "the after cursor names no file of the tenant"})
def index(query):
    rows = []
    if query["purpose"] in (None, PURPOSE):
        with db() as session:
            rows = service.list_datasets(session, principal=principal(), limit=query["limit"] + 1,
                                         after=query["after"], order=query["order"])
            rows = [_file(dataset) for dataset in rows]
    data = rows[:query["limit"]]
    return openai_page(data, len(rows) > len(data), cursors=True)


@bp.get("/files/<file_id>")
@bp.auth_required(auth)
@bp.output(FileOut)
@bp.doc(summary="One file", responses={404: "no such file"})
def show(file_id):
    with db() as session:
        return _file(service.get_dataset(session, principal=principal(), dataset_id=file_id))


@bp.delete("/files/<file_id>")
@bp.auth_required(auth)
@bp.output(FileDeletedOut)
@bp.doc(summary="Delete a file (the dataset; a tombstone stays for the lineage of what was trained on it)",
        responses={403: "a viewer key", 404: "no such file", 409: "a queued, running or paused job uses it"})
def delete(file_id):
    caller = require_write()
    with db() as session:
        service.delete_dataset(session, principal=caller, dataset_id=file_id, uploads_dir=settings().uploads_dir)
    return {"id": file_id, "object": "file", "deleted": True}


@bp.get("/files/<file_id>/content")
@bp.auth_required(auth)
@bp.doc(summary="The file's bytes, as uploaded", responses={
    200: {"description": "the uploaded file", "content": {"application/octet-stream": {
        "schema": {"type": "string", "format": "binary"}}}},
    404: "no such file"})
def content(file_id):
    with db() as session:
        dataset = service.get_dataset(session, principal=principal(), dataset_id=file_id)
        try:  # opened here: a deletion that commits from now on unlinks a file already open
            handle = service.dataset_path(dataset, settings().uploads_dir).open("rb")
        except FileNotFoundError:  # deleted between reading the row and opening the file
            raise NotFound(f"file {file_id!r} was deleted", details={"id": file_id}) from None
        filename = dataset.filename
    return send_file(handle, mimetype="application/octet-stream", as_attachment=True, download_name=filename)


def _file(dataset: Dataset) -> dict:
    """OpenAI's File object (openai.types.FileObject) for a dataset."""
    return {"id": dataset.id, "object": "file", "bytes": dataset.bytes,
            "created_at": int(as_utc(dataset.created_at).timestamp()), "filename": dataset.filename,
            "purpose": PURPOSE, "status": "processed", "status_details": None, "expires_at": None}
