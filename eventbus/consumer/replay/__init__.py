"""List, inspect and replay dead-lettered records: `python -m eventbus.consumer.replay --help` (see `cli`).

Modules: `read` (DLQ topics and their records), `policy` (filters, and what to do with a record),
`log` (the replay log in the group's database), `run` (one replay run), `output` (what `list` and
`show` print), `progress` (progress line and pacing), `cli` (the command line).
"""

from eventbus.consumer.replay.cli import main
from eventbus.consumer.replay.log import ReplayLog
from eventbus.consumer.replay.policy import (
    DEFAULT_MAX_REPLAYS,
    DRY_ACTIONS,
    Filters,
    ReplayOptions,
    decide,
    parse_time,
    replay_headers,
)
from eventbus.consumer.replay.read import DlqRecord, ReplayError, dlq_prefix, dlq_topics, read_records
from eventbus.consumer.replay.run import ReplaySummary, replay

__all__ = ["DEFAULT_MAX_REPLAYS", "DRY_ACTIONS", "DlqRecord", "Filters", "ReplayError", "ReplayLog", "ReplayOptions",
           "ReplaySummary", "decide", "dlq_prefix", "dlq_topics", "main", "parse_time", "read_records", "replay",
           "replay_headers"]
