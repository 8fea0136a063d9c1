"""Request-field types every API shares: text that a database column can hold, integers as JSON means them.

PostgreSQL text cannot hold a NUL byte, and UTF-8 cannot encode a lone surrogate; either reached the
database as a 500. Refused here instead, with a 422 that names the field. The OpenAPI document says so:
`Text` is a string whose pattern excludes U+0000 (a lone surrogate cannot be written in UTF-8 JSON at all,
only as a `\\ud800` escape, which the description mentions).
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, Field, GetJsonSchemaHandler
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

#: what the document says of every `Text` field
NO_NUL = "^[^\\u0000]*$"


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character (\\u0000)")
    if not value.isascii():  # ASCII encodes; only other text can hold a lone surrogate
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise ValueError(f"is not valid Unicode (a lone surrogate at position {exc.start})") from None
    return value


class _Documented:
    """Adds to the field's JSON Schema what `_storable` refuses (no work at validation time)."""

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema: dict[str, Any] = handler(core_schema)
        schema["pattern"] = NO_NUL
        schema["description"] = " ".join(filter(None, (
            schema.get("description"), "No NUL character (U+0000) and no lone surrogate (an unpaired \\ud800-\\udfff "
            "escape): a database column cannot hold them (422).")))
        return schema


Text = Annotated[str, AfterValidator(_storable), _Documented()]


def _json_integer(value: Any) -> Any:
    if isinstance(value, bool | str):  # pydantic's lax int would read true as 1 and "4" as 4
        raise ValueError("must be a JSON integer (not a boolean or a string)")
    return value  # 4 and 4.0 (an integer to JSON Schema) pass; 4.5 is refused by int itself


#: a task's rating, an integer as the OpenAPI document (JSON Schema) means it: 4 or 4.0, never true or "4" (the
#: bounds come before the validator, or pydantic writes them into the document as `ge`/`le`, not JSON Schema)
Rating = Annotated[int, Field(ge=1, le=5), BeforeValidator(_json_integer)]


def is_text(annotation: Any) -> bool:
    """Is `annotation` (a field's, maybe `Text | None`) built on `Text`? For tests that check every request
    string field refuses what a column cannot hold."""
    metadata = getattr(annotation, "__metadata__", ())
    if any(isinstance(m, AfterValidator) and m.func is _storable for m in metadata):
        return True
    return any(is_text(arg) for arg in getattr(annotation, "__args__", ()) if arg is not type(None))
