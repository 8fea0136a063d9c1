"""Schema registry: the service, its compatibility engine and the client every producer and consumer uses."""
