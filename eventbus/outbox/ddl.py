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


def create_pending_v1() -> list[str]:
    """Publishing without rewriting outbox rows: which rows wait for the broker and which were published (and
    when) move out of the wide `outbox` row into two narrow tables. Confirming a row deletes its `outbox_pending`
    entry and appends one to `outbox_published` (no new version of the row and its payload, no index on it
    touched); retention deletes from `outbox` what was published before its window; the broker-loss recovery
    moves the retained rows of lost partitions back to `outbox_pending`.

    Triggers keep the invariant for every writer: each outbox row is in exactly one of the two tables, from its
    insert (pending) until it is deleted. The migration copies the state under a lock that stops inserts, so
    no row is left out, and drops `published_at`: a relay of the earlier code fails loudly on it instead of
    publishing everything again."""
    return [
        "LOCK TABLE outbox IN SHARE ROW EXCLUSIVE MODE",
        # the topic too: a paused topic's rows are skipped without reading the outbox rows
        "CREATE TABLE outbox_pending (id BIGINT PRIMARY KEY, lease_partition SMALLINT NOT NULL, topic TEXT NOT NULL)",
        """
        CREATE TABLE outbox_published (
            id BIGINT PRIMARY KEY,
            published_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
        )
        """,
        "COMMENT ON TABLE outbox_pending IS "
        "'the outbox rows not yet confirmed by the broker, in id order per lease partition: what the relay publishes'",
        "COMMENT ON TABLE outbox_published IS "
        "'the outbox rows the broker confirmed, kept for the retention window (broker-loss recovery publishes them "
        "again)'",
        "INSERT INTO outbox_pending (id, lease_partition, topic) "
        "SELECT id, lease_partition, topic FROM outbox WHERE published_at IS NULL",
        "INSERT INTO outbox_published (id, published_at) "
        "SELECT id, published_at FROM outbox WHERE published_at IS NOT NULL",
        "DROP INDEX outbox_unpublished",
        "DROP INDEX outbox_published_at",
        "ALTER TABLE outbox DROP COLUMN published_at",
        "CREATE INDEX outbox_published_time ON outbox_published (published_at)",
        """
        CREATE FUNCTION outbox_track_insert() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO outbox_pending (id, lease_partition, topic) SELECT id, lease_partition, topic FROM outbox_new;
            RETURN NULL;
        END $$
        """,
        "CREATE TRIGGER outbox_track_insert AFTER INSERT ON outbox REFERENCING NEW TABLE AS outbox_new "
        "FOR EACH STATEMENT EXECUTE FUNCTION outbox_track_insert()",
        """
        CREATE FUNCTION outbox_track_delete() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            DELETE FROM outbox_pending p USING outbox_old o WHERE p.id = o.id;
            DELETE FROM outbox_published p USING outbox_old o WHERE p.id = o.id;
            RETURN NULL;
        END $$
        """,
        "CREATE TRIGGER outbox_track_delete AFTER DELETE ON outbox REFERENCING OLD TABLE AS outbox_old "
        "FOR EACH STATEMENT EXECUTE FUNCTION outbox_track_delete()",
    ]


def drop_pending_v1() -> list[str]:
    return [
        "LOCK TABLE outbox IN SHARE ROW EXCLUSIVE MODE",
        "DROP TRIGGER outbox_track_delete ON outbox",
        "DROP FUNCTION outbox_track_delete",
        "DROP TRIGGER outbox_track_insert ON outbox",
        "DROP FUNCTION outbox_track_insert",
        "ALTER TABLE outbox ADD COLUMN published_at TIMESTAMPTZ",
        "UPDATE outbox o SET published_at = p.published_at FROM outbox_published p WHERE p.id = o.id",
        "CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL",
        "CREATE INDEX outbox_published_at ON outbox (published_at) WHERE published_at IS NOT NULL",
        "DROP TABLE outbox_published",
        "DROP TABLE outbox_pending",
    ]
