"""`python -m services.management.relay`: drains the management outbox."""

from eventbus.outbox.main import serve
from services.flags import MANAGEMENT
from services.topology import topics_of

if __name__ == "__main__":
    serve("management", topics_of("ManagerCreated", "TaskCreated"), MANAGEMENT)
