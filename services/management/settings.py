from __future__ import annotations

from eventbus.settings import CommonSettings


class ManagementSettings(CommonSettings):
    management_port: int = 8001
