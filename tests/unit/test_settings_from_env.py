"""A switch's first value may come from an environment variable: its text must parse, or be refused naming
the switch and its allowed values (it is only a first value: the flag store holds it from then on)."""

from __future__ import annotations

import pytest

from eventbus.flags import FlagError
from services.flags import BY_NAME


def test_producer_version_flags_parse_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MANAGER_CREATED_VERSION", "2")
    monkeypatch.setenv("TASK_CREATED_VERSION", "1")
    assert BY_NAME["management.manager_created_version"].initial() == 2
    assert BY_NAME["management.task_created_version"].initial() == 1


def test_without_the_variable_the_first_value_is_the_before_state(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MANAGER_CREATED_VERSION", raising=False)
    assert BY_NAME["management.manager_created_version"].initial() is None  # COMM-070 before: no event


@pytest.mark.parametrize(("variable", "flag", "value"), [
    ("MANAGER_CREATED_VERSION", "management.manager_created_version", "3"),
    ("TASK_CREATED_VERSION", "management.task_created_version", "2"),
    ("MANAGER_CREATED_VERSION", "management.manager_created_version", "two")])
def test_an_unknown_producer_version_is_refused_naming_the_flag(monkeypatch: pytest.MonkeyPatch, variable: str,
                                                                flag: str, value: str) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(FlagError, match=rf"{flag}: '{value}' is not a value of this flag.*allowed: off, 0"
                                        if "manager" in flag else rf"{flag}.*allowed: 0, 1"):
        BY_NAME[flag].initial()


def test_the_versions_a_bonus_worker_accepts_parse_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = BY_NAME["bonus.manager_created_versions"]
    monkeypatch.delenv("BONUS_MANAGER_CREATED_VERSIONS", raising=False)
    assert spec.initial() == []
    monkeypatch.setenv("BONUS_MANAGER_CREATED_VERSIONS", "[0,1]")
    assert spec.initial() == [0, 1]
    monkeypatch.setenv("BONUS_MANAGER_CREATED_VERSIONS", "2,0")
    assert spec.initial() == [0, 2]
    monkeypatch.setenv("BONUS_MANAGER_CREATED_VERSIONS", "0,7")
    with pytest.raises(FlagError, match=r"allowed: a comma-separated subset of \{0, 1, 2\}"):
        spec.initial()
