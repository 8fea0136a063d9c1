"""Tables of the switches, in every service database (frozen migration steps, as in `eventbus.outbox.ddl`)."""

from __future__ import annotations

NOTIFY_CHANNEL = "flags"


def create_v1() -> list[str]:
    return [
        """
        CREATE TABLE flags (
            name TEXT PRIMARY KEY,
            value JSONB NOT NULL,
            retired JSONB NOT NULL DEFAULT '[]',
            changed_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
            changed_by TEXT NOT NULL,
            reason TEXT NOT NULL,
            change_id BIGINT NOT NULL DEFAULT 0
        )
        """,
        "COMMENT ON COLUMN flags.retired IS 'values a playbook retired (the old path is gone): set refuses them'",
        """
        CREATE TABLE flag_changes (
            id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name TEXT NOT NULL,
            old_value JSONB,
            new_value JSONB NOT NULL,
            changed_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
            changed_by TEXT NOT NULL,
            reason TEXT NOT NULL,
            outbox_boundary BIGINT
        )
        """,
        "COMMENT ON COLUMN flag_changes.outbox_boundary IS "
        "'max(outbox.id) once every writer that read the old value had committed: later ids read the new value'",
        "CREATE INDEX flag_changes_name ON flag_changes (name, id)",
        f"""
        CREATE FUNCTION flags_notify() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('{NOTIFY_CHANNEL}', NEW.name);
            RETURN NULL;
        END $$
        """,
        "CREATE TRIGGER flags_notify AFTER INSERT OR UPDATE ON flags FOR EACH ROW EXECUTE FUNCTION flags_notify()",
        """
        CREATE TABLE instances (
            instance_id TEXT PRIMARY KEY,
            role TEXT NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
            last_seen TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
            stopped_at TIMESTAMPTZ,
            report JSONB NOT NULL DEFAULT '{}'
        )
        """,
        "COMMENT ON TABLE instances IS 'one row per process: what it accepts, the modes and flags it applies "
        "(heartbeat; a row not seen lately is a stale or dead instance)'",
    ]


def drop_v1() -> list[str]:
    return ["DROP TABLE instances", "DROP TABLE flag_changes", "DROP TABLE flags", "DROP FUNCTION flags_notify"]
