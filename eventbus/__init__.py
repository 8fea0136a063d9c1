"""The event backbone shared by every service: envelope, outbox and relay, consumer runtime, DLQ and replay."""
