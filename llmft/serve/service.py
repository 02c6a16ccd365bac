"""Inference requests as plain functions: what a model name means, the prompt, the limits, the submit.

    [reply] = generate(session, principal=p, settings=s, engine=e, model="support-bot@production",
                       chats=[[{"role": "user", "content": "hi"}]], max_tokens=64, temperature=0.6)
    reply.generation.results()       # or reply.generation.events() to stream
    reply.model, reply.prompt_tokens  # what the answer reports

The HTTP views (/v1/* and /api/v1/predict, generate, generate/batch) parse a request, call
`generate` and shape its replies; everything between lives here.

A model is named as a served base (`tiny-r1`), a version (`NAME:V`), an alias (`NAME@ALIAS`,
looked up on every request, so moving the alias switches what it serves with no restart), a
bare `NAME` (its newest version), or a fine-tune job's committed checkpoint (`JOB_ID:checkpoint-N`,
the id `fine_tuning.jobs.checkpoints.list` gives it). Names are scoped to the caller's tenant. A
version's files are checked against their recorded hashes the first time this process serves it,
and again whenever one of its files changed since. `served_models` lists the names, `describe_model`
and `delete_model` are GET and DELETE /v1/models/{model}.
"""

import re
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from llmft.auth.keys import Principal
from llmft.bases.r1_tokenizer import THINK_CLOSE, THINK_OPEN
from llmft.bases.resolve import ModelNotFoundError
from llmft.config import ConfigError
from llmft.data.normalize import Message, characters
from llmft.data.tokenize import max_token_chars, prompt_ids
from llmft.db.tables import Dataset, Job, ModelAlias, ModelVersion, RegisteredModel, is_id
from llmft.errors import Conflict, Invalid, NotFound, ServiceError
from llmft.registry import service as registry
from llmft.registry.artifacts import IntegrityError, artifacts_dir
from llmft.registry.contract import base_contract, run_reasoning, version_contract
from llmft.serve.backend import Generation, InferenceBackend, ModelUnavailable, Target
from llmft.serve.budgets import EFFORT_BUDGETS, effort_budget
from llmft.serve.sampling import Sampling
from llmft.serve.text import tokenizer_for
from llmft.settings import Settings
from llmft.train import checkpoints

ROLES = ("system", "developer", "user", "assistant")
OPENAI_SAMPLING = {"temperature": 1.0, "top_p": 1.0}  # what a request and its model's contract leave out (OpenAI's)
CHECKPOINT_NAME = re.compile(r"(?P<job>job-[0-9a-f]{16}):(?P<folder>checkpoint-[0-9]{1,12})")
LISTED_JOBS = 100  # GET /v1/models lists the checkpoints of the tenant's newest fine-tune jobs, this many


class ContextTooLong(ServiceError):
    status, code = 400, "context_length_exceeded"


@dataclass
class Reply:
    """A generation under way, with what its answer reports."""
    model: str              # the target's label: "tiny-r1", "support-bot:3"
    prompt_tokens: int
    reasoning_open: bool    # the prompt ends inside an open think block: the answer has a reasoning part
    generation: Generation


def generate(session: Session, *, principal: Principal, settings: Settings, engine: InferenceBackend, model: str,
             chats: list[list[dict]] | None = None, text: str | None = None, max_tokens: int | None = None,
             temperature: float | None = None, top_p: float | None = None, stop: tuple[str, ...] = (),
             seed: int | None = None, n: int = 1, thinking_token_budget: int | None = None,
             reasoning_effort: str | None = None, fallback: dict = OPENAI_SAMPLING,
             param: str = "messages") -> list[Reply]:
    """Queue one generation per chat of `chats` (OpenAI messages, through the model's chat template), or one
    for the raw `text` prompt (no template, no reasoning split); `n` choices each. The model is resolved and
    every prompt checked against the limits (a 400 naming `param`) before anything is queued.

    What the request leaves out (None) comes from the target's reasoning contract (registry/contract.py):
    temperature, top_p, max_tokens (within INFERENCE_MAX_NEW_TOKENS) and the thinking budget; where the contract
    says nothing either, from `fallback` and INFERENCE_DEFAULT_MAX_TOKENS (no thinking budget). A request names
    its thinking budget as thinking_token_budget (tokens) or reasoning_effort (low, medium, high: 512, 2048,
    8192 tokens, at most half of max_tokens), not both."""
    check_thinking(thinking_token_budget, reasoning_effort, settings=settings)
    target = target_for(session, principal=principal, model=model, settings=settings)
    try:
        tokenizer = tokenizer_for(target.base_model)
    except (ModelNotFoundError, ConfigError) as error:  # a built-in base that cannot be built here (offline)
        raise ModelUnavailable(str(error), details={"model": model}) from None
    if text is not None:
        check_characters(tokenizer, len(text), settings=settings, param=param)
        prompts = [(text_prompt(tokenizer, text), text.rfind(THINK_OPEN) > text.rfind(THINK_CLOSE))]
    else:
        conversations = [chat_messages(messages) for messages in chats]
        for conversation in conversations:
            check_characters(tokenizer, characters(conversation), settings=settings, param=param)
        prompts = [chat_prompt(tokenizer, conversation, target.contract) for conversation in conversations]
    contract = {key: value for key, value in (target.contract or {}).items() if value is not None}
    default_tokens = min(contract.get("max_tokens", settings.inference_default_max_tokens),
                         settings.inference_max_new_tokens)
    budgets = [check_limits(ids, max_tokens=max_tokens, default=default_tokens, settings=settings, param=param)
               for ids, _ in prompts]
    sampling = Sampling(temperature=_first(temperature, contract.get("temperature"), fallback["temperature"]),
                        top_p=_first(top_p, contract.get("top_p"), fallback["top_p"]), stop=stop, seed=seed,
                        repetition_window=settings.inference_repetition_window)
    replies: list[Reply] = []
    try:
        for (ids, reasoning_open), budget in zip(prompts, budgets):
            thinking = (effort_budget(reasoning_effort, budget) if reasoning_effort is not None
                        else _first(thinking_token_budget, contract.get("thinking_budget")))
            generation = engine.submit(target, ids, replace(sampling, max_new_tokens=budget, thinking_budget=thinking),
                                       reasoning_open=reasoning_open, split_reasoning=text is None,
                                       timeout=settings.inference_timeout_seconds, n=n)
            replies.append(Reply(target.label, len(ids), reasoning_open, generation))
    except BaseException:
        for reply in replies:
            reply.generation.cancel()
        raise
    return replies


def check_thinking(budget: int | None, effort: str | None, *, settings: Settings) -> None:
    """A 400 naming the field: a budget outside 0..INFERENCE_MAX_NEW_TOKENS, an unknown effort, or both given."""
    if budget is not None and effort is not None:
        raise Invalid("give reasoning_effort or thinking_token_budget, not both", code="invalid_value",
                      details={"param": "thinking_token_budget", "fields": ["reasoning_effort", "thinking_token_budget"]})
    if effort is not None and effort not in EFFORT_BUDGETS:
        raise Invalid(f"reasoning_effort is {effort!r}; one of {', '.join(EFFORT_BUDGETS)}",
                      details={"param": "reasoning_effort"}, code="invalid_value")
    if budget is not None and not (isinstance(budget, int) and 0 <= budget <= settings.inference_max_new_tokens):
        raise Invalid(f"thinking_token_budget is {budget!r}; 0 to {settings.inference_max_new_tokens} "
                      "(INFERENCE_MAX_NEW_TOKENS)", details={"param": "thinking_token_budget"}, code="invalid_value")


def _first(*values):
    """The first value that is not None (None when all are)."""
    return next((value for value in values if value is not None), None)


_verified: dict[str, tuple] = {}  # version id -> its files' (path, size, mtime) when their hashes last matched
_verified_lock = threading.Lock()


def target_for(session: Session, *, principal: Principal, model: str, settings: Settings) -> Target:
    if model in settings.served_base_models:
        return Target(key=f"base:{model}", label=model, base_model=model, contract=target_contract(model),
                      tenant=principal.tenant_id)
    if CHECKPOINT_NAME.fullmatch(model):
        return _checkpoint_target(session, principal=principal, model=model, settings=settings)
    try:
        if ":" in model or "@" in model:
            registered, version = registry.resolve(session, principal=principal, ref=model)
        else:
            registered, version = _newest(session, principal, model)
    except (NotFound, Invalid):
        raise _unknown(model, settings) from None
    try:
        folder = _checked_folder(settings.llmft_home, version)
    except IntegrityError as error:
        raise Conflict(f"{registered.name}:{version.version} failed its integrity check and is not served: "
                       f"{error}", details={"param": "model"}, code="integrity_error") from None
    return Target(key=version.id, label=f"{registered.name}:{version.version}", base_model=registered.base_model,
                  kind=version.kind, folder=folder,
                  contract=target_contract(registered.base_model, (version.lineage or {}).get("reasoning")))


def _unknown(model: str, settings: Settings) -> NotFound:
    """The one answer for a name that means nothing to the caller (another tenant's included)."""
    return NotFound(f"no model {model!r}: name a served base ({', '.join(settings.served_base_models)}), NAME, "
                    f"NAME:VERSION, NAME@ALIAS or JOB_ID:checkpoint-N of your models (GET /v1/models lists them)",
                    details={"param": "model"}, code="model_not_found")


def _checkpoint_target(session: Session, *, principal: Principal, model: str, settings: Settings) -> Target:
    """A committed checkpoint's weights (a LoRA adapter on the job's base, or full weights), safetensors only.
    The cache key holds the marker's time: a checkpoint written again under the same name is loaded afresh."""
    job, folder = _checkpoint(session, principal=principal, model=model, settings=settings)
    kind = _weights_kind(folder)
    if kind is None:
        raise Conflict(f"{model} holds no safetensors weights (adapter_model.safetensors or model.safetensors) and "
                       "is not served", details={"param": "model"}, code="checkpoint_not_servable")
    try:
        written = (folder / checkpoints.MARKER).stat().st_mtime_ns
    except FileNotFoundError:  # rotated away just now
        raise _unknown(model, settings) from None
    return Target(key=f"checkpoint:{job.id}:{folder.name}:{written}", label=model, base_model=job.base_model,
                  kind=kind, folder=folder, contract=target_contract(job.base_model, run=_run_data(session, job)))


def _checkpoint(session: Session, *, principal: Principal, model: str, settings: Settings) -> tuple[Job, Path]:
    """`JOB_ID:checkpoint-N` -> the job and the folder, found among the job's committed checkpoints (never a path
    built from the name). Another tenant's job, an unknown one, or a checkpoint rotated away: model_not_found."""
    match = CHECKPOINT_NAME.fullmatch(model)
    job = session.get(Job, match["job"]) if match and is_id(match["job"], "job") else None
    if job is None or job.tenant_id != principal.tenant_id or job.kind != "fine_tune":
        raise _unknown(model, settings)
    found = checkpoints.committed(Path(job.config["output"]["output_dir"]))
    folder = next((path for path in found if path.name == match["folder"]), None)
    if folder is None:
        kept = ", ".join(path.name for path in found) or "none"
        raise NotFound(f"{job.id} has no committed {match['folder']} (kept now: {kept}; save_total_limit drops the "
                       "oldest)", details={"param": "model"}, code="model_not_found")
    return job, folder


def _weights_kind(folder: Path) -> str | None:
    if (folder / "adapter_model.safetensors").is_file() and (folder / "adapter_config.json").is_file():
        return "adapter"
    if (folder / "model.safetensors").is_file() or (folder / "model.safetensors.index.json").is_file():
        return "full"
    return None


def _checked_folder(home: Path, version: ModelVersion) -> Path:
    """The version's artifact folder; its files' hashes checked unless they were, unchanged, already."""
    folder = artifacts_dir(home, version.tenant_id, version.id)
    stamp = tuple(sorted((path.relative_to(folder).as_posix(), path.stat().st_size, path.stat().st_mtime_ns)
                         for path in folder.rglob("*") if path.is_file()))
    with _verified_lock:
        if _verified.get(version.id) == stamp:
            return folder
    registry.verified_folder(home, version)
    with _verified_lock:
        _verified[version.id] = stamp
    return folder


def _newest(session: Session, principal: Principal, name: str) -> tuple[RegisteredModel, ModelVersion]:
    registered = registry.get_model(session, principal=principal, name=name)
    newest = session.scalar(select(func.max(ModelVersion.version)).where(ModelVersion.model_id == registered.id))
    if newest is None:
        raise NotFound(f"{name} has no versions")
    return registry.get_version(session, principal=principal, name=registered.name, version=newest)


def served_models(session: Session, *, principal: Principal, settings: Settings) -> list[dict]:
    """What `model` may name: served bases, every version and alias of the tenant's models, then the committed
    checkpoints of its newest LISTED_JOBS fine-tune jobs (newest job first, newest checkpoint first)."""
    out = [_base_object(name) for name in settings.served_base_models]
    models = session.scalars(select(RegisteredModel).where(RegisteredModel.tenant_id == principal.tenant_id)
                             .order_by(RegisteredModel.name)).all()
    for model in models:
        versions = session.scalars(select(ModelVersion).where(ModelVersion.model_id == model.id)
                                   .order_by(ModelVersion.version)).all()
        numbers = {version.id: version.version for version in versions}
        out += [_version_object(principal, model, version) for version in versions]
        aliases = session.scalars(select(ModelAlias).where(ModelAlias.model_id == model.id)
                                  .order_by(ModelAlias.alias)).all()
        out += [_alias_object(principal, model, alias, numbers[alias.version_id]) for alias in aliases]
    jobs = session.scalars(select(Job).where(Job.tenant_id == principal.tenant_id, Job.kind == "fine_tune")
                           .order_by(Job.created_at.desc(), Job.id.desc()).limit(LISTED_JOBS)).all()
    for job in jobs:
        for folder in reversed(checkpoints.committed(Path(job.config["output"]["output_dir"]))):
            out.append(_checkpoint_object(principal, job, folder))
    return out


def describe_model(session: Session, *, principal: Principal, settings: Settings, model: str) -> dict:
    """GET /v1/models/{model}: the object /v1/models lists for that name (a bare NAME: its newest version's, under
    the name asked); model_not_found, the same as for an inference request, otherwise."""
    if model in settings.served_base_models:
        return _base_object(model)
    if CHECKPOINT_NAME.fullmatch(model):
        return _checkpoint_object(principal, *_checkpoint(session, principal=principal, model=model, settings=settings))
    match = registry.REF.fullmatch(model)
    try:
        if match is not None and match["alias"]:
            registered, version = registry.resolve(session, principal=principal, ref=model)
            alias = session.scalar(select(ModelAlias).where(ModelAlias.model_id == registered.id,
                                                            ModelAlias.alias == match["alias"]))
            return _alias_object(principal, registered, alias, version.version)
        if match is not None:
            return _version_object(principal, *registry.resolve(session, principal=principal, ref=model))
        registered, version = _newest(session, principal, model)
    except (NotFound, Invalid):
        raise _unknown(model, settings) from None
    return {**_version_object(principal, registered, version), "id": model,
            "points_to": f"{registered.name}:{version.version}"}


def delete_model(session: Session, *, principal: Principal, settings: Settings, model: str) -> dict:
    """DELETE /v1/models/{model}: a version `NAME:V` goes with its files, under the registry's guard (409 while an
    alias points at it). A base, an alias, a bare NAME or a checkpoint is not deleted: a 400 saying what can be
    (an alias is removed with DELETE /api/v1/models/NAME/aliases/ALIAS; a job's checkpoints go with its runs
    folder, and one still serves its job's resume). Unknown names are model_not_found, as for inference."""
    described = describe_model(session, principal=principal, settings=settings, model=model)
    match = registry.REF.fullmatch(model)
    if match is None or not match["version"]:
        kind = "a served base" if model in settings.served_base_models else \
            "a checkpoint" if CHECKPOINT_NAME.fullmatch(model) else \
            "an alias" if match is not None else f"a model name (its newest version is {described['points_to']})"
        raise ServiceError(f"{model!r} is {kind}; only a version, NAME:VERSION, can be deleted here",
                           details={"param": "model"}, code="model_not_deletable")
    registry.delete_version(session, principal=principal, name=match["name"], version=int(match["version"]),
                            home=settings.llmft_home)
    return {"id": model, "object": "model", "deleted": True}


def _base_object(name: str) -> dict:
    return {"id": name, "object": "model", "created": 0, "owned_by": "llmft"}


def _version_object(principal: Principal, model: RegisteredModel, version: ModelVersion) -> dict:
    return {"id": f"{model.name}:{version.version}", "object": "model", "created": int(version.created_at.timestamp()),
            "owned_by": principal.tenant_name, "kind": version.kind, "base_model": model.base_model}


def _alias_object(principal: Principal, model: RegisteredModel, alias: ModelAlias, number: int) -> dict:
    return {"id": f"{model.name}@{alias.alias}", "object": "model",
            "created": int(alias.updated_at.timestamp()) if alias.updated_at else 0,
            "owned_by": principal.tenant_name, "points_to": f"{model.name}:{number}"}


def _checkpoint_object(principal: Principal, job: Job, folder: Path) -> dict:
    try:
        written = int((folder / checkpoints.MARKER).stat().st_mtime)
    except FileNotFoundError:  # rotated away while listing
        written = 0
    return {"id": f"{job.id}:{folder.name}", "object": "model", "created": written, "owned_by": principal.tenant_name,
            "kind": "checkpoint", "base_model": job.base_model, "fine_tuning_job_id": job.id,
            "step": int(folder.name.removeprefix(checkpoints.PREFIX))}


def chat_messages(raw: list[dict]) -> list[Message]:
    """OpenAI chat messages to ours: content as a string or a list of text parts; roles checked."""
    messages = []
    for index, item in enumerate(raw):
        role, content = item.get("role"), item.get("content")
        if role not in ROLES:
            raise Invalid(f"messages[{index}].role is {role!r}; llmft serves {', '.join(ROLES)}",
                          details={"param": f"messages[{index}].role"})
        if isinstance(content, list):
            if not all(isinstance(part, dict) and part.get("type") == "text" and isinstance(part.get("text"), str)
                       for part in content):
                raise Invalid(f"messages[{index}].content: only text parts ({{'type': 'text', 'text': ...}}) "
                              "are served", details={"param": f"messages[{index}].content"})
            content = "".join(part["text"] for part in content)
        if content is None and role == "assistant":
            content = ""
        if not isinstance(content, str):
            raise Invalid(f"messages[{index}].content must be a string or a list of text parts",
                          details={"param": f"messages[{index}].content"})
        check_text(content, f"messages[{index}].content")
        reasoning = item.get("reasoning_content")
        if reasoning is not None and not isinstance(reasoning, str):
            raise Invalid(f"messages[{index}].reasoning_content must be a string, not {type(reasoning).__name__}",
                          details={"param": f"messages[{index}].reasoning_content"})
        messages.append(Message("system" if role == "developer" else role, content,
                                check_text(reasoning, f"messages[{index}].reasoning_content") if reasoning is not None else None))
    if not messages:
        raise Invalid("messages is empty", details={"param": "messages"})
    return messages


def check_text(text: str, param: str) -> str:
    """Text a tokenizer can take: valid Unicode (no lone surrogates, which JSON can carry)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as error:
        raise Invalid(f"{param} is not valid Unicode text (a lone surrogate at character {error.start})",
                      details={"param": param}) from None
    return text


def chat_prompt(tokenizer, messages: list[Message], contract: dict | None = None) -> tuple[list[int], bool]:
    """Token ids of the generation prompt, and whether it ends inside an open think block: rendered by the
    training renderer in the version's reasoning format and think mode (its `contract`; None: as the base is
    served), so the ids are those training put before the answer. Special-token strings typed in a message are
    plain text there: a user cannot forge a turn."""
    contract = contract or {}
    ids, prompt = prompt_ids(tokenizer, messages, reasoning_format=contract.get("reasoning_format"),
                             think_mode=contract.get("think_mode"))
    return ids, prompt.endswith(THINK_OPEN + "\n")


def target_contract(base_model: str, reasoning: dict | None = None, *, run: tuple[dict, bool] | None = None) -> dict:
    """The reasoning contract a target is served under: a version's recorded one (`reasoning`, from its lineage)
    or what a run's (data options, data has reasoning) fix of it (`run`, a checkpoint), over its base's
    (registry/contract.py)."""
    try:
        tokenizer = tokenizer_for(base_model)
        if run is not None:
            reasoning = run_reasoning(tokenizer, data=run[0], has_reasoning=run[1])
        return version_contract(base_contract(base_model, tokenizer=tokenizer), reasoning)
    except (ModelNotFoundError, ConfigError) as error:  # a built-in base that cannot be built here (offline)
        raise ModelUnavailable(str(error), details={"model": base_model}) from None


def _run_data(session: Session, job: Job) -> tuple[dict, bool]:
    """A job's data options, and whether its dataset has reasoning (its upload report says; unknown: yes)."""
    dataset = session.get(Dataset, job.dataset_id) if job.dataset_id else None
    has_reasoning = dataset is None or bool((dataset.report or {}).get("with_reasoning", 1))
    return (job.config or {}).get("data", {}), has_reasoning


def check_characters(tokenizer, characters: int, *, settings: Settings, param: str) -> None:
    """A 400 before any tokenizing when the text has more characters than the token limit can hold."""
    bound = settings.inference_max_input_tokens * max_token_chars(tokenizer)
    if characters > bound:
        raise ContextTooLong(f"the prompt has {characters} characters, more than {settings.inference_max_input_tokens} "
                             f"tokens (INFERENCE_MAX_INPUT_TOKENS) can hold", details={"param": param, "characters": characters})


def text_prompt(tokenizer, text: str) -> list[int]:
    """A raw completion prompt: the text as is, after the model's BOS token when it has one."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    return ([tokenizer.bos_token_id] if tokenizer.bos_token_id is not None else []) + ids


def check_limits(prompt_ids: list[int], *, max_tokens: int | None, default: int, settings: Settings,
                 param: str = "messages") -> int:
    """The new-token budget for this request, or a 400 naming the limit (before any work is queued)."""
    if len(prompt_ids) > settings.inference_max_input_tokens:
        raise ContextTooLong(f"the prompt has {len(prompt_ids)} tokens; the limit is "
                             f"{settings.inference_max_input_tokens} (INFERENCE_MAX_INPUT_TOKENS)",
                             details={"param": param, "prompt_tokens": len(prompt_ids)})
    if max_tokens is not None and max_tokens > settings.inference_max_new_tokens:
        raise Invalid(f"max_tokens is {max_tokens}; the limit is {settings.inference_max_new_tokens} "
                      "(INFERENCE_MAX_NEW_TOKENS)", details={"param": "max_tokens"}, code="invalid_value")
    return max_tokens if max_tokens is not None else default
