"""The list endpoints' paging: `?limit=&after=ID` in, `{"data": [...], "has_more": bool}` out."""

from apiflask import Schema, fields, validators

from llmft.api.text import Text


class PageQuery(Schema):
    limit = fields.Integer(load_default=20, validate=validators.Range(1, 100))
    after = Text(load_default=None, metadata={"description": "the id of the last object of the previous page"})


def page(rows: list, limit: int) -> dict:
    """`rows` was fetched with limit + 1: the extra one only says that there is more."""
    return {"data": rows[:limit], "has_more": len(rows) > limit}
