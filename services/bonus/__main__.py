"""`python -m services.bonus`: the bonus API."""

from eventbus.serve import serve_api
from services.bonus.api import create_app
from services.bonus.settings import BonusSettings

settings = BonusSettings()
serve_api("bonus", lambda: create_app(settings), settings.host, settings.bonus_port, settings.log_level)
