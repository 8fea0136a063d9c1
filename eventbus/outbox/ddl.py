"""The outbox schema, as SQL the services' Alembic migrations execute (one definition, no drift).

Each function is a frozen migration step: never edit one that has shipped; add a new function instead.
"""

from __future__ import annotations

#: hash(key) -> one of this many lease partitions; one relay instance at a time owns each.
#: Changing it needs a migration that re-partitions unpublished rows, so it is not a setting.
LEASE_PARTITIONS = 16
NOTIFY_CHANNEL = "outbox"


def create_v1() -> list[str]:
    return [
        """
        CREATE TABLE outbox (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            event_id UUID NOT NULL UNIQUE,
            topic TEXT NOT NULL,
            message_key TEXT NOT NULL,
            key_hash INTEGER NOT NULL,
            lease_partition SMALLINT NOT NULL,
            event_name TEXT NOT NULL,
            event_version INTEGER NOT NULL,
            value BYTEA NOT NULL,
            headers JSONB NOT NULL DEFAULT '[]',
            created_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
            published_at TIMESTAMPTZ
        )
        """,
        "COMMENT ON COLUMN outbox.key_hash IS "
        "'murmur2(key) & 0x7fffffff: the Kafka default partitioner hash, computed once at insert'",
        "CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL",
        "CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL",
        """
        CREATE TABLE outbox_leases (
            partition SMALLINT PRIMARY KEY,
            owner TEXT,
            expires_at TIMESTAMPTZ NOT NULL DEFAULT '-infinity',
            epoch BIGINT NOT NULL DEFAULT 0
        )
        """,
        f"INSERT INTO outbox_leases (partition) SELECT generate_series(0, {LEASE_PARTITIONS - 1})",
        """
        CREATE TABLE outbox_relays (
            instance_id TEXT PRIMARY KEY,
            started_at TIMESTAMPTZ NOT NULL DEFAULT now(),
            last_seen TIMESTAMPTZ NOT NULL DEFAULT now(),
            status JSONB NOT NULL DEFAULT '{}'
        )
        """,
        f"""
        CREATE FUNCTION outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{NOTIFY_CHANNEL}', '');
            RETURN NULL;
        END $$
        """,
        "CREATE TRIGGER outbox_notify AFTER INSERT ON outbox FOR EACH STATEMENT EXECUTE FUNCTION outbox_notify()",
    ]


def drop_v1() -> list[str]:
    return [
        "DROP TABLE outbox",
        "DROP FUNCTION outbox_notify",
        "DROP TABLE outbox_leases",
        "DROP TABLE outbox_relays",
    ]
