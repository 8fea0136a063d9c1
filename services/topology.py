"""Which events go to which topic, with which key, and how many partitions each topic has (DESIGN.md)."""

from __future__ import annotations

from eventbus.outbox import Route
from eventbus.topics import TopicSpec

MANAGERS = TopicSpec("management.managers", 4)
TASKS = TopicSpec("management.tasks", 4)
TASK_RESULTS = TopicSpec("hiring.task-results", 4)
TASK_RATINGS = TopicSpec("hiring.task-ratings", 4)
TOPICS = [MANAGERS, TASKS, TASK_RESULTS, TASK_RATINGS]

ROUTES: dict[str, Route] = {
    "ManagerCreated": Route(MANAGERS.name, "manager_id"),
    "TaskCreated": Route(TASKS.name, "task_id"),
    "TaskCompleted": Route(TASK_RESULTS.name, "task_id"),
    "TaskFailed": Route(TASK_RESULTS.name, "task_id"),
    "TaskRating": Route(TASK_RATINGS.name, "task_id"),
}

#: One database per service, plus the registry's.
DATABASES = ("management", "hiring", "bonus", "registry")

#: Consumer groups: the Faust app id, and the DLQ topics' middle part (dlq.<group>.<topic>).
BONUS_GROUP = "bonus"
HIRING_GROUP = "hiring"


def topics_of(*event_names: str) -> list[TopicSpec]:
    by_name = {t.name: t for t in TOPICS}
    names = dict.fromkeys(ROUTES[e].topic for e in event_names)
    return [by_name[n] for n in names]
