"""Run a FastAPI app factory under uvicorn with the process's log format."""

from __future__ import annotations

from collections.abc import Callable

import uvicorn
from fastapi import FastAPI

from eventbus.logs import setup_logging


def serve_api(name: str, factory: Callable[[], FastAPI], host: str, port: int, log_level: str) -> None:
    setup_logging(log_level, name)
    uvicorn.run(factory(), host=host, port=port, log_level=log_level.lower(), access_log=False,
                log_config=None, timeout_graceful_shutdown=5)
