"""Registry service functions: register a job's result as a version, read, resolve, alias, delete.

    register_version(session, job=job, final_dir=..., summary=..., home=...)  # NAME:V
    resolve(session, tenant_id=t, ref="support-bot@production")            # NAME:V, NAME@ALIAS
    set_alias(session, principal=p, name="support-bot", alias="production", version=7, gate=GATE)

Versions are numbered 1, 2, 3... per model, and a deleted version's number is never given again. Moving an alias is one call and one event; a
gated alias (`production` by default) only moves to a version whose metrics are not worse than
the current one's, unless the caller forces it (the event records who did).
"""

import math
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from llmft.auth.keys import Principal
from llmft.db.tables import Dataset, Job, ModelAlias, ModelEvent, ModelVersion, RegisteredModel, new_id, now
from llmft.errors import Conflict, Invalid, NotFound
from llmft.registry.artifacts import add_file, artifacts_dir, store, verify
from llmft.registry.card import model_card
from llmft.registry.contract import trained_contract
from llmft.train.config import METHODS
from llmft.train.summary import RunSummary

# \Z, not $: `$` also matches before a final newline, and `production\n` is no alias.
NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}\Z")
REF = re.compile(r"^(?P<name>[a-z0-9][a-z0-9._-]{0,63})(?::(?P<version>[0-9]{1,9})|@(?P<alias>[a-z0-9][a-z0-9._-]{0,63}))\Z")


@dataclass(frozen=True)
class Gate:
    """Which aliases are gated, which metrics must not get worse (min: lower is better), and by how much."""
    aliases: tuple[str, ...] = ("production",)
    metrics: tuple[tuple[str, str], ...] = (("eval_loss", "min"), ("rouge_l", "max"), ("bleu", "max"))
    tolerance: float = 0.0  # relative: 0.01 lets a metric be 1% worse

    @classmethod
    def from_settings(cls, settings) -> "Gate":
        return cls(aliases=settings.gated_alias_names, metrics=settings.gated_metrics,
                   tolerance=settings.promotion_tolerance)


def model_name_for(job: Job) -> str:
    """The job's suffix, or `<base model>-ft`: every fine-tune of a base becomes its next version."""
    if job.suffix:
        return job.suffix
    slug = re.sub(r"[^a-z0-9._-]+", "-", Path(job.base_model).name.lower()).strip("-._") or "model"
    return f"{slug[:60]}-ft"


def register_version(session: Session, *, job: Job, final_dir: Path, summary: RunSummary, home: Path,
                     evaluation: dict | None = None, base_revision: str | None = None) -> ModelVersion:
    """Store the job's final folder as the next version of its model (once per job: a retry returns it)."""
    existing = session.scalar(select(ModelVersion).where(ModelVersion.job_id == job.id))
    if existing is not None:
        return existing
    return _register(session, name=model_name_for(job), base_model=job.base_model, job=job, folder=final_dir,
                     home=home, evaluation=evaluation, lineage=_lineage(session, job, summary, base_revision, evaluation),
                     metrics=_metrics(summary, evaluation), message=f"registered from job {job.id}")


def register_export(session: Session, *, job: Job, source: ModelVersion, folder: Path, home: Path) -> ModelVersion:
    """A merged (full-weight) copy of an adapter version as the model's next version; its lineage says whence."""
    existing = session.scalar(select(ModelVersion).where(ModelVersion.job_id == job.id))
    if existing is not None:
        return existing
    model = session.get(RegisteredModel, source.model_id)
    lineage = {**source.lineage, "job_id": job.id, "exported_from": f"{model.name}:{source.version}",
               "exported_from_job": source.job_id}
    return _register(session, name=model.name, base_model=model.base_model, job=job, folder=folder, home=home,
                     evaluation=source.evaluation, lineage=lineage, metrics=dict(source.metrics),
                     message=f"exported from {model.name}:{source.version} (LoRA merged into the base) by job {job.id}")


def _register(session: Session, *, name: str, base_model: str, job: Job, folder: Path, home: Path, lineage: dict,
              metrics: dict, evaluation: dict | None, message: str) -> ModelVersion:
    version_id = new_id("mv")
    target = artifacts_dir(home, job.tenant_id, version_id)
    files = store(folder, target)  # before any write: copying gigabytes must not hold SQLite's write lock
    model = session.scalar(select(RegisteredModel).where(RegisteredModel.tenant_id == job.tenant_id,
                                                         RegisteredModel.name == name))
    if model is None:
        model = RegisteredModel(tenant_id=job.tenant_id, name=name, base_model=base_model)
        session.add(model)
        session.flush()
    kind = "adapter" if "adapter_config.json" in files else "full"
    number = _next_number(session, model)
    card = model_card(name=model.name, version=number, kind=kind, lineage=lineage, metrics=metrics,
                      evaluation=evaluation)
    version = ModelVersion(id=version_id, model_id=model.id, tenant_id=job.tenant_id, version=number,
                           job_id=job.id, kind=kind, files=add_file(target, files, "README.md", card),
                           lineage=lineage, metrics=metrics, evaluation=evaluation)
    session.add(version)
    session.flush()
    job.fine_tuned_model = f"{model.name}:{number}"
    _event(session, model, "version_registered", f"{model.name}:{number} {message}", None,
           {"version": number, "job_id": job.id})
    return version


def _next_number(session: Session, model: RegisteredModel) -> int:
    """The model's counter, moved on in one statement (registrations at once wait on its row lock, and a
    deleted version's number is never given again)."""
    return session.execute(update(RegisteredModel).where(RegisteredModel.id == model.id)
                           .values(last_version=RegisteredModel.last_version + 1)
                           .returning(RegisteredModel.last_version)
                           .execution_options(synchronize_session=False)).scalar_one()


def list_models(session: Session, *, principal: Principal) -> list[dict]:
    models = session.scalars(select(RegisteredModel).where(RegisteredModel.tenant_id == principal.tenant_id)
                             .order_by(RegisteredModel.name)).all()
    return [describe_model(session, model) for model in models]


def get_model(session: Session, *, principal: Principal, name: str) -> RegisteredModel:
    """By name, or by id (`mdl-...`, as the v0 API addressed models); another tenant's is NotFound."""
    if not NAME.fullmatch(name or ""):
        raise NotFound(f"no model {name!r}", details={"name": name})
    column = RegisteredModel.id if name.startswith("mdl-") else RegisteredModel.name
    model = session.scalar(select(RegisteredModel).where(RegisteredModel.tenant_id == principal.tenant_id,
                                                         column == name))
    if model is None:
        raise NotFound(f"no model {name!r}", details={"name": name})
    return model


def get_version(session: Session, *, principal: Principal, name: str, version: int) -> tuple[RegisteredModel, ModelVersion]:
    model = get_model(session, principal=principal, name=name)
    row = session.scalar(select(ModelVersion).where(ModelVersion.model_id == model.id, ModelVersion.version == version))
    if row is None:
        raise NotFound(f"{model.name} has no version {version}", details={"name": model.name, "version": version})
    return model, row


def resolve(session: Session, *, principal: Principal, ref: str) -> tuple[RegisteredModel, ModelVersion]:
    """`NAME:V` or `NAME@ALIAS` -> the model and the version it means now."""
    match = REF.fullmatch(ref or "")
    if match is None:
        raise Invalid(f"{ref!r} is not NAME:VERSION or NAME@ALIAS", details={"param": "model"})
    if match["version"]:
        return get_version(session, principal=principal, name=match["name"], version=int(match["version"]))
    model = get_model(session, principal=principal, name=match["name"])
    alias = session.scalar(select(ModelAlias).where(ModelAlias.model_id == model.id, ModelAlias.alias == match["alias"]))
    if alias is None:
        raise NotFound(f"{model.name} has no alias {match['alias']!r}", details={"alias": match["alias"]})
    return model, session.get(ModelVersion, alias.version_id)


def verified_folder(home: Path, version: ModelVersion) -> Path:
    """The version's artifact folder after checking every file's hash (IntegrityError otherwise)."""
    folder = artifacts_dir(home, version.tenant_id, version.id)
    verify(folder, version.files)
    return folder


def set_alias(session: Session, *, principal: Principal, name: str, alias: str, version: int, gate: Gate = Gate(),
              force: bool = False, reason: str | None = None) -> dict:
    if not NAME.fullmatch(alias or ""):
        raise Invalid(f"alias {alias!r}: use lowercase letters, digits, '.', '_' or '-' (64 at most)",
                      details={"param": "alias"})
    model, target = get_version(session, principal=principal, name=name, version=version)
    row = session.scalar(select(ModelAlias).where(ModelAlias.model_id == model.id, ModelAlias.alias == alias))
    current = session.get(ModelVersion, row.version_id) if row is not None else None
    failures = gate_failures(current, target, gate) if alias in gate.aliases else []
    if failures and not force:
        raise Conflict(f"{model.name}:{version} is worse than {model.name}@{alias} (version {current.version}) on "
                       + "; ".join(f["message"] for f in failures) + ". Pass force=true to override (recorded).",
                       details={"failures": failures}, code="promotion_blocked")
    if row is None:
        row = ModelAlias(model_id=model.id, tenant_id=model.tenant_id, alias=alias, version_id=target.id)
        session.add(row)
    row.version_id, row.updated_at = target.id, now()
    moved = f"{model.name}@{alias} -> {version}" + (f" (was {current.version})" if current else "")
    _event(session, model, "alias_moved", moved + (" overriding the gate" if failures else ""), principal.key_id,
           {"alias": alias, "version": version, "previous": current.version if current else None,
            "override": bool(failures), "failures": failures, "reason": reason})
    session.flush()
    return {"name": model.name, "alias": alias, "version": version, "previous": current.version if current else None,
            "override": bool(failures), "failures": failures}


def gate_failures(current: ModelVersion | None, candidate: ModelVersion, gate: Gate) -> list[dict]:
    """The gated metrics on which the candidate is worse than the current version beyond the tolerance."""
    if current is None or current.id == candidate.id:
        return []
    failures = []
    for metric, direction in gate.metrics:
        before, after = current.metrics.get(metric), candidate.metrics.get(metric)
        if before is None or not math.isfinite(before):
            continue
        if after is None or not math.isfinite(after):
            failures.append({"metric": metric, "current": before, "candidate": after,
                             "message": f"{metric} missing (current {before:.4g})"})
            continue
        slack = gate.tolerance * abs(before)
        worse = after > before + slack if direction == "min" else after < before - slack
        if worse:
            failures.append({"metric": metric, "current": before, "candidate": after,
                             "message": f"{metric} {after:.4g} vs {before:.4g} ({'lower' if direction == 'min' else 'higher'} is better)"})
    return failures


def delete_alias(session: Session, *, principal: Principal, name: str, alias: str) -> None:
    model = get_model(session, principal=principal, name=name)
    row = session.scalar(select(ModelAlias).where(ModelAlias.model_id == model.id, ModelAlias.alias == alias))
    if row is None:
        raise NotFound(f"{model.name} has no alias {alias!r}", details={"alias": alias})
    version = session.get(ModelVersion, row.version_id).version
    session.delete(row)
    _event(session, model, "alias_deleted", f"{model.name}@{alias} removed (was {version})", principal.key_id,
           {"alias": alias, "previous": version})


def delete_version(session: Session, *, principal: Principal, name: str, version: int, home: Path) -> None:
    """Conflict while an alias points at it; otherwise the row and its files go."""
    model, row = get_version(session, principal=principal, name=name, version=version)
    pointing = session.scalars(select(ModelAlias.alias).where(ModelAlias.version_id == row.id)).all()
    if pointing:
        raise Conflict(f"{model.name}:{version} is aliased as {', '.join(sorted(pointing))}; move the aliases first",
                       details={"aliases": sorted(pointing)}, code="version_in_use")
    session.delete(row)
    _event(session, model, "version_deleted", f"{model.name}:{version} deleted", principal.key_id, {"version": version})
    session.flush()
    shutil.rmtree(artifacts_dir(home, row.tenant_id, row.id), ignore_errors=True)


def describe_model(session: Session, model: RegisteredModel) -> dict:
    versions = session.scalars(select(ModelVersion).where(ModelVersion.model_id == model.id)
                               .order_by(ModelVersion.version)).all()
    by_id = {v.id: v.version for v in versions}
    aliases = session.scalars(select(ModelAlias).where(ModelAlias.model_id == model.id)).all()
    return {"id": model.id, "object": "model", "name": model.name, "base_model": model.base_model,
            "created_at": model.created_at, "latest_version": versions[-1].version if versions else None,
            "versions": [describe_version(model, v) for v in versions],
            "aliases": {a.alias: by_id[a.version_id] for a in sorted(aliases, key=lambda a: a.alias)}}


def describe_version(model: RegisteredModel, version: ModelVersion) -> dict:
    return {"id": version.id, "object": "model.version", "name": model.name, "version": version.version,
            "ref": f"{model.name}:{version.version}", "kind": version.kind, "job_id": version.job_id,
            "created_at": version.created_at, "metrics": version.metrics, "lineage": version.lineage,
            "evaluation": version.evaluation,
            "files": [{"path": p, **meta} for p, meta in sorted(version.files.items())]}


def model_events(session: Session, *, principal: Principal, name: str) -> list[ModelEvent]:
    model = get_model(session, principal=principal, name=name)
    return list(session.scalars(select(ModelEvent).where(ModelEvent.model_id == model.id).order_by(ModelEvent.id)))


def _lineage(session: Session, job: Job, summary: RunSummary, base_revision: str | None,
             evaluation: dict | None) -> dict:
    """What the version came from, and its reasoning contract (registry/contract.py) under "reasoning".
    `method_config` is the method as it trained: its type, the weights it trained and its own section (dpo's
    beta and loss, grpo's grader spec and reward terms), e.g. {"type": "dpo", "weights": "lora", "lora": {...},
    "dpo": {...}} (a job stores only its own method's section: jobs/service.py _stored)."""
    datasets = [session.get(Dataset, i) for i in (job.dataset_id, job.validation_dataset_id) if i]
    config = job.config
    think_mode = config.get("data", {}).get("think_mode", "mask")
    return {"job_id": job.id, "base_model": job.base_model, "base_revision": base_revision, "method": job.method,
            "method_config": config.get("method", {}),
            "datasets": [{"id": d.id, "filename": d.filename, "sha256": d.sha256} for d in datasets if d],
            "data_sha256": summary.data.sha256, "tokenizer_sha256": summary.tokenizer_sha256,
            "renderer_version": summary.renderer_version, "think_mode": think_mode,
            "reasoning": trained_contract(job.base_model, renderer_version=summary.renderer_version,
                                          reasoning_format=summary.reasoning_format, think_mode=think_mode,
                                          evaluation=evaluation),
            "hyperparameters": job.hyperparameters, "seed": job.seed, "config": config,
            "llmft_version": summary.llmft_version, "torch_version": summary.torch_version}


def _metrics(summary: RunSummary, evaluation: dict | None) -> dict:
    """The version's flat metrics: the run's and its evaluation's candidate side. eval_loss is the loss on the
    reference answers for every method: a supervised run's own validation loss, else (dpo, orpo, simpo: their
    validation loss is a preference loss, `preference_loss`; grpo: none) the evaluation's."""
    supervised = summary.method in (None, *METHODS)
    eval_loss = (summary.best_eval_loss if summary.best_checkpoint else summary.final_eval_loss) if supervised else None
    metrics = {"train_loss": summary.final_train_loss, "eval_loss": eval_loss,
               "perplexity": math.exp(min(eval_loss, 700)) if eval_loss is not None else None,
               "steps": summary.steps, "tokens_seen": summary.tokens_seen,
               "tokens_per_second": summary.tokens_per_second}
    metrics = {k: v for k, v in metrics.items() if v is not None}
    for key, value in ((evaluation or {}).get("candidate") or {}).items():
        if value is not None:
            metrics.setdefault(key, value)
    return metrics


def _event(session: Session, model: RegisteredModel, type_: str, message: str, actor: str | None, data: dict) -> None:
    session.add(ModelEvent(model_id=model.id, tenant_id=model.tenant_id, type=type_, message=message, actor=actor,
                           data=data))
