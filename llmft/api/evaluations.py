"""/api/v1/evaluations: evaluate a registry version next to its base (or a base alone) as a job.

An evaluation is a job of kind `evaluation`: it is followed with the job endpoints too
(`/api/v1/jobs/ID/events`, `/stream`), and its report is the job's `result`: the scores of each
side and every generated example (`samples`). With `graders` (docs/graders.md) each side also
reports `grader.NAME`, and `grader.NAME.pass@K` with `pass_k` > 1, and `grader.NAME.budget_B` for
each of `thinking_budgets`; a spec with an unknown type or key, or a bad regex, is a 422 whose
`details.param` names the field (`graders[1].pattern`).
"""

from apiflask import APIBlueprint, Schema, fields, validators
from marshmallow import ValidationError

from llmft.api.auth import auth, principal, require_write
from llmft.api.context import celery, db, settings
from llmft.api.jobs import JobOut
from llmft.api.pages import PageQuery, list_schema, page
from llmft.api.text import Text
from llmft.errors import Invalid, NotFound
from llmft.evaluate.graders import (
    ANSWER_TOKENS,
    MAX_ANSWER_TOKENS,
    MAX_BUDGETS,
    MAX_GRADERS,
    MAX_PASS_K,
    MAX_THINKING_BUDGET,
    GraderSpecError,
    check_grading,
    load_spec,
)
from llmft.jobs import service
from llmft.jobs.queue import dispatch

bp = APIBlueprint("evaluations", __name__, tag="evaluations")
MAX_NEW_TOKENS = 8192


class NewTokens(fields.Field):
    """The generation budget: "auto" or an integer from 1 to MAX_NEW_TOKENS."""

    def _deserialize(self, value, attr, data, **kwargs):
        if value == "auto" or (type(value) is int and 1 <= value <= MAX_NEW_TOKENS):
            return value
        raise ValidationError(f'"auto" or an integer from 1 to {MAX_NEW_TOKENS}')


class EvaluationIn(Schema):
    model = Text(required=True, validate=validators.Length(1, 200), metadata={
        "description": "NAME:V or NAME@ALIAS (compared with its base), or a base model (tiny-r1, a hub id)"})
    dataset_id = Text(required=True, validate=validators.Length(1, 40))
    max_samples = fields.Integer(load_default=200, validate=validators.Range(0, 1000), metadata={
        "description": "validation conversations to generate answers for (the first ones)"})
    max_new_tokens = NewTokens(load_default="auto", metadata={
        "description": "the generation budget: \"auto\" is 1.5x the longest reference answer (reasoning counted) "
                       "in tokens, 16 to 1024",
        "oneOf": [{"type": "string", "enum": ["auto"]}, {"type": "integer", "minimum": 1, "maximum": MAX_NEW_TOKENS}]})
    max_length = fields.Integer(load_default=2048, validate=validators.Range(16, 1_048_576))
    graders = fields.List(fields.Dict(), load_default=None, validate=validators.Length(1, MAX_GRADERS), metadata={
        "description": "grader spec: a list of {name, type, ...} (match, numeric, regex, choice, facts, think_format, "
                       "string_check); see docs/graders.md"})
    pass_k = fields.Integer(load_default=1, validate=validators.Range(1, MAX_PASS_K), metadata={
        "description": "with graders: samples per conversation at the model's recommended sampling, for pass@k"})
    thinking_budgets = fields.List(fields.Integer(validate=validators.Range(1, MAX_THINKING_BUDGET)), load_default=list,
                                   validate=validators.Length(0, MAX_BUDGETS), metadata={
        "description": "with graders: reasoning budgets in tokens (the think block is closed there), e.g. [256, 1024]"})
    answer_tokens = fields.Integer(load_default=ANSWER_TOKENS, validate=validators.Range(1, MAX_ANSWER_TOKENS), metadata={
        "description": "new tokens for the answer once a thinking budget closed the think block"})


EvaluationListOut = list_schema("EvaluationListOut", JobOut)


@bp.post("/evaluations")
@bp.auth_required(auth)
@bp.input(EvaluationIn, arg_name="body")
@bp.output(JobOut, status_code=202)
@bp.doc(summary="Evaluate a model on a dataset's validation split (perplexity, BLEU, ROUGE-L, fact hit, reasoning)",
        responses={403: "a viewer key", 404: "no such model, version or alias", 422: "an unknown dataset or model"})
def create(body):
    caller = require_write()
    current = settings()
    grading = _grading(body.pop("graders"), **{key: body.pop(key) for key in ("pass_k", "thinking_budgets",
                                                                                "answer_tokens")})
    with db() as session:
        job = service.create_evaluation_job(session, principal=caller, runs_dir=current.runs_dir,
                                            uploads_dir=current.uploads_dir, max_attempts=current.job_max_attempts,
                                            grading=grading, **body)
    dispatch(celery(), job.id)
    return job


def _grading(graders: list | None, *, pass_k: int, thinking_budgets: list[int], answer_tokens: int) -> dict:
    """The grading options as the job stores them (the spec checked and dumped), or Invalid naming the field."""
    try:
        spec = load_spec(graders) if graders is not None else None
        budgets = check_grading(spec, pass_k, thinking_budgets, answer_tokens)
    except GraderSpecError as error:
        raise Invalid(str(error), details={"param": error.field, "problems": error.problems}) from None
    if spec is None:
        return {}
    return {"graders": spec.dump(), "pass_k": pass_k, "thinking_budgets": list(budgets),
            "answer_tokens": answer_tokens}


@bp.get("/evaluations")
@bp.auth_required(auth)
@bp.input(PageQuery, location="query", arg_name="query")
@bp.output(EvaluationListOut)
@bp.doc(summary="The tenant's evaluations, newest first", responses={404: "the after cursor names no job"})
def index(query):
    with db() as session:
        rows = service.list_jobs(session, principal=principal(), kind="evaluation", after=query["after"],
                                 limit=query["limit"] + 1)
    return page(rows, query["limit"])


@bp.get("/evaluations/<evaluation_id>")
@bp.auth_required(auth)
@bp.output(JobOut)
@bp.doc(summary="One evaluation: status, and its report as `result` once it succeeded",
        responses={404: "no such evaluation"})
def show(evaluation_id):
    with db() as session:
        job = service.get_job(session, principal=principal(), job_id=evaluation_id)
        if job.kind != "evaluation":
            raise NotFound(f"no evaluation {evaluation_id!r}", details={"id": evaluation_id})
        return job
