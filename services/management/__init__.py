"""Management: managers and tasks. Emits ManagerCreated and TaskCreated through its outbox."""
