"""What every route module shares: the service of the running app, the write guard, the answer class."""

from __future__ import annotations

from fastapi import Depends, Request
from fastapi.responses import JSONResponse

from registry.auth import require_token
from registry.http import CONTENT_TYPE, dumps
from registry.service import RegistryService

#: writes (register, config, delete) need the bearer token
WRITE = [Depends(require_token)]


class RegistryJSON(JSONResponse):
    """Our content type, and the same bytes as the hot path (`registry.hot`)."""

    media_type = CONTENT_TYPE

    def render(self, content: object) -> bytes:
        return dumps(content)


def service_of(request: Request) -> RegistryService:
    service: RegistryService = request.app.state.resources.service
    return service
