from __future__ import annotations

from eventbus.settings import CommonSettings


class HiringSettings(CommonSettings):
    hiring_port: int = 8002
