"""`python -m services.bonus.worker`: the bonus consumer group."""

from __future__ import annotations

from collections.abc import Mapping

from eventbus.consumer.main import WorkerPlan, serve
from eventbus.consumer.worker import WorkerSettings
from eventbus.control import Control
from eventbus.links import Link
from services.bonus.consumers import BonusConsumers
from services.bonus.settings import BonusSettings
from services.flags import BONUS as FLAGS
from services.topology import BONUS_GROUP, MANAGERS, TASK_RATINGS, TASK_RESULTS, TASKS


class BonusWorkerSettings(WorkerSettings, BonusSettings):
    """One settings class for the process: the worker's and the bonus service's."""


def sources(control: Control) -> list:  # type: ignore[type-arg]
    """TaskRating's topic only while the bonus worker consumes it (COMM-060 step 5 stops that, with a restart)."""
    topics = [MANAGERS, TASKS, TASK_RESULTS]
    if control.switches.value("bonus.task_rating_consumer"):
        topics.append(TASK_RATINGS)
    return topics


def main() -> None:
    settings = BonusWorkerSettings()

    def plan(control: Control, links: Mapping[str, Link]) -> WorkerPlan:
        consumers = BonusConsumers(control.switches, control.schema, settings.credit_rule(), links["hiring"])
        return WorkerPlan(sources(control), consumers.handlers(),
                          capabilities=["manager.consumer", "task.area_parsing", "results.count", "rating.from_hiring"])

    serve(BONUS_GROUP, "bonus", settings, FLAGS, plan, links={"hiring": settings.hiring_url})


if __name__ == "__main__":
    main()
