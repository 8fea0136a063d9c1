"""`python -m services.hiring`: the hiring API."""

from eventbus.serve import serve_api
from services.hiring.api import create_app
from services.hiring.settings import HiringSettings

settings = HiringSettings()
serve_api("hiring", lambda: create_app(settings), settings.host, settings.hiring_port, settings.log_level)
