"""The v0 API's inference endpoints (docs/architecture.md, "The v0 API"), on the same engine as /v1.

    POST /api/v1/predict         {"text", "max_length"?, "temperature"?, "model"?}   -> answer, reasoning, usage
    POST /api/v1/generate        {"prompt", "max_new_tokens"?, "temperature"?, "top_p"?, "stop"?, "seed"?, "model"?}
    POST /api/v1/generate/batch  {"prompts": [...], same knobs}                      -> {"results": [...]}

`text` and `prompt` are a user message, sent through the model's chat template; `model` is as on
/v1 (a served base, NAME, NAME:V or NAME@ALIAS) and defaults to the first served base model.
`max_length` counts new tokens, as the v0 API used it. A batch's prompts are submitted
together and decoded in one batch. Sampling left out comes from the model's reasoning contract,
then 0.6 / 0.95; `reasoning_effort` or `thinking_token_budget` cap the thinking as on /v1
(api/openai_compat.py), and usage.completion_tokens_details.reasoning_tokens counts it.
"""

from apiflask import APIBlueprint, Schema, fields, validators

from llmft.api.auth import auth, principal
from llmft.api.context import db, engine, settings
from llmft.api.text import Text
from llmft.errors import Invalid
from llmft.serve import service
from llmft.serve.backend import Completion
from llmft.serve.budgets import EFFORT_BUDGETS

bp = APIBlueprint("predict", __name__, tag="inference (v0 API)")
V0_SAMPLING = {"temperature": 0.6, "top_p": 0.95}  # DeepSeek-R1's, where neither request nor contract sets them


class _Knobs(Schema):
    model = Text(load_default=None, validate=validators.Length(1, 200),
                 metadata={"description": "a served base, NAME, NAME:V or NAME@ALIAS; default: the first served base"})
    temperature = fields.Float(load_default=None, validate=validators.Range(0, 2), metadata={
        "description": "0 = greedy; default: the model's contract (DeepSeek-R1: 0.6), else 0.6"})
    top_p = fields.Float(load_default=None, validate=validators.Range(0, 1, min_inclusive=False),
                         metadata={"description": "default: the model's contract (R1: 0.95), else 0.95"})
    stop = fields.List(Text(validate=validators.Length(1, 200)), load_default=list, validate=validators.Length(max=4))
    seed = fields.Integer(load_default=None, validate=validators.Range(0, 2**63 - 1))
    reasoning_effort = fields.String(load_default=None, validate=validators.OneOf(list(EFFORT_BUDGETS)), metadata={
        "description": "low, medium, high: a thinking budget of 512, 2048, 8192 tokens (at most half the new tokens)"})
    thinking_token_budget = fields.Integer(load_default=None, validate=validators.Range(min=0), metadata={
        "description": "most tokens inside the think block, then the server closes it; default: the model's contract"})


class PredictIn(_Knobs):
    text = Text(required=True, validate=validators.Length(1, 200_000))
    max_length = fields.Integer(load_default=None, validate=validators.Range(min=1),
                                metadata={"description": "most new tokens"})


class GenerateIn(_Knobs):
    prompt = Text(required=True, validate=validators.Length(1, 200_000))
    max_new_tokens = fields.Integer(load_default=None, validate=validators.Range(min=1))


class BatchIn(_Knobs):
    prompts = fields.List(Text(validate=validators.Length(1, 200_000)), required=True, validate=validators.Length(1, 64))
    max_new_tokens = fields.Integer(load_default=None, validate=validators.Range(min=1))


class Usage(Schema):
    prompt_tokens = fields.Integer()
    completion_tokens = fields.Integer()
    total_tokens = fields.Integer()
    completion_tokens_details = fields.Dict(metadata={"description": "reasoning_tokens: the think block's, as OpenAI"})


class AnswerOut(Schema):
    model = fields.String(metadata={"description": "the version that answered (NAME:V) or the base"})
    answer = fields.String(metadata={"description": "the answer, reasoning removed"})
    text = fields.String(metadata={"description": "the same answer (the v0 API's field name)"})
    reasoning = fields.String(allow_none=True, metadata={"description": "the model's thinking, apart"})
    finish_reason = fields.String(metadata={"description": "stop, length, or repetition (a loop was ended)"})
    usage = fields.Nested(Usage)


class BatchOut(Schema):
    results = fields.List(fields.Nested(AnswerOut))


@bp.post("/predict")
@bp.auth_required(auth)
@bp.input(PredictIn, arg_name="body")
@bp.output(AnswerOut)
@bp.doc(summary="Answer one text (v0 API)", responses={400: "a limit is passed", 404: "no such model",
                                                                503: "busy"})
def predict(body):
    return _answer(body, [body["text"]], body["max_length"])[0]


@bp.post("/generate")
@bp.auth_required(auth)
@bp.input(GenerateIn, arg_name="body")
@bp.output(AnswerOut)
@bp.doc(summary="Generate for one prompt (v0 API)", responses={400: "a limit is passed",
                                                                        404: "no such model", 503: "busy"})
def generate(body):
    return _answer(body, [body["prompt"]], body["max_new_tokens"])[0]


@bp.post("/generate/batch")
@bp.auth_required(auth)
@bp.input(BatchIn, arg_name="body")
@bp.output(BatchOut)
@bp.doc(summary="Generate for several prompts, decoded together (v0 API)",
        responses={400: "a limit is passed", 404: "no such model", 503: "busy"})
def generate_batch(body):
    return {"results": _answer(body, body["prompts"], body["max_new_tokens"])}


def _answer(body: dict, texts: list[str], max_tokens: int | None) -> list[dict]:
    current = settings()
    model = body["model"] or next(iter(current.served_base_models), None)
    if model is None:
        raise Invalid("model is required (INFERENCE_BASE_MODELS names no default)", details={"param": "model"})
    with db() as session:
        replies = service.generate(session, principal=principal(), settings=current, engine=engine(), model=model,
                                    chats=[[{"role": "user", "content": text}] for text in texts],
                                    max_tokens=max_tokens, temperature=body["temperature"], top_p=body["top_p"],
                                    stop=tuple(body["stop"]), seed=body["seed"], fallback=V0_SAMPLING,
                                    thinking_token_budget=body["thinking_token_budget"],
                                    reasoning_effort=body["reasoning_effort"], param="text")
    try:
        results = [reply.generation.results()[0] for reply in replies]
    finally:
        for reply in replies:
            reply.generation.cancel()  # a failure or a disconnect: the others leave their batch too
    return [_out(reply.model, result, reply.reasoning_open) for reply, result in zip(replies, results)]


def _out(label: str, result: Completion, reasoning_open: bool) -> dict:
    usage = {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
             "total_tokens": result.prompt_tokens + result.completion_tokens,
             "completion_tokens_details": {"reasoning_tokens": result.reasoning_tokens}}
    return {"model": label, "answer": result.content, "text": result.content,
            "reasoning": result.reasoning if reasoning_open or result.reasoning else None,
            "finish_reason": result.finish_reason, "usage": usage}
