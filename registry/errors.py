"""The registry's errors in its own vocabulary: Confluent Schema Registry's error codes, and ours where Confluent
has none. No HTTP here: a code's first three digits are its HTTP status, derived once at the edge
(`registry.http.status_of`)."""

from __future__ import annotations

from typing import Any

SUBJECT_NOT_FOUND = 40401
VERSION_NOT_FOUND = 40402
SCHEMA_NOT_FOUND = 40403
SUBJECT_SOFT_DELETED = 40404
SUBJECT_NOT_SOFT_DELETED = 40405
VERSION_SOFT_DELETED = 40406
VERSION_NOT_SOFT_DELETED = 40407
SUBJECT_CONFIG_NOT_FOUND = 40408
INCOMPATIBLE = 409
INVALID_SCHEMA = 42201
INVALID_VERSION = 42202
INVALID_COMPATIBILITY_LEVEL = 42203
INVALID_SUBJECT = 42208
# ours
INVALID_REQUEST = 42200  # a malformed path or query parameter or request body (the message names which)
INVALID_ENVELOPE = 42210  # /validate: not an event envelope
IDENTITY_MISMATCH = 42211  # event name or version does not match the subject
ENVELOPE_BREAKS_SCHEMA = 42212  # /validate: the envelope does not match its event version's schema
UNKNOWN_EVENT = 40410
UNKNOWN_EVENT_VERSION = 40411
UNAUTHORIZED = 40101
FORBIDDEN = 40301
REQUEST_TOO_LARGE = 41301  # the request body is larger than the registry reads
STORE_UNAVAILABLE = 50301  # the database does not answer; nothing was written


class RegistryError(Exception):
    """A refusal with its error code; `extra` goes into the answer beside `error_code` and `message`."""

    def __init__(self, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code, self.message, self.extra = code, message, extra

    def body(self) -> dict[str, Any]:
        return {"error_code": self.code, "message": self.message, **self.extra}
