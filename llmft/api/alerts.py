"""/api/v1/alerts: what fired (newest first), and the tenant's webhooks and rule thresholds."""

from apiflask import APIBlueprint, Schema, fields, validators

from llmft.api.auth import auth, principal, require_write
from llmft.api.context import db, settings
from llmft.api.pages import PageQuery, list_schema, page
from llmft.api.text import Text
from llmft.errors import Forbidden
from llmft.monitor.alerts import alert_settings, alerts_of, update_alert_settings

bp = APIBlueprint("alerts", __name__, tag="alerts")


class AlertOut(Schema):
    id = fields.String()
    object = fields.String(dump_default="alert")
    rule = fields.String(metadata={"description": "nan_loss, loss_spike, stalled, job_failed, eval_rising, "
                                                  "gpu_memory, disk_full, or for GRPO rl_clipped, rl_zero_variance, "
                                                  "rl_length_collapse, rl_reward_flat"})
    severity = fields.String(metadata={"description": "warning or critical"})
    message = fields.String()
    job_id = fields.String(allow_none=True)
    data = fields.Dict()
    created_at = fields.DateTime()
    notified_at = fields.DateTime(allow_none=True, metadata={"description": "when a webhook took it"})
    notify_error = fields.String(allow_none=True, metadata={
        "description": "why a webhook did not take it: HTTP <status>, delivery failed, or refused: address not allowed"})


AlertListOut = list_schema("AlertListOut", AlertOut)


class AlertQuery(PageQuery):
    job_id = Text(load_default=None, validate=validators.Length(1, 40))


class RulesIn(Schema):
    loss_spike_factor = fields.Float(validate=validators.Range(1, 1e6, min_inclusive=False))
    loss_spike_window = fields.Integer(validate=validators.Range(2, 1000))
    loss_spike_min_steps = fields.Integer(validate=validators.Range(1, 1_000_000))
    stalled_minutes = fields.Float(validate=validators.Range(0, 1e6, min_inclusive=False))
    eval_rising_evaluations = fields.Integer(validate=validators.Range(1, 1000))
    gpu_memory_fraction = fields.Float(validate=validators.Range(0, 1, min_inclusive=False))
    job_failed = fields.Boolean()
    rl_clipped_share = fields.Float(validate=validators.Range(0, 1, min_inclusive=False))
    rl_zero_variance_share = fields.Float(validate=validators.Range(0, 1, min_inclusive=False))
    rl_length_collapse_fraction = fields.Float(validate=validators.Range(0, 1, min_inclusive=False, max_inclusive=False))
    rl_length_early_steps = fields.Integer(validate=validators.Range(1, 1000))
    rl_reward_flat_steps = fields.Integer(validate=validators.Range(2, 10000))
    rl_reward_flat_tolerance = fields.Float(validate=validators.Range(0, 1e6))


class SettingsIn(Schema):
    webhooks = fields.List(Text(validate=validators.Length(1, 2000)), validate=validators.Length(0, 10),
                           metadata={"description": "URLs that get a JSON POST per alert (Slack-compatible `text`)"})
    rules = fields.Nested(RulesIn, metadata={"description": "thresholds to change; the others keep their values"})


class SettingsOut(Schema):
    webhooks = fields.List(fields.String(), metadata={
        "description": "in full for admins; for others with userinfo, path and query as ***"})
    rules = fields.Dict()


@bp.get("/alerts")
@bp.auth_required(auth)
@bp.input(AlertQuery, location="query", arg_name="query")
@bp.output(AlertListOut)
@bp.doc(summary="Alerts, newest first (admins also see the service's own, such as a full disk)")
def index(query):
    caller = principal()
    with db() as session:
        rows = alerts_of(session, tenant_id=caller.tenant_id, include_service=caller.role == "admin",
                         job_id=query["job_id"], after=query["after"], limit=query["limit"])
        return page(rows, query["limit"])


@bp.get("/alerts/settings")
@bp.auth_required(auth)
@bp.output(SettingsOut)
@bp.doc(summary="The tenant's alert webhooks (in full for admins, masked for others) and rule thresholds")
def get_settings():
    caller = principal()
    with db() as session:
        return alert_settings(session, tenant_id=caller.tenant_id, unmasked=caller.role == "admin")


@bp.put("/alerts/settings")
@bp.auth_required(auth)
@bp.input(SettingsIn, arg_name="body")
@bp.output(SettingsOut)
@bp.doc(summary="Set the tenant's alert webhooks and/or some rule thresholds (admin)",
        responses={403: "not an admin key", 422: "a bad URL (or a non-public address) or threshold"})
def put_settings(body):
    caller = require_write()
    if caller.role != "admin":
        raise Forbidden("only an admin key changes where alerts go")
    with db() as session:
        return update_alert_settings(session, tenant_id=caller.tenant_id, webhooks=body.get("webhooks"),
                                     rules=body.get("rules"), allow_private=settings().webhook_allow_private)
