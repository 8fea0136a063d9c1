from __future__ import annotations

from eventbus.settings import CommonSettings


class RegistrySettings(CommonSettings):
    registry_port: int = 8000
    #: bearer token required by register, config and delete; reads are open
    registry_token: str = "dev-registry-token"
    #: load schemas/ into the registry at start
    registry_seed: bool = True
