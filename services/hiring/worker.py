"""`python -m services.hiring.worker`: hiring's consumer group (tasks from management)."""

from eventbus.consumer.main import serve
from services.hiring.consumers import HANDLERS
from services.topology import HIRING_GROUP, TASKS

if __name__ == "__main__":
    serve(HIRING_GROUP, "hiring", [TASKS], HANDLERS)
