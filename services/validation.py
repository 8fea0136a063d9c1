"""Request-field types every API shares: text that a database column can hold.

PostgreSQL text cannot hold a NUL byte, and UTF-8 cannot encode a lone surrogate; either reached the
database as a 500. Refused here instead, with a 422 that names the field.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator


def _storable(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain a NUL character (\\u0000)")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"is not valid Unicode (a lone surrogate at position {exc.start})") from None
    return value


Text = Annotated[str, AfterValidator(_storable)]
