from __future__ import annotations

from typing import Literal

from eventbus.settings import CommonSettings


class ManagementSettings(CommonSettings):
    management_port: int = 8001
    #: feature flags: which event version the producers emit (US-170, US-160 playbooks)
    manager_created_version: Literal[0, 1, 2] = 0
    task_created_version: Literal[0, 1] = 0
