"""Writes (register, config, delete) need `Authorization: Bearer <REGISTRY_TOKEN>`; reads are open."""

from __future__ import annotations

import hmac

from fastapi import Request

from registry import errors
from registry.errors import RegistryError


def require_token(request: Request) -> None:
    expected: str = request.app.state.token
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise RegistryError(errors.UNAUTHORIZED,
                            "This call changes the registry: send `Authorization: Bearer <token>` "
                            "(the token is the registry's REGISTRY_TOKEN setting)")
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise RegistryError(errors.FORBIDDEN, "The bearer token is not this registry's REGISTRY_TOKEN")
