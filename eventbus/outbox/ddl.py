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


def create_broker_loss_v1() -> list[str]:
    """What the relays need to notice that the broker lost acknowledged records and to publish the outbox's
    retained window again (`eventbus.outbox.loss`): the offsets the broker confirmed, the losses declared, and
    per lease partition the last loss its retained rows were re-published for."""
    return [
        """
        CREATE TABLE outbox_broker_offsets (
            topic TEXT NOT NULL,
            partition INTEGER NOT NULL,
            high_offset BIGINT NOT NULL,
            loss_id BIGINT NOT NULL DEFAULT 0,
            updated_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
            PRIMARY KEY (topic, partition)
        )
        """,
        "COMMENT ON COLUMN outbox_broker_offsets.high_offset IS "
        "'the highest offset at which the broker confirmed a record of this outbox on the partition, counted since "
        "loss loss_id: a log that ends at or below it lost acknowledged records'",
        """
        CREATE TABLE outbox_broker_losses (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            detected_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
            detected_by TEXT NOT NULL,
            evidence TEXT NOT NULL,
            republished BIGINT NOT NULL DEFAULT 0
        )
        """,
        """
        CREATE TABLE outbox_broker_lost_partitions (
            loss_id BIGINT NOT NULL REFERENCES outbox_broker_losses (id) ON DELETE CASCADE,
            topic TEXT NOT NULL,
            partition_count INTEGER NOT NULL,
            partition INTEGER NOT NULL,
            PRIMARY KEY (loss_id, topic, partition)
        )
        """,
        "ALTER TABLE outbox_leases ADD COLUMN recovered_loss BIGINT NOT NULL DEFAULT 0",
    ]


def drop_broker_loss_v1() -> list[str]:
    return [
        "ALTER TABLE outbox_leases DROP COLUMN recovered_loss",
        "DROP TABLE outbox_broker_lost_partitions",
        "DROP TABLE outbox_broker_losses",
        "DROP TABLE outbox_broker_offsets",
    ]
