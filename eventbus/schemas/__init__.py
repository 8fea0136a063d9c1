"""What every producer and consumer needs of the event schemas: a client that fetches each schema once from
the registry (falling back to `schemas/` on disk), compiled validators, and the issues they report.

The registry service serves these schemas; the backbone never imports the registry service.
"""

from eventbus.schemas.client import RegistryUnavailableError, SchemaClient, UnknownSchemaError
from eventbus.schemas.validation import CompiledSchema, SchemaIssue, event_name_of, event_version_of, json_pointer

__all__ = ["CompiledSchema", "RegistryUnavailableError", "SchemaClient", "SchemaIssue", "UnknownSchemaError",
           "event_name_of", "event_version_of", "json_pointer"]
