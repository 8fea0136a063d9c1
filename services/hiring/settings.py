from __future__ import annotations

from pydantic import Field

from eventbus.settings import CommonSettings


class HiringSettings(CommonSettings):
    hiring_port: int = 8002
    #: the rating of a completion that gave none (every completed task has one: bonus's credit depends on it)
    hiring_default_rating: int = Field(default=3, ge=1, le=5)
