"""`python -m registry`: the schema registry service."""

from eventbus.serve import serve_api
from registry.app import create_app
from registry.settings import RegistrySettings

settings = RegistrySettings()
serve_api("registry", lambda: create_app(settings), settings.host, settings.registry_port, settings.log_level)
