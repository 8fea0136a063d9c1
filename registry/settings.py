from __future__ import annotations

from eventbus.settings import CommonSettings


class RegistrySettings(CommonSettings):
    registry_port: int = 8000
    #: bearer token required by register, config and delete; reads are open
    registry_token: str = "dev-registry-token"
    #: load schemas/ into the registry at start
    registry_seed: bool = True
    #: which versions of schemas/ to load when missing: "all", or a list like "TaskCreated:0,TaskRating:0"
    #: (the stack's "before" state; later versions are registered by playbooks and stay registered)
    registry_seed_versions: str = "all"
