from __future__ import annotations

from pydantic import Field

from eventbus.settings import CommonSettings


class ManagementSettings(CommonSettings):
    management_port: int = 8001
    #: feature flags: which event version the producers emit (US-170, US-160 playbooks)
    # (ints with bounds, not Literal: a Literal of ints refuses the string "2" that an env var carries)
    manager_created_version: int = Field(default=0, ge=0, le=2)
    task_created_version: int = Field(default=0, ge=0, le=1)
