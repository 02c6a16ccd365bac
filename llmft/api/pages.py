"""The list endpoints' shapes: `?limit=&after=ID` in, `{"data": [...], "has_more": bool}` out; and the event rows
that jobs and registered models list."""

from apiflask import Schema, fields, validators

from llmft.api.text import Text


class PageQuery(Schema):
    limit = fields.Integer(load_default=20, validate=validators.Range(1, 100))
    after = Text(load_default=None, metadata={"description": "the id of the last object of the previous page"})


def list_schema(name: str, item: type[Schema], *, paged: bool = True) -> type[Schema]:
    """The schema `{"data": [item, ...], "has_more": bool}` named `name` in the OpenAPI document; paged=False for a
    list returned whole (no has_more)."""
    shape = {"data": fields.List(fields.Nested(item))}
    if paged:
        shape["has_more"] = fields.Boolean()
    return Schema.from_dict(shape, name=name)


class EventOut(Schema):
    """One event of a job or of a registered model, oldest first in their lists."""
    id = fields.Integer()
    created_at = fields.DateTime()
    level = fields.String(metadata={"description": "a job event's level: info, warning or error"})
    type = fields.String()
    message = fields.String()
    actor = fields.String(allow_none=True, metadata={"description": "a model event's author: who moved the alias"})
    data = fields.Dict()


def openai_list_schema(name: str, item: type[Schema], *, cursors: bool = False) -> type[Schema]:
    """OpenAI's list `{"object": "list", "data": [item, ...], "has_more"}` named `name`; cursors=True adds the
    `first_id`/`last_id` of cursor pages (files, checkpoints)."""
    shape = {"object": fields.String(), "data": fields.List(fields.Nested(item)), "has_more": fields.Boolean()}
    if cursors:
        shape |= {"first_id": fields.String(allow_none=True), "last_id": fields.String(allow_none=True)}
    return Schema.from_dict(shape, name=name)


def openai_page(data: list, has_more: bool, *, cursors: bool = False) -> dict:
    """The body of an `openai_list_schema` list."""
    body = {"object": "list", "data": data, "has_more": has_more}
    if cursors:
        body |= {"first_id": data[0]["id"] if data else None, "last_id": data[-1]["id"] if data else None}
    return body


def page(rows: list, limit: int) -> dict:
    """`rows` was fetched with limit + 1: the extra one only says that there is more."""
    return {"data": rows[:limit], "has_more": len(rows) > limit}
