"""A string field that refuses what no database column can hold: NUL characters, lone surrogates."""

from apiflask import fields
from marshmallow import ValidationError


class Text(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        if "\x00" in text:
            raise ValidationError("must not contain NUL characters")
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise ValidationError("must be valid Unicode text (no lone surrogates)") from None
        return text
