"""Transactional outbox: the writer services call inside their transaction, and the relay that drains it."""

from eventbus.outbox.writer import EventRejected, OutboxWriter, Route

__all__ = ["EventRejected", "OutboxWriter", "Route"]
