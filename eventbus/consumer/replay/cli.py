"""`python -m eventbus.consumer.replay`: list, inspect and replay dead-lettered records.

  list    DLQ records of a consumer group, grouped by error category and class, with how many are pending,
          replayed, parked or can never succeed, and the most frequent messages; --parking adds the
          parking topics, --records lists every record
  show    one record (topic partition offset) with its key, value and every header
  replay  send selected records back to their original topic (or an allowed target)

It talks to the running stack (`.data/run/stack.json`, or STACK_DATA_DIR's), and says so in its first
line; --bootstrap / KAFKA_BOOTSTRAP_SERVERS and --database-url / DATABASE_URL point it elsewhere.

Every dead letter a worker writes is also kept in its group's database (`dlq_records`): when the broker lost
records of a DLQ topic (the topic is missing, or a kept record is no longer where the broker had put it), `list`
and `replay` read that topic from the database instead, and say so; `--from-database` always does. Such a record
shows as `<topic>[<partition>]@db<id>` (`show` takes `db<id>` as its offset).

Replays send the original key, value and headers (so the `event_id`, and with it dedupe, holds),
with `dlq.replay.count` incremented. A record already replayed `--max-replays` times goes to the
parking topic (`parking.<group>.<topic>`) instead: a poison message cannot loop forever. A DLQ record
that an earlier replay already sent is skipped unless `--again`. Every replay, dry runs included,
is recorded in the group's database (`dlq_replays`, one row per run; `dlq_replayed_records`, one row
per record and what was done with it).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys
import uuid
from collections.abc import Sequence

from eventbus.consumer.replay.inventory import PARKED, STATES, dlq_states, ref_of
from eventbus.consumer.replay.log import redact
from eventbus.consumer.replay.output import group_lines, record_lines, show_lines
from eventbus.consumer.replay.policy import DEFAULT_MAX_REPLAYS, DRY_ACTIONS, Filters, ReplayOptions, parse_time
from eventbus.consumer.replay.read import DlqRecord, ReplayError, dlq_topics, parking_topics, read_records
from eventbus.consumer.replay.run import replay
from eventbus.consumer.replay.stored import choose, group_dsn, group_of_topic, groups_with_copies, stored_records
from eventbus.consumer.replay.stored import notes as stored_copy_notes
from eventbus.db import database_url_for
from eventbus.stack.target import Target, TargetError, resolve

FLAGS = {"database": "--database-url", "kafka": "--bootstrap"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m eventbus.consumer.replay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bootstrap", help="Kafka bootstrap servers (default: KAFKA_BOOTSTRAP_SERVERS, else the "
                                            "running stack's)")
    parser.add_argument("--database-url", help="the PostgreSQL server of the groups' databases, which hold the replay "
                                               "logs (default: DATABASE_URL, else the running stack's)")
    sub = parser.add_subparsers(dest="command", required=True)

    p_list = sub.add_parser("list", help="DLQ records by error class: pending, replayed, parked, can never succeed")
    p_list.add_argument("--group", help="consumer group (default: every group)")
    p_list.add_argument("--topic", help="only the DLQ of this source topic, e.g. hiring.task-results")
    p_list.add_argument("--parking", action="store_true", help="also the parking topics (records replayed "
                                                                "--max-replays times)")
    p_list.add_argument("--records", action="store_true", help="also one line per record")
    p_list.add_argument("--state", action="append", default=[], choices=STATES,
                        help="only records in this state; repeatable")
    p_list.add_argument("--from-database", action="store_true",
                        help="read the DLQ topics from the dead letters kept in the groups' databases")
    _add_filters(p_list)

    p_show = sub.add_parser("show", help="one record with all its headers")
    p_show.add_argument("dlq_topic", help="e.g. dlq.bonus.hiring.task-results")
    p_show.add_argument("partition", type=int)
    p_show.add_argument("offset", type=_offset, help="an offset, or db<id> for a record kept in the database")

    p_replay = sub.add_parser("replay", help="send selected records back (see the filters)",
                              formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p_replay.add_argument("--group", required=True, help="consumer group whose DLQ to replay, e.g. bonus")
    p_replay.add_argument("--topic", help="only the DLQ of this source topic")
    _add_filters(p_replay)
    p_replay.add_argument("--dry-run", action="store_true", help="show what would be done; send nothing")
    p_replay.add_argument("--limit", type=int, help="replay at most this many records")
    p_replay.add_argument("--rate", type=float, help="at most this many records per second")
    p_replay.add_argument("--target", help="send to this topic instead of the original (must be allowed)")
    p_replay.add_argument("--allow-topic", action="append", default=[], metavar="TOPIC",
                          help="also allow this target (the original topic is always allowed); repeatable")
    p_replay.add_argument("--max-replays", type=int, default=DEFAULT_MAX_REPLAYS,
                          help="a record replayed this many times goes to the parking topic instead")
    p_replay.add_argument("--again", action="store_true",
                          help="also replay records an earlier replay already sent (dedupe keeps the effect once)")
    p_replay.add_argument("--from-database", action="store_true",
                          help="read the DLQ topics from the dead letters kept in the group's database")
    p_replay.add_argument("--database", help="the group's database URL for the replay log (default: the group's "
                                             "database on the --database-url server)")
    p_replay.add_argument("--operator", default=os.environ.get("USER") or _user(), help="recorded in dlq_replays")
    return parser


def _add_filters(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="since", type=parse_time, help="failed at or after (ISO 8601, or 30m / 2h / 7d ago)")
    p.add_argument("--to", dest="until", type=parse_time, help="failed at or before")
    p.add_argument("--key", action="append", default=[], help="record key; repeatable")
    p.add_argument("--event-id", action="append", default=[], help="event id; repeatable")
    p.add_argument("--category", action="append", default=[], choices=["non-retriable", "retriable", "unknown"])
    p.add_argument("--error-class", action="append", default=[],
                   help="full or short class name, e.g. SchemaInvalid; repeatable")


def _offset(text: str) -> int:
    """An offset, or `db<id>` (a record kept in the database: offset -id)."""
    if text.startswith("db") and text[2:].isdigit():
        return -int(text[2:])
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an offset or db<id>, got {text!r}") from None


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _filters(args: argparse.Namespace) -> Filters:
    for event_id in args.event_id:
        try:
            uuid.UUID(event_id)
        except ValueError:
            raise ReplayError(f"--event-id {event_id!r} is not a UUID") from None
    return Filters(args.since, args.until, frozenset(args.key), frozenset(args.event_id), frozenset(args.category),
                   frozenset(args.error_class))


def _target(args: argparse.Namespace, *needs: str) -> Target:
    """Where to talk to; the first line of the output says it."""
    target = resolve(database=args.database_url, kafka=args.bootstrap, flags=FLAGS)
    for name in needs:
        target.need(name)
    print(target.describe("database", "kafka") if args.command != "show" else target.describe("kafka"), flush=True)
    return target


async def _main(args: argparse.Namespace) -> int:
    if args.command == "show":
        if args.offset < 0:
            found = await _show_stored(args)
        else:
            bootstrap = _target(args, "kafka").need("kafka")
            records = await read_records(bootstrap, [args.dlq_topic])
            found = [r for r in records if (r.partition, r.offset) == (args.partition, args.offset)]
        if not found:
            at = f"db{-args.offset}" if args.offset < 0 else args.offset
            raise ReplayError(f"no record at {args.dlq_topic}[{args.partition}]@{at}; `dlq-list` shows "
                              "where records are")
        print("\n".join(show_lines(found[0])))
        return 0
    filters = _filters(args)
    if args.command == "list":
        return await _list(args, filters)
    if args.database:
        target = _target(args, "kafka")
        dsn = args.database
        print(f"replay log: {redact(dsn)} (from --database)")
    else:
        target = _target(args, "kafka") if os.environ.get(f"{args.group.upper()}_DATABASE_URL") else \
            _target(args, "kafka", "database")
        dsn = database_url_for(target.database_url or "", args.group, os.environ)
    options = ReplayOptions(group=args.group, filters=filters, source_topic=args.topic, target=args.target,
                            allow=frozenset(args.allow_topic), dry_run=args.dry_run, limit=args.limit,
                            rate=args.rate, max_replays=args.max_replays, again=args.again, operator=args.operator,
                            from_database=args.from_database)
    summary = await replay(target.need("kafka"), dsn, options)
    for note in summary.notes:
        print(f"note: {note}")
    for record, action, detail in summary.actions:
        shown = DRY_ACTIONS[action].replace("-", " ") if options.dry_run else action
        print(f"  {record.ref} event_id={record.event_id or '-'} {record.error_class}: {shown} -> {detail}")
    print(summary.line())
    return 0 if summary.result in ("ok", "dry-run") else 1


async def _show_stored(args: argparse.Namespace) -> list[DlqRecord]:
    target = resolve(database=args.database_url, kafka=args.bootstrap, flags=FLAGS)
    group = group_of_topic(args.dlq_topic)
    dsn = group_dsn(target.database_url, group)
    if dsn is None:
        raise ReplayError(f"no database for group {group}: pass --database-url or start the stack")
    print(f"the dead letters kept in the {group} database: {redact(dsn)}", flush=True)
    found = await stored_records(dsn, group, record_id=-args.offset) or []
    return [r for r in found if (r.topic, r.partition) == (args.dlq_topic, args.partition)]


async def _stored(target: Target, group: str | None, topic: str | None, topics: list[str]
                  ) -> tuple[list[DlqRecord], list[str]]:
    """The dead letters kept in the databases of `group`, else of the groups the DLQ topics or the server name."""
    groups = {group} if group else {group_of_topic(t) for t in topics}
    if not group and target.database_url:
        groups |= set(await groups_with_copies(target.database_url))
    stored: list[DlqRecord] = []
    notes = []
    for name in sorted(groups):
        dsn = group_dsn(target.database_url, name)
        if dsn is None:
            notes.append(f"dead letters kept by group {name} not read: no database (pass --database-url or start "
                         "the stack)")
            continue
        try:
            stored += await stored_records(dsn, name, topic) or []
        except ReplayError as exc:
            notes.append(str(exc))
    return stored, notes


async def _list(args: argparse.Namespace, filters: Filters) -> int:
    target = _target(args, "kafka")
    bootstrap = target.need("kafka")
    topics = await dlq_topics(bootstrap, args.group, args.topic)
    stored, stored_notes = await _stored(target, args.group, args.topic, topics)
    starts: dict[tuple[str, int], int] = {}
    chosen = choose(await read_records(bootstrap, topics, sys.stderr, starts=starts), stored, topics, starts,
                    from_database=args.from_database)
    records = [r for r in chosen.records if filters.matches(r)]
    states, notes = await dlq_states(records, target.database_url)
    if args.state:
        records = [r for r in records if states[ref_of(r)] in args.state]
    print(f"DLQ topics: {', '.join(sorted(set(topics) | set(chosen.from_database))) or 'none'}")
    for note in stored_notes + stored_copy_notes(chosen, stored) + notes:
        print(f"note: {note}")
    print("\n".join(group_lines(records, states)))
    if args.records and records:
        print("\n".join(record_lines(records, states)))
    if args.parking:
        parking = await parking_topics(bootstrap, args.group, args.topic)
        parked = [r for r in await read_records(bootstrap, parking, sys.stderr) if filters.matches(r)]
        parked_states = {ref_of(r): PARKED for r in parked}
        print(f"\nparking topics: {', '.join(parking) or 'none'}")
        print("\n".join(group_lines(parked, parked_states, what="parked")))
        if args.records and parked:
            print("\n".join(record_lines(parked, parked_states)))
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "limit", None) is not None and args.limit < 1:
        print("error: --limit must be at least 1", file=sys.stderr)
        return 2
    try:
        return asyncio.run(_main(args))
    except (ReplayError, TargetError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: what was sent before is recorded in dlq_replays", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
