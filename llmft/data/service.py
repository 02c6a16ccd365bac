"""Dataset service functions (the HTTP layer in api/datasets.py is a thin wrapper).

An upload is written to a temporary file under `uploads/<tenant>/`, validated with the data
pipeline as its kind (SFT conversations, preference pairs or RL prompts; data/kinds.py), and kept
only when it has no errors; its report records the kind. Its stored name comes from the dataset
id and an allowed extension, never from the client's filename.
"""

import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from llmft.auth.keys import Principal
from llmft.bases.resolve import ALIASES, BUILT_IN, ModelNotFoundError, load_tokenizer, requestable
from llmft.data import cache
from llmft.data.config import DataConfig
from llmft.data.kinds import KINDS, check_kind, kind_report
from llmft.data.preview import runs
from llmft.db.pages import newest_first
from llmft.db.tables import Dataset, Job, is_id, new_id, now
from llmft.errors import Conflict, Invalid, NotFound
from llmft.files import sha256_file

EXTENSIONS = (".jsonl", ".json", ".csv", ".tsv", ".parquet")

@lru_cache(maxsize=4)
def tokenizer_for(model: str):
    return load_tokenizer(model)

def upload_dataset(session: Session, *, principal: Principal, uploads_dir: Path, filename: str, stream: BinaryIO,
                   model: str = "tiny-r1", max_length: int = 4096, kind: str = "auto") -> tuple[Dataset, dict]:
    """Validate and store an upload as `kind` (auto: told from its first record); Invalid (422, with the report)
    and nothing stored on errors."""
    if kind != "auto" and kind not in KINDS:
        raise Invalid(f"kind {kind!r}: one of auto, {', '.join(KINDS)}", details={"field": "kind"}, code="invalid_kind")
    _check_model(model)
    extension = Path(filename or "").suffix.lower()
    if extension not in EXTENSIONS:
        raise Invalid(f"file {filename!r}: the extension must be one of {', '.join(EXTENSIONS)}",
                      details={"field": "file"}, code="unsupported_format")
    folder = uploads_dir / principal.tenant_id
    folder.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".incoming-", suffix=extension, dir=folder)
    try:
        with os.fdopen(handle, "wb") as out:
            shutil.copyfileobj(stream, out, 1024 * 1024)
        kind, checked = check_kind(Path(temporary), kind, tokenizer=tokenizer_for(model),
                                   config=DataConfig(max_length=max_length))
        report = kind_report(kind, checked, source=Path(filename).name, model=model, max_length=max_length)
        if report["errors"] or not report["examples"]:
            first = min((issue for issue in checked.issues if issue.severity == "error"),
                        key=lambda issue: (issue.record or 0, issue.line or 0), default=None)
            problem = f"; the first: {first.code} at {first.where()}: {first.message}" if first else ""
            raise Invalid(f"{Path(filename).name}: {report['errors']} errors; nothing was stored{problem}",
                          details={"report": report}, code="invalid_dataset")
        dataset_id = new_id("ds")
        stored_name = f"{dataset_id}{extension}"
        os.replace(temporary, folder / stored_name)
    finally:
        Path(temporary).unlink(missing_ok=True)
    dataset = Dataset(id=dataset_id, tenant_id=principal.tenant_id, filename=Path(filename).name[:255],
                      stored_name=stored_name, bytes=(folder / stored_name).stat().st_size,
                      sha256=sha256_file(folder / stored_name), examples=report["examples"], report=report)
    session.add(dataset)
    session.flush()
    return dataset, report

def _check_model(model: str) -> None:
    """The rule jobs apply to base_model (a built-in name or a hub id, never a server path), and a tokenizer that
    loads: one message for every refusal, so that no answer tells which server folders exist."""
    try:
        if requestable(model):
            tokenizer_for(model)
            return
    except (ModelNotFoundError, OSError, ValueError):
        pass
    raise Invalid(f"model {model!r}: name one of {', '.join(sorted({*BUILT_IN, *ALIASES}))} or a hub id (org/name) "
                  "whose tokenizer the server can load; local folders are for the command line",
                  details={"field": "model"}, code="invalid_model")

def list_datasets(session: Session, *, principal: Principal, limit: int = 20, after: str | None = None,
                  order: str = "desc") -> list[Dataset]:
    """The tenant's datasets, newest first (order="asc": oldest first), past the cursor `after`."""
    return newest_first(session, Dataset, tenant_id=principal.tenant_id, after=after, limit=limit, prefix="ds",
                        where=[Dataset.deleted_at.is_(None)], order=order)

def get_dataset(session: Session, *, principal: Principal, dataset_id: str, lock: str | None = None) -> Dataset:
    """The tenant's dataset; another tenant's id is NotFound exactly like an unknown one. `lock` (PostgreSQL;
    SQLite has one writer anyway): "share" for a new job that will read it, "update" for its deletion, so that a
    deletion waits for a job being created and then sees it, or the job waits and then sees the tombstone."""
    locking = {None: None, "share": {"read": True}, "update": True}[lock]
    dataset = session.get(Dataset, dataset_id, with_for_update=locking) if is_id(dataset_id, "ds") else None
    if dataset is None or dataset.tenant_id != principal.tenant_id:
        raise NotFound(f"no dataset {dataset_id!r}", details={"id": dataset_id})
    if dataset.deleted_at is not None:
        raise NotFound(f"dataset {dataset_id!r} was deleted", details={"id": dataset_id,
                                                                       "deleted_at": dataset.deleted_at.isoformat()})
    return dataset

def dataset_path(dataset: Dataset, uploads_dir: Path) -> Path:
    return uploads_dir / dataset.tenant_id / dataset.stored_name

def delete_dataset(session: Session, *, principal: Principal, dataset_id: str, uploads_dir: Path) -> None:
    """Erase the file, its report and the prepared data made from it; the row stays as a tombstone (filename,
    sha256, deleted_at) so the jobs and versions made from it still say what they were trained on.
    Conflict while a queued, running or paused job reads it (a paused one reads it again when resumed)."""
    dataset = get_dataset(session, principal=principal, dataset_id=dataset_id, lock="update")
    using = session.scalars(select(Job.id).where(
        Job.tenant_id == dataset.tenant_id, Job.status.in_(("queued", "running", "paused")),
        or_(Job.dataset_id == dataset.id, Job.validation_dataset_id == dataset.id)).order_by(Job.id)).all()
    if using:
        raise Conflict(f"dataset {dataset_id!r} is used by the queued, running or paused job(s) {', '.join(using)}; "
                       "cancel them or wait for them to end", details={"jobs": list(using)}, code="dataset_in_use")
    dataset.deleted_at, dataset.report = now(), {}
    session.flush()
    dataset_path(dataset, uploads_dir).unlink(missing_ok=True)
    shared = session.scalar(select(Dataset.id).where(Dataset.sha256 == dataset.sha256, Dataset.id != dataset.id,
                                                     Dataset.deleted_at.is_(None)).limit(1))
    if shared is None:  # the same bytes uploaded again (any tenant) keep their prepared data
        cache.forget_source(dataset.sha256)

def preview_dataset(session: Session, *, principal: Principal, dataset_id: str, uploads_dir: Path,
                    limit: int = 3) -> list[dict]:
    """Rendered examples as runs of text, each marked trained or not (what the model will learn); preference pairs
    as prompt, chosen and rejected, RL prompts as prompt and reference (the rows their trainers get)."""
    dataset = get_dataset(session, principal=principal, dataset_id=dataset_id)
    model = dataset.report.get("model", "tiny-r1")
    tokenizer = tokenizer_for(model)
    config = DataConfig(max_length=dataset.report.get("max_length", 4096))
    kind, checked = check_kind(dataset_path(dataset, uploads_dir), dataset.report.get("kind", "sft"),
                               tokenizer=tokenizer, config=config)
    if kind != "sft":
        return _row_previews(kind, checked, tokenizer, config, limit)
    previews = []
    for example, tokens in list(zip(checked.examples, checked.tokenized))[:limit]:
        spans = [{"text": tokenizer.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False),
                  "trained": trained} for trained, ids in runs(tokens)]
        previews.append({"record": example.record, "line": example.line, "tokens": len(tokens),
                         "trained_tokens": tokens.trained_tokens, "spans": spans})
    return previews


def _row_previews(kind: str, checked, tokenizer, config: DataConfig, limit: int) -> list[dict]:
    from llmft.data.preference import preference_rows
    from llmft.data.rl_prompts import prompt_rows

    examples = checked.examples[:limit]
    make = preference_rows if kind == "preference" else prompt_rows
    rows = make(tokenizer, examples, reasoning_format=checked.reasoning_format, think_mode=config.think_mode)
    return [{"record": example.number if kind == "prompts" else example.record, "line": example.line, "kind": kind,
             **{key: value for key, value in row.items() if key != "record"}} for example, row in zip(examples, rows)]
