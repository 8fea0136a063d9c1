"""`python -m services.hiring.relay`: drains the hiring outbox."""

from collections.abc import Collection

from eventbus.flags import LiveFlags
from eventbus.outbox.main import serve
from services.flags import HIRING
from services.topology import TASK_RATINGS, topics_of


def retired(flags: LiveFlags) -> Collection[str]:
    """TaskRating's topic once COMM-060 step 7 deleted it."""
    return [TASK_RATINGS.name] if flags.value("hiring.task_rating_events") == "removed" else []


if __name__ == "__main__":
    serve("hiring", topics_of("TaskCompleted", "TaskFailed", "TaskRating"), HIRING, retired)
