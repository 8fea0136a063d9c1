"""`python -m services.hiring.worker`: hiring's consumer group (tasks from management)."""

from __future__ import annotations

from collections.abc import Mapping

from eventbus.consumer.main import WorkerPlan, serve
from eventbus.consumer.worker import WorkerSettings
from eventbus.control import Control
from eventbus.links import Link
from services.flags import HIRING as FLAGS
from services.hiring.consumers import handlers
from services.hiring.settings import HiringSettings
from services.topology import HIRING_GROUP, TASKS


class HiringWorkerSettings(WorkerSettings, HiringSettings):
    """One settings class for the process: the worker's and the hiring service's."""


def main() -> None:
    def plan(control: Control, _links: Mapping[str, Link]) -> WorkerPlan:
        return WorkerPlan([TASKS], handlers(control.switches))

    serve(HIRING_GROUP, "hiring", HiringWorkerSettings(), FLAGS, plan)


if __name__ == "__main__":
    main()
