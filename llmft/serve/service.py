"""Inference requests as plain functions: what a model name means, the prompt, the limits, the submit.

    [reply] = generate(session, principal=p, settings=s, engine=e, model="support-bot@production",
                       chats=[[{"role": "user", "content": "hi"}]], max_tokens=64, temperature=0.6)
    reply.generation.results()       # or reply.generation.events() to stream
    reply.model, reply.prompt_tokens  # what the answer reports

The HTTP views (/v1/* and /api/v1/predict, generate, generate/batch) parse a request, call
`generate` and shape its replies; everything between lives here.

A model is named as a served base (`tiny-r1`), a version (`NAME:V`), an alias (`NAME@ALIAS`,
looked up on every request, so moving the alias switches what it serves with no restart), or a
bare `NAME` (its newest version). Names are scoped to the caller's tenant. A version's files are
checked against their recorded hashes the first time this process serves it, and again whenever
one of its files changed since.
"""

import threading
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from llmft.auth.keys import Principal
from llmft.bases.r1_tokenizer import THINK_OPEN
from llmft.bases.resolve import ModelNotFoundError
from llmft.config import ConfigError
from llmft.data.normalize import Message, characters
from llmft.data.tokenize import max_token_chars, prompt_ids
from llmft.db.tables import ModelAlias, ModelVersion, RegisteredModel
from llmft.errors import Conflict, Invalid, NotFound, ServiceError
from llmft.registry import service as registry
from llmft.registry.artifacts import IntegrityError, artifacts_dir
from llmft.serve.backend import Generation, InferenceBackend, ModelUnavailable, Target
from llmft.serve.sampling import Sampling
from llmft.serve.text import tokenizer_for
from llmft.settings import Settings

ROLES = ("system", "developer", "user", "assistant")


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
             temperature: float = 1.0, top_p: float = 1.0, stop: tuple[str, ...] = (), seed: int | None = None,
             n: int = 1, param: str = "messages") -> list[Reply]:
    """Queue one generation per chat of `chats` (OpenAI messages, through the model's chat template), or one
    for the raw `text` prompt (no template, no reasoning split); `n` choices each. The model is resolved and
    every prompt checked against the limits (a 400 naming `param`) before anything is queued."""
    target = target_for(session, principal=principal, model=model, settings=settings)
    try:
        tokenizer = tokenizer_for(target.base_model)
    except (ModelNotFoundError, ConfigError) as error:  # a built-in base that cannot be built here (offline)
        raise ModelUnavailable(str(error), details={"model": model}) from None
    if text is not None:
        check_characters(tokenizer, len(text), settings=settings, param=param)
        prompts = [(text_prompt(tokenizer, text), False)]
    else:
        conversations = [chat_messages(messages) for messages in chats]
        for conversation in conversations:
            check_characters(tokenizer, characters(conversation), settings=settings, param=param)
        prompts = [chat_prompt(tokenizer, conversation) for conversation in conversations]
    budgets = [check_limits(ids, max_tokens=max_tokens, settings=settings, param=param) for ids, _ in prompts]
    replies: list[Reply] = []
    try:
        for (ids, reasoning_open), budget in zip(prompts, budgets):
            sampling = Sampling(max_new_tokens=budget, temperature=temperature, top_p=top_p, stop=stop, seed=seed)
            generation = engine.submit(target, ids, sampling, reasoning_open=reasoning_open,
                                       split_reasoning=text is None, timeout=settings.inference_timeout_seconds, n=n)
            replies.append(Reply(target.label, len(ids), reasoning_open, generation))
    except BaseException:
        for reply in replies:
            reply.generation.cancel()
        raise
    return replies


_verified: dict[str, tuple] = {}  # version id -> its files' (path, size, mtime) when their hashes last matched
_verified_lock = threading.Lock()


def target_for(session: Session, *, principal: Principal, model: str, settings: Settings) -> Target:
    if model in settings.served_base_models:
        return Target(key=f"base:{model}", label=model, base_model=model)
    try:
        if ":" in model or "@" in model:
            registered, version = registry.resolve(session, principal=principal, ref=model)
        else:
            registered, version = _newest(session, principal, model)
    except (NotFound, Invalid):
        raise NotFound(f"no model {model!r}: name a served base ({', '.join(settings.served_base_models)}), "
                       f"NAME, NAME:VERSION or NAME@ALIAS of your models (GET /v1/models lists them)",
                       details={"param": "model"}, code="model_not_found") from None
    try:
        folder = _checked_folder(settings.llmft_home, version)
    except IntegrityError as error:
        raise Conflict(f"{registered.name}:{version.version} failed its integrity check and is not served: "
                       f"{error}", details={"param": "model"}, code="integrity_error") from None
    return Target(key=version.id, label=f"{registered.name}:{version.version}", base_model=registered.base_model,
                  kind=version.kind, folder=folder)


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
    """What `model` may name: served bases, then every version and alias of the tenant's models."""
    out = [{"id": name, "object": "model", "created": 0, "owned_by": "llmft"} for name in settings.served_base_models]
    models = session.scalars(select(RegisteredModel).where(RegisteredModel.tenant_id == principal.tenant_id)
                             .order_by(RegisteredModel.name)).all()
    for model in models:
        versions = session.scalars(select(ModelVersion).where(ModelVersion.model_id == model.id)
                                   .order_by(ModelVersion.version)).all()
        numbers = {version.id: version.version for version in versions}
        for version in versions:
            out.append({"id": f"{model.name}:{version.version}", "object": "model",
                        "created": int(version.created_at.timestamp()), "owned_by": principal.tenant_name,
                        "kind": version.kind, "base_model": model.base_model})
        aliases = session.scalars(select(ModelAlias).where(ModelAlias.model_id == model.id)
                                  .order_by(ModelAlias.alias)).all()
        for alias in aliases:
            out.append({"id": f"{model.name}@{alias.alias}", "object": "model",
                        "created": int(alias.updated_at.timestamp()) if alias.updated_at else 0,
                        "owned_by": principal.tenant_name, "points_to": f"{model.name}:{numbers[alias.version_id]}"})
    return out


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


def chat_prompt(tokenizer, messages: list[Message]) -> tuple[list[int], bool]:
    """Token ids of the generation prompt, and whether it ends inside an open think block. Special-token strings
    typed in a message are plain text there: a user cannot forge a turn."""
    ids, prompt = prompt_ids(tokenizer, messages)
    return ids, prompt.endswith(THINK_OPEN + "\n")


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


def check_limits(prompt_ids: list[int], *, max_tokens: int | None, settings: Settings, param: str = "messages") -> int:
    """The new-token budget for this request, or a 400 naming the limit (before any work is queued)."""
    if len(prompt_ids) > settings.inference_max_input_tokens:
        raise ContextTooLong(f"the prompt has {len(prompt_ids)} tokens; the limit is "
                             f"{settings.inference_max_input_tokens} (INFERENCE_MAX_INPUT_TOKENS)",
                             details={"param": param, "prompt_tokens": len(prompt_ids)})
    if max_tokens is not None and max_tokens > settings.inference_max_new_tokens:
        raise Invalid(f"max_tokens is {max_tokens}; the limit is {settings.inference_max_new_tokens} "
                      "(INFERENCE_MAX_NEW_TOKENS)", details={"param": "max_tokens"}, code="invalid_value")
    return max_tokens if max_tokens is not None else min(settings.inference_default_max_tokens,
                                                         settings.inference_max_new_tokens)
