"""Tables of every consuming service: dedupe (`processed_events`), the replay log, and the dead letters' copies.

Frozen migration steps, as in `eventbus.outbox.ddl`.
"""

from __future__ import annotations


def create_v1() -> list[str]:
    return [
        """
        CREATE TABLE processed_events (
            consumer TEXT NOT NULL,
            event_id UUID NOT NULL,
            processed_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            PRIMARY KEY (consumer, event_id)
        )
        """,
        "CREATE INDEX processed_events_processed_at ON processed_events (processed_at)",
        """
        CREATE TABLE dlq_replays (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            finished_at TIMESTAMPTZ,
            operator TEXT NOT NULL,
            dlq_topic TEXT NOT NULL,
            filters JSONB NOT NULL,
            dry_run BOOLEAN NOT NULL,
            selected INTEGER NOT NULL DEFAULT 0,
            replayed INTEGER NOT NULL DEFAULT 0,
            parked INTEGER NOT NULL DEFAULT 0,
            refused INTEGER NOT NULL DEFAULT 0,
            result TEXT NOT NULL DEFAULT 'running'
        )
        """,
        """
        CREATE TABLE dlq_replayed_records (
            replay_id BIGINT NOT NULL REFERENCES dlq_replays (id),
            dlq_topic TEXT NOT NULL,
            dlq_partition INTEGER NOT NULL,
            dlq_offset BIGINT NOT NULL,
            event_id TEXT,
            action TEXT NOT NULL,
            target_topic TEXT,
            PRIMARY KEY (replay_id, dlq_topic, dlq_partition, dlq_offset)
        )
        """,
        "CREATE INDEX dlq_replayed_records_offset ON dlq_replayed_records (dlq_topic, dlq_partition, dlq_offset)",
    ]


def drop_v1() -> list[str]:
    return ["DROP TABLE dlq_replayed_records", "DROP TABLE dlq_replays", "DROP TABLE processed_events"]


def create_dlq_records_v1() -> list[str]:
    """Every dead letter a worker writes, kept in the group's database too: the broker may lose its log (an
    in-memory broker restarted, a topic recreated, an unclean leader election) and the replay CLI reads them
    from here then (`--from-database`)."""
    return [
        """
        CREATE TABLE dlq_records (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            record_id UUID NOT NULL UNIQUE,
            dlq_topic TEXT NOT NULL,
            dlq_partition INTEGER NOT NULL,
            dlq_offset BIGINT NOT NULL,
            record_key BYTEA,
            record_value BYTEA,
            header_keys TEXT[] NOT NULL,
            header_values BYTEA[] NOT NULL,
            event_id TEXT,
            written_at TIMESTAMPTZ NOT NULL DEFAULT now()
        )
        """,
        "COMMENT ON COLUMN dlq_records.dlq_offset IS "
        "'where the broker put the record when it confirmed it; a broker that lost its log may give the offset to "
        "another record'",
        "COMMENT ON COLUMN dlq_records.record_id IS 'drawn once per dead-lettering: a retried insert adds no row'",
        "CREATE INDEX dlq_records_topic ON dlq_records (dlq_topic, id)",
        "CREATE INDEX dlq_records_written_at ON dlq_records (written_at)",
    ]


def drop_dlq_records_v1() -> list[str]:
    return ["DROP TABLE dlq_records"]
