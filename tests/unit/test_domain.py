from __future__ import annotations

import uuid

import pytest

from eventbus.errors import InvalidInput
from services.bonus.domain import CreditRule
from services.contracts import manager_created, split_area_title, task_created
from services.management import domain


@pytest.mark.parametrize(("title", "expected"), [
    ("[Python] Write a parser", ("Python", "Write a parser")),
    ("[Data Science]  Clean  data ", ("Data Science", "Clean  data")),
    ("Write a parser", (None, "Write a parser")),
    ("[] nothing", (None, "[] nothing")),
    ("[A][B] x", (None, "[A][B] x")),
])
def test_split_area_title(title: str, expected: tuple[str | None, str]) -> None:
    assert split_area_title(title) == expected


def _manager() -> domain.Manager:
    return domain.Manager(uuid.uuid4(), "acc-1", "Ada", "Lovelace", "ada.l")


def test_manager_created_payload_per_version() -> None:
    m = _manager()
    assert set(domain.manager_created(m, 0)) == {"manager_id", "first_name", "last_name", "account_id"}
    assert set(domain.manager_created(m, 1)) == {"manager_id", "first_name", "last_name", "account_id", "username"}
    assert set(domain.manager_created(m, 2)) == {"manager_id", "username", "account_id"}


def test_task_created_payload_per_version() -> None:
    t = domain.Task(uuid.uuid4(), uuid.uuid4(), "Write a parser", "Python")
    assert domain.task_created(t, 0)["title"] == "[Python] Write a parser"
    v1 = domain.task_created(t, 1)
    assert (v1["title"], v1["knowledge_area"]) == ("Write a parser", "Python")


def test_default_username_is_schema_safe() -> None:
    assert domain.default_username("Ada", "Lovelace") == "ada.lovelace"
    assert domain.default_username("Jean Luc", "Picard!") == "jean_luc.picard"
    assert domain.default_username("Ж", "Ю") == "manager"  # nothing schema-safe left
    assert domain.default_username("A", "") == "a._"  # padded to the schema's minLength


def test_readers_upcast_every_version_to_one_shape() -> None:
    v0 = task_created({"task_id": "t", "creator_id": "c", "title": "[Go] Build"}, 0)
    v1 = task_created({"task_id": "t", "creator_id": "c", "title": "Build", "knowledge_area": "Go"}, 1)
    v1_without_area = task_created({"task_id": "t", "creator_id": "c", "title": "[Go] Build"}, 1)
    assert v0 == v1 == v1_without_area
    m0 = manager_created({"manager_id": "m", "account_id": "a", "first_name": "A", "last_name": "B"}, 0)
    m2 = manager_created({"manager_id": "m", "account_id": "a", "username": "ab"}, 2)
    assert (m0.first_name, m0.username) == ("A", None)
    assert (m2.first_name, m2.username) == (None, "ab")


def test_credit_rule_pays_completions_by_their_rating() -> None:
    rule = CreditRule(completed=10, failed=2, rating_step=2)
    assert [rule.amount("completed", r) for r in (1, 2, 3, 4, 5)] == [6, 8, 10, 12, 14]
    assert rule.amount("failed") == rule.amount("failed", 5) == 2
    assert CreditRule(completed=2, rating_step=5).amount("completed", 1) == 0  # never negative
    with pytest.raises(ValueError, match="credited by its rating"):
        rule.amount("completed")  # a completion without its rating is never credited a guessed amount
    with pytest.raises(ValueError, match="no credit rule"):
        rule.amount("abandoned")


def test_a_stored_task_reads_the_same_combined_or_split() -> None:
    task_id, creator = uuid.uuid4(), uuid.uuid4()
    combined = domain.Task.stored(task_id, creator, "[Math] Limits", None)
    split = domain.Task.stored(task_id, creator, "Limits", "Math")
    assert combined == split and split.old_title == "[Math] Limits"
    assert domain.Task.stored(task_id, creator, "No area", None).old_title == "No area"


@pytest.mark.parametrize("bad", ["ab", "x" * 65, "Upper", "with space", "semi;colon", "nul\x00"])
def test_one_username_rule_for_every_version(bad: str) -> None:
    with pytest.raises(InvalidInput, match="username"):
        domain.check_username(bad)
    assert domain.check_username("ada.lovelace_1-x") == "ada.lovelace_1-x"
