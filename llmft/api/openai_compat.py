"""/v1: the OpenAI protocol, so applications and the official clients call llmft unchanged.

    from openai import OpenAI
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key=LLMFT_KEY)
    client.models.list()
    client.chat.completions.create(model="support-bot@production", messages=[...], stream=True)

`model` is a served base, `NAME`, `NAME:V` or `NAME@ALIAS` of the caller's tenant. A reasoning
model's thinking comes back as `reasoning_content` on the message (and on stream deltas), apart
from `content`, as DeepSeek's API does. Errors use OpenAI's shape,
`{"error": {"message", "type", "param", "code"}}`, so the client raises its own exception types.

Sampling a request leaves out comes from the model's reasoning contract (registry/contract.py:
DeepSeek's temperature 0.6, top_p 0.95 and 32768 tokens for R1; a base's generation_config.json;
what a version was trained with), then OpenAI's defaults (1, 1) and INFERENCE_DEFAULT_MAX_TOKENS.
Thinking is capped by `thinking_token_budget` (vLLM's name, in the body: `extra_body=` with the
client) or `reasoning_effort` (low, medium, high: 512, 2048, 8192 tokens, at most half of
max_tokens), not both; by default the contract's budget. At the budget the server writes
`\n</think>\n\n` itself and the answer follows. `usage.completion_tokens_details.reasoning_tokens`
counts the think block's tokens (its closing tag included), streamed usage too. Besides `stop` and
`length`, finish_reason may be `repetition`: the last INFERENCE_REPETITION_WINDOW tokens repeated
one block of 1 to 32 tokens, and the generation was ended.
"""

import json
import time
import uuid

from apiflask import APIBlueprint, Schema, fields, validators
from flask import Response, request
from marshmallow import ValidationError, pre_load

from llmft.api import streams
from llmft.api.auth import auth, principal
from llmft.api.context import db, engine, settings
from llmft.api.text import Text
from llmft.errors import Invalid, ServiceError
from llmft.serve.backend import Completion, Generation
from llmft.serve.budgets import EFFORT_BUDGETS
from llmft.serve.service import check_text, generate, served_models

bp = APIBlueprint("openai", __name__, tag="OpenAI-compatible")

# OpenAI parameters llmft does not implement: refused by name rather than ignored.
UNSUPPORTED = ("tools", "tool_choice", "functions", "function_call", "logprobs", "top_logprobs", "logit_bias",
               "response_format", "parallel_tool_calls", "audio", "modalities", "prediction", "echo", "suffix",
               "best_of", "web_search_options")
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "invalid_request_error", 409: "invalid_request_error", 413: "invalid_request_error",
               422: "invalid_request_error", 429: "rate_limit_error"}


class StreamOptions(Schema):
    include_usage = fields.Boolean(load_default=False)


class _GenerationIn(Schema):
    model = Text(required=True, validate=validators.Length(1, 200))
    max_tokens = fields.Integer(validate=validators.Range(min=1), allow_none=True, metadata={"description": (
        "default: the model's contract (32768 for R1), else INFERENCE_DEFAULT_MAX_TOKENS; at most "
        "INFERENCE_MAX_NEW_TOKENS")})
    max_completion_tokens = fields.Integer(validate=validators.Range(min=1), allow_none=True)
    temperature = fields.Float(load_default=None, allow_none=True, validate=validators.Range(0, 2), metadata={
        "description": "default: the model's recommended value (its reasoning contract: 0.6 for DeepSeek-R1), else 1"})
    top_p = fields.Float(load_default=None, allow_none=True, validate=validators.Range(0, 1, min_inclusive=False),
                         metadata={"description": "default: the model's recommended value (0.95 for R1), else 1"})
    reasoning_effort = fields.String(load_default=None, allow_none=True,
                                     validate=validators.OneOf(list(EFFORT_BUDGETS)), metadata={"description": (
                                         "low, medium, high: a thinking budget of 512, 2048, 8192 tokens (at most "
                                         "half of max_tokens); not with thinking_token_budget")})
    thinking_token_budget = fields.Integer(load_default=None, allow_none=True, validate=validators.Range(min=0),
                                           metadata={"description": (
                                               "most tokens inside the think block (vLLM's name); then the server "
                                               "writes \n</think>\n\n itself and the answer follows. Default: the "
                                               "model's contract (16384 for R1), at most INFERENCE_MAX_NEW_TOKENS")})
    stop = fields.Raw(load_default=None, allow_none=True, metadata={"description": "a string or up to 4 strings"})
    seed = fields.Integer(load_default=None, allow_none=True, validate=validators.Range(0, 2**63 - 1))
    n = fields.Integer(load_default=1, allow_none=True, validate=validators.Range(1, 8))
    stream = fields.Boolean(load_default=False, allow_none=True)
    stream_options = fields.Nested(StreamOptions, load_default=None, allow_none=True)
    presence_penalty = fields.Float(load_default=0, validate=validators.Equal(0, error="only 0 is supported"))
    frequency_penalty = fields.Float(load_default=0, validate=validators.Equal(0, error="only 0 is supported"))
    user = Text(load_default=None, allow_none=True)
    store = fields.Boolean(load_default=None, allow_none=True, validate=validators.OneOf([False, None]))
    metadata = fields.Dict(load_default=None, allow_none=True)

    @pre_load
    def _refuse_unsupported(self, data, **kwargs):
        if isinstance(data, dict):
            refused = {key: [f"{key} is not supported by llmft"] for key in UNSUPPORTED
                       if key in data and data[key] not in (None, False)}
            if refused:
                raise ValidationError(refused)
        return data


class ChatIn(_GenerationIn):
    messages = fields.List(fields.Dict(), required=True, validate=validators.Length(1, 1000),
                           metadata={"description": "role system|developer|user|assistant, content text"})


class CompletionIn(_GenerationIn):
    prompt = fields.Raw(required=True, metadata={"description": "a string (or a list holding one string)"})


class ModelsOut(Schema):
    object = fields.String()
    data = fields.List(fields.Dict())


@bp.get("/models")
@bp.auth_required(auth)
@bp.output(ModelsOut)
@bp.doc(summary="Models you can call: served bases, your versions (NAME:V) and aliases (NAME@ALIAS)")
def list_models():
    with db() as session:
        return {"object": "list", "data": served_models(session, principal=principal(), settings=settings())}


@bp.post("/chat/completions")
@bp.auth_required(auth)
@bp.input(ChatIn, arg_name="body")
@bp.doc(summary="Chat completion (OpenAI protocol; reasoning_content apart from content)",
        responses={200: "a chat.completion, or chat.completion.chunk events when stream is true",
                   400: "a parameter is wrong or a limit is passed", 404: "no such model",
                   429: "too many streams open; see Retry-After", 503: "busy; see Retry-After"})
def chat_completions(body):
    if body["stream"]:
        with streams.admit(principal()) as slot:
            reply, meta = _chat(body)
            return _stream(slot, reply.generation, _chat_chunks(reply.generation, meta, reply.prompt_tokens, body))
    reply, meta = _chat(body)
    results = reply.generation.results()
    choices = [{"index": i, "message": _message(result, reply.reasoning_open), "finish_reason": result.finish_reason,
                "logprobs": None} for i, result in enumerate(results)]
    return {**meta, "object": "chat.completion", "choices": choices, "usage": _usage(reply.prompt_tokens, results)}


@bp.post("/completions")
@bp.auth_required(auth)
@bp.input(CompletionIn, arg_name="body")
@bp.doc(summary="Text completion (OpenAI protocol): the prompt as is, no chat template",
        responses={200: "a text_completion, or chunks when stream is true", 400: "a parameter is wrong",
                   404: "no such model", 429: "too many streams open; see Retry-After",
                   503: "busy; see Retry-After"})
def completions(body):
    prompt = body["prompt"]
    if isinstance(prompt, list) and len(prompt) == 1:
        prompt = prompt[0]
    if not isinstance(prompt, str):
        raise Invalid("prompt must be a string (a list of several prompts is not supported; send one request each)",
                      details={"param": "prompt"})
    check_text(prompt, "prompt")
    if body["stream"]:
        with streams.admit(principal()) as slot:
            reply, meta = _complete(body, prompt)
            return _stream(slot, reply.generation, _text_chunks(reply.generation, meta, reply.prompt_tokens, body))
    reply, meta = _complete(body, prompt)
    results = reply.generation.results()
    choices = [{"index": i, "text": result.content, "finish_reason": result.finish_reason, "logprobs": None}
               for i, result in enumerate(results)]
    return {**meta, "object": "text_completion", "choices": choices, "usage": _usage(reply.prompt_tokens, results)}


def _chat(body: dict) -> tuple:
    with db() as session:
        [reply] = generate(session, **_generation_args(body), chats=[body["messages"]], param="messages")
    return reply, {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": reply.model}


def _complete(body: dict, prompt: str) -> tuple:
    with db() as session:
        [reply] = generate(session, **_generation_args(body), text=prompt, param="prompt")
    return reply, {"id": f"cmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": reply.model}


@bp.after_app_request
def _openai_errors(response):
    """On /v1, our error shape becomes OpenAI's (and a validation 422 a 400, as OpenAI answers)."""
    if not request.path.startswith("/v1/") or response.status_code < 400 or not response.is_json:
        return response
    error = (response.get_json(silent=True) or {}).get("error")
    if not isinstance(error, dict) or "details" not in error:
        return response
    status = 400 if response.status_code == 422 else response.status_code
    param, message = _param_and_message(error)
    body = {"error": {"message": message, "type": ERROR_TYPES.get(status, "server_error"), "param": param,
                      "code": error.get("code"), "details": error["details"]}}  # details: our own shape, kept
    response.set_data(json.dumps(body, ensure_ascii=False))
    response.status_code = status
    return response


def _param_and_message(error: dict) -> tuple[str | None, str]:
    details = error.get("details") or {}
    fields_ = next((details[where] for where in ("json", "query", "form_and_files") if details.get(where)), None)
    if isinstance(fields_, dict) and fields_:
        problems = [f"{path}: {message}" for path, message in _flatten(fields_)]
        return problems[0].split(":")[0], "invalid request: " + "; ".join(problems)
    return details.get("param"), error.get("message") or ""


def _flatten(tree, prefix: str = ""):
    for key, value in tree.items():
        path = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            yield from _flatten(value, path)
        else:
            yield path, " ".join(value) if isinstance(value, list) else str(value)


def _generation_args(body: dict) -> dict:
    """`generate`'s arguments from an OpenAI request (nulls mean the defaults)."""
    return {"principal": principal(), "settings": settings(), "engine": engine(), "model": body["model"],
            "max_tokens": body.get("max_completion_tokens") or body.get("max_tokens"),
            "temperature": body["temperature"], "top_p": body["top_p"], "stop": _stops(body["stop"]),
            "seed": body["seed"], "n": body["n"] or 1, "thinking_token_budget": body["thinking_token_budget"],
            "reasoning_effort": body["reasoning_effort"]}


def _stops(value) -> tuple[str, ...]:
    stops = [value] if isinstance(value, str) else value if value is not None else []
    if not isinstance(stops, list) or len(stops) > 4 or not all(isinstance(s, str) and 0 < len(s) <= 200 for s in stops):
        raise Invalid("stop must be a string or a list of up to 4 non-empty strings", details={"param": "stop"})
    return tuple(check_text(stop, "stop") for stop in stops)


def _message(result: Completion, reasoning_open: bool) -> dict:
    reasoning = result.reasoning if (reasoning_open or result.reasoning) else None
    return {"role": "assistant", "content": result.content, "reasoning_content": reasoning}


def _usage(prompt_tokens: int, results: list[Completion]) -> dict:
    """OpenAI's usage: reasoning_tokens are those of the think block (its closing tag included), part of
    completion_tokens."""
    completion = sum(result.completion_tokens for result in results)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion, "total_tokens": prompt_tokens + completion,
            "completion_tokens_details": {"reasoning_tokens": sum(result.reasoning_tokens for result in results)}}


def _chat_chunks(generation: Generation, meta: dict, prompt_tokens: int, body: dict):
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    usage = {"usage": None} if include_usage else {}
    chunk = lambda choices: {**meta, "object": "chat.completion.chunk", "choices": choices, **usage}
    done, started = [], False
    for index, kind, value in generation.events():
        if not started:  # after the first event: a model that cannot load fails before the stream starts
            started = True
            yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}
                         for i in range(len(generation.requests))])
        if kind == "done":
            done.append(value)
            yield chunk([{"index": index, "delta": {}, "finish_reason": value.finish_reason}])
        else:
            key = "reasoning_content" if kind == "reasoning" else "content"
            yield chunk([{"index": index, "delta": {key: value}, "finish_reason": None}])
    if include_usage:
        yield {**meta, "object": "chat.completion.chunk", "choices": [], "usage": _usage(prompt_tokens, done)}


def _text_chunks(generation: Generation, meta: dict, prompt_tokens: int, body: dict):
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    usage = {"usage": None} if include_usage else {}
    done = []
    for index, kind, value in generation.events():
        text, finish = ("", value.finish_reason) if kind == "done" else (value, None)
        if kind == "done":
            done.append(value)
        yield {**meta, "object": "text_completion", "choices": [{"index": index, "text": text, "logprobs": None,
                                                                 "finish_reason": finish}], **usage}
    if include_usage:
        yield {**meta, "object": "text_completion", "choices": [], "usage": _usage(prompt_tokens, done)}


def _stream(slot: streams.Slot, generation: Generation, chunks) -> Response:
    """Server-sent events in the stream's slot (api/streams.py). The first chunk is produced before answering, so
    a model that fails to load is still a plain HTTP error; a failure later ends the stream with an error event."""
    try:
        first = next(chunks)
    except BaseException:
        generation.cancel()
        raise

    def body():
        try:
            yield _event(first)
            for chunk in chunks:
                yield _event(chunk)
            yield "data: [DONE]\n\n"
        except ServiceError as error:
            yield _event({"error": {"message": error.message, "type": "server_error", "param": None,
                                    "code": error.code}})
        finally:
            generation.cancel()  # the client went away (or all is done: then it changes nothing)

    return slot.response(body())


def _event(chunk: dict) -> str:
    return f"data: {json.dumps(chunk, ensure_ascii=False)}\n\n"
