"""The schema registry service: Confluent Schema Registry's HTTP API plus /catalog and /validate, on the shared
app skeleton (`eventbus.webapp.service_app`: lifespan, /health, instance header). Here: the registry's routes,
its error format and content type (`registry.http`), its OpenAPI document, and the hot read path in front."""

from __future__ import annotations

from fastapi import FastAPI

from eventbus.webapp import service_app
from registry.hot import HotReads
from registry.http import install_error_handlers
from registry.openapi import install_openapi
from registry.resources import RegistryResources
from registry.routes import ROUTERS
from registry.settings import RegistrySettings


def create_app(settings: RegistrySettings | None = None) -> FastAPI:
    settings = settings or RegistrySettings()

    def customize(app: FastAPI) -> None:
        app.title = "schema registry"
        app.state.token = settings.registry_token
        install_error_handlers(app)
        install_openapi(app)
        app.add_middleware(HotReads)

    return service_app("registry", open_resources=lambda: RegistryResources.open(settings), routers=ROUTERS,
                       description="Confluent Schema Registry's API for JSON schemas, plus /catalog and /validate",
                       customize=customize, body_guard=False)  # HotReads limits bodies, in our format
