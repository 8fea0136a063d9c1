"""Switches (flags) that change a running system: typed, stored per service in PostgreSQL, audited,
seen by every process within about a second, and read through OpenFeature.

- `spec`: what a flag is (name, type, allowed values, default) and how an operator's text parses into it;
- `store`: the SQL (read, set with an audit row and a cut-over boundary, retire values);
- `live`: a process's snapshot, kept fresh by LISTEN/NOTIFY with a poll fallback, and the in-transaction read
  that producers use so that the exact cut-over outbox id is known;
- `provider`: the snapshot as an OpenFeature provider (flagd, Unleash or Flipt can replace it).
"""

from eventbus.flags.live import LiveFlags
from eventbus.flags.spec import FlagError, FlagSpec, FlagValue

__all__ = ["FlagError", "FlagSpec", "FlagValue", "LiveFlags"]
