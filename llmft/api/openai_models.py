"""/v1/models/{model}: one model by the name a request takes, and deleting a version (OpenAI's models API).

    client.models.retrieve("support-bot:3")            # also a base, NAME@ALIAS, NAME, job-...:checkpoint-N
    client.models.delete("support-bot:3")              # {"id", "object": "model", "deleted": true}

GET /v1/models (the list) is in openai_compat.py. Names hold ':' and '@', so the route takes the rest of the
path. DELETE removes a version `NAME:V` only, with the registry's guard: 409 while an alias points at it (the
client's ConflictError); a base, an alias, a bare NAME or a checkpoint is a 400 saying so (serve/service.py
delete_model). Errors take OpenAI's shape from openai_compat's /v1 handler.
"""

from apiflask import APIBlueprint, Schema, fields

from llmft.api.auth import auth, principal, require_write
from llmft.api.context import db, settings
from llmft.serve.service import delete_model, describe_model

bp = APIBlueprint("openai_models", __name__, tag="OpenAI-compatible")


class ModelObjectOut(Schema):
    id = fields.String(metadata={"description": "what `model` takes: a base, NAME:V, NAME@ALIAS, NAME or "
                                                "JOB_ID:checkpoint-N"})
    object = fields.String(metadata={"description": "model"})
    created = fields.Integer()
    owned_by = fields.String(metadata={"description": "llmft for a served base, else the tenant"})
    kind = fields.String(metadata={"description": "adapter, full or checkpoint"})
    base_model = fields.String()
    points_to = fields.String(metadata={"description": "the version an alias or a bare NAME means now"})
    fine_tuning_job_id = fields.String(metadata={"description": "a checkpoint's job"})
    step = fields.Integer(metadata={"description": "a checkpoint's step"})


class ModelDeletedOut(Schema):
    id = fields.String()
    object = fields.String()
    deleted = fields.Boolean()


@bp.get("/models/<path:model>")
@bp.auth_required(auth)
@bp.output(ModelObjectOut)
@bp.doc(summary="One model you can call, by the name a request takes", responses={404: "no such model"})
def retrieve(model):
    with db() as session:
        return describe_model(session, principal=principal(), settings=settings(), model=model)


@bp.delete("/models/<path:model>")
@bp.auth_required(auth)
@bp.output(ModelDeletedOut)
@bp.doc(summary="Delete a version NAME:V and its files", responses={
    400: "not a version (a base, an alias, a bare name or a checkpoint)", 403: "a viewer key",
    404: "no such model", 409: "an alias points at the version"})
def delete(model):
    caller = require_write()
    with db() as session:
        return delete_model(session, principal=caller, settings=settings(), model=model)
