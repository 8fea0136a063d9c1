"""`python -m services.hiring.relay`: drains the hiring outbox."""

from eventbus.outbox.main import serve
from services.topology import topics_of

if __name__ == "__main__":
    serve("hiring", topics_of("TaskCompleted", "TaskFailed", "TaskRating"))
