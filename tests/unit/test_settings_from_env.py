"""Feature flags and consumer settings are set through environment variables: strings must parse."""

from __future__ import annotations

import pydantic
import pytest

from services.bonus.settings import BonusSettings
from services.management.settings import ManagementSettings


def test_producer_version_flags_parse_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MANAGER_CREATED_VERSION", "2")
    monkeypatch.setenv("TASK_CREATED_VERSION", "1")
    settings = ManagementSettings()
    assert (settings.manager_created_version, settings.task_created_version) == (2, 1)


@pytest.mark.parametrize(("name", "value"), [("MANAGER_CREATED_VERSION", "3"), ("TASK_CREATED_VERSION", "2"),
                                             ("MANAGER_CREATED_VERSION", "two")])
def test_an_unknown_producer_version_is_refused_naming_the_setting(monkeypatch: pytest.MonkeyPatch, name: str,
                                                                   value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(pydantic.ValidationError, match=name.lower()):
        ManagementSettings()


def test_the_versions_a_bonus_worker_accepts_parse_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert BonusSettings().bonus_manager_created_versions == {0, 1, 2}
    monkeypatch.setenv("BONUS_MANAGER_CREATED_VERSIONS", "[0,1]")
    assert BonusSettings().bonus_manager_created_versions == {0, 1}
