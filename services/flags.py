"""Every service's switches, with their "before" defaults (seed 004) and the values the playbooks end on.

Each link and each version change of seed 004 is one or more flags here; a playbook step moves one of them
(`make flags` lists them with their values, since when and by whom; `make flag-set` changes one).
"""

from __future__ import annotations

from eventbus.flags.spec import FlagSpec, boolean, choice, int_set, str_list

MANAGER_FIELDS = ("names", "names+username", "username")

MANAGEMENT = [
    choice("management.manager_created_version", (None, 0, 1, 2), None,
           "ManagerCreated version management emits; off: none (COMM-070 before: bonus asks over HTTP)",
           env="MANAGER_CREATED_VERSION", changed_by=("comm-070 3", "us-170 8", "us-170 15")),
    choice("management.task_created_version", (0, 1), 0,
           "TaskCreated version management emits (v0: title \"[Area] Title\"; v1: title + knowledge_area)",
           env="TASK_CREATED_VERSION", changed_by=("us-160 13",)),
    choice("management.task_titles", ("combined", "split"), "combined",
           "how new tasks are stored: \"[Area] Title\" in title, or split into title + knowledge_area "
           "(reads always go through old_title)", changed_by=("us-160 4",)),
    choice("management.manager_fields", MANAGER_FIELDS, "names",
           "what the API takes and shows of a manager: names, names + username, or username only",
           changed_by=("us-170 12", "us-170 18")),
    str_list("management.paused_topics", [],
             "topics the relay holds back (their rows wait in the outbox, in order)", changed_by=("us-170 19",)),
]

HIRING = [
    boolean("hiring.credit_via_http", True,
            "a completion credits the manager by calling bonus POST /credits in its transaction (COMM-040 before)",
            changed_by=("comm-040 5",)),
    boolean("hiring.task_result_events", False,
            "a completion or failure emits TaskCompleted/TaskFailed", changed_by=("comm-040 3",)),
    choice("hiring.task_rating_events", ("on", "off", "removed"), "on",
           "a completion emits TaskRating (removed: its topic is deleted; nothing declares it again)",
           changed_by=("comm-060 3", "comm-060 7")),
    int_set("hiring.task_created_versions", (0, 1), (0,), "TaskCreated versions the hiring worker accepts",
            changed_by=("us-160 12", "us-160 17")),
    str_list("hiring.paused_topics", [], "topics the relay holds back"),
]

BONUS = [
    choice("bonus.manager_source", ("management-api", "local"), "management-api",
           "where bonus reads manager details: management's GET /managers/{id} (through a breaker) or its own copy",
           changed_by=("comm-070 4",)),
    int_set("bonus.manager_created_versions", (0, 1, 2), (), "ManagerCreated versions the bonus worker accepts",
            env="BONUS_MANAGER_CREATED_VERSIONS",
            changed_by=("comm-070 2", "us-170 7", "us-170 14", "us-170 18")),
    choice("bonus.manager_fields", MANAGER_FIELDS, "names",
           "which manager fields bonus reads and shows", changed_by=("us-170 12", "us-170 18")),
    int_set("bonus.task_created_versions", (0, 1), (0,), "TaskCreated versions the bonus worker accepts",
            changed_by=("us-160 12", "us-160 17")),
    boolean("bonus.task_area_parsing", False,
            "the consumer stores a TaskCreated's knowledge area in its own column (parsed from a v0 title)",
            changed_by=("us-160 9",)),
    choice("bonus.task_results_consumer", ("off", "count", "apply"), "off",
           "TaskCompleted/TaskFailed: not consumed, counted only (no business effect), or credited",
           changed_by=("comm-040 2", "comm-040 5")),
    boolean("bonus.credits_endpoint", True, "POST /credits takes credits from hiring (COMM-040 before)",
            changed_by=("comm-040 6",)),
    choice("bonus.rating_source", ("events", "hiring"), "events",
           "where a completed task's rating comes from: TaskRating events, or hiring's GET /tasks/{id}/rating",
           changed_by=("comm-060 2",)),
    boolean("bonus.task_rating_consumer", True, "the bonus worker consumes TaskRating",
            changed_by=("comm-060 5",)),
]

ALL: list[FlagSpec] = MANAGEMENT + HIRING + BONUS
BY_NAME = {spec.name: spec for spec in ALL}

#: where every flag ends once all five playbooks ran (`make run START=final` starts here)
FINAL = {
    "management.manager_created_version": 2,
    "management.task_created_version": 1,
    "management.task_titles": "split",
    "management.manager_fields": "username",
    "hiring.credit_via_http": False,
    "hiring.task_result_events": True,
    "hiring.task_rating_events": "removed",
    "hiring.task_created_versions": [1],
    "bonus.manager_source": "local",
    "bonus.manager_created_versions": [2],
    "bonus.manager_fields": "username",
    "bonus.task_created_versions": [1],
    "bonus.task_area_parsing": True,
    "bonus.task_results_consumer": "apply",
    "bonus.credits_endpoint": False,
    "bonus.rating_source": "hiring",
    "bonus.task_rating_consumer": False,
}


def of_service(service: str) -> list[FlagSpec]:
    return [spec for spec in ALL if spec.service == service]
