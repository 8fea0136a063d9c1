"""Confluent Schema Registry error codes, and ours where Confluent has none."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse

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
# ours
INVALID_ENVELOPE = 42210
ENVELOPE_DOES_NOT_MATCH = 42211
UNKNOWN_EVENT = 40410
UNKNOWN_EVENT_VERSION = 40411
UNAUTHORIZED = 40101
FORBIDDEN = 40301


class RegistryError(Exception):
    def __init__(self, status: int, code: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def response(self) -> JSONResponse:
        return JSONResponse({"error_code": self.code, "message": self.message, **self.extra}, status_code=self.status)
