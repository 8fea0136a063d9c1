"""`python -m services.management`: the management API."""

from eventbus.serve import serve_api
from services.management.api import create_app
from services.management.settings import ManagementSettings

settings = ManagementSettings()
serve_api("management", lambda: create_app(settings), settings.host, settings.management_port, settings.log_level)
