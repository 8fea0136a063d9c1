"""The registry's routes: Confluent Schema Registry's API, plus /catalog and /validate."""

from __future__ import annotations

from fastapi import APIRouter

from registry.routes import compatibility, config, events, schemas, subjects

ROUTERS: list[APIRouter] = [subjects.router, schemas.router, compatibility.router, config.router, events.router]
