"""The rules of the broker-loss handling, without I/O: when a relay asks the broker, what counts as a lost log,
which DLQ records are read from the database."""

from __future__ import annotations

from eventbus.consumer.replay.read import DlqRecord
from eventbus.consumer.replay.stored import choose, lost_topics
from eventbus.outbox.loss import BrokerLog, Confirmed
from eventbus.outbox.metrics import RelayMetrics
from eventbus.outbox.publisher import Probe, PublishOutcome


class Conn:
    def __init__(self, up: bool = True) -> None:
        self.up = up

    def connected(self) -> bool:
        return self.up


def _log(now: list[float]) -> BrokerLog:
    return BrokerLog("relay-1", RelayMetrics("test"), interval=2.0, grace=1.0, clock=lambda: now[0])


def test_the_broker_is_asked_on_every_new_connection_and_every_interval_once_something_was_confirmed() -> None:
    now = [100.0]
    log = _log(now)
    conn = Conn()
    assert not log.check_due(True, [conn])  # nothing confirmed: nothing to lose
    log.confirmed(PublishOutcome(offsets={("t", 0): 41}))
    assert log.check_due(True, [conn])  # a connection never checked
    log.checked([conn])
    assert not log.check_due(True, [conn])
    assert log.check_due(True, [conn, Conn()])  # a new connection (the broker restarted?)
    assert log.check_due(True, [Conn(up=False)]) and log.check_due(False, [])
    now[0] += 2.0
    assert log.check_due(True, [conn])  # the interval is up


def test_a_log_that_ends_at_or_below_the_last_confirmed_record_or_a_missing_topic_is_lost() -> None:
    log = _log([0.0])
    log.confirmed(PublishOutcome(offsets={("a", 0): 41, ("a", 1): 9, ("b", 0): 3, ("gone", 0): 5}))
    probe = Probe(topics={"a": 2, "gone": 1}, ends={("a", 0): 42, ("a", 1): 9})
    finding = log.lost_in(probe, retired={"gone"}, counts={"a": 2, "b": 4})
    assert finding is not None
    assert finding.highs == {("a", 1): 8, ("b", 0): -1}  # a[0] holds 41; "gone" is retired, never published again
    assert sorted(finding.lost) == [("a", 2, 1), ("b", 4, 0)]
    assert ("gone", 0) not in log.known
    assert "a[1] ends at 9" in finding.evidence() and "b is missing" in finding.evidence()


def test_a_batch_at_or_below_the_floor_means_the_log_went_back() -> None:
    log = _log([0.0])
    log.confirmed(PublishOutcome(offsets={("a", 0): 41}))
    assert log.floor() == {("a", 0): 41}
    outcome = PublishOutcome(offsets={("a", 0): 2}, went_back={("a", 0): (41, 0)})
    assert log.confirmed(outcome) == {}  # not counted: the new log's offsets are declared with the loss
    finding = log.went_back(outcome, {"a": 3})
    assert finding.lost == [("a", 3, 0)] and finding.highs == {("a", 0): 0}


def test_confirmed_rows_keep_the_oldest_knowledge_of_losses_and_the_highest_offsets() -> None:
    pending = Confirmed()
    pending.add([1, 2], {("a", 0): (0, 10)}, seen_loss=3)
    pending.add([3], {("a", 0): (0, 12), ("a", 1): (0, 4)}, seen_loss=4)
    older = Confirmed()
    older.add([0], {("a", 0): (0, 8)}, seen_loss=2)
    pending.put_back(older)
    assert pending.ids == [0, 1, 2, 3] and pending.seen_loss == 2
    assert pending.offsets == {("a", 0): (0, 12), ("a", 1): (0, 4)}


def _dlq(offset: int, event: str, *, stored: int | None = None) -> DlqRecord:
    return DlqRecord("dlq.g.t", 0, offset, None, b"k", b"{}", [("event_id", event.encode())], stored_offset=stored)


def test_a_dlq_topic_is_read_from_the_database_when_the_broker_lost_records_of_it() -> None:
    kept = [_dlq(-1, "e1", stored=0), _dlq(-2, "e2", stored=1)]
    intact = [_dlq(0, "e1"), _dlq(1, "e2")]
    assert lost_topics(kept, intact, {"dlq.g.t"}, {}) == {}
    assert choose(intact, kept, {"dlq.g.t"}, {}).records == intact
    # the broker came back empty and a new dead letter took offset 0: the old ones are read from the database
    new_log = [_dlq(0, "e3")]
    kept.append(_dlq(-3, "e3", stored=0))
    assert "no longer has dlq.g.t[0]@0" in lost_topics(kept, new_log, {"dlq.g.t"}, {})["dlq.g.t"]
    assert [r.ref for r in choose(new_log, kept, {"dlq.g.t"}, {}).records] == [
        "dlq.g.t[0]@db1", "dlq.g.t[0]@db2", "dlq.g.t[0]@db3"]
    assert "missing" in lost_topics(kept, [], set(), {})["dlq.g.t"]
    # retention deleted it (the log begins after it): not lost
    assert lost_topics([_dlq(-1, "e1", stored=0)], [_dlq(5, "e9")], {"dlq.g.t"}, {("dlq.g.t", 0): 5}) == {}


def test_records_only_the_broker_holds_are_kept_when_a_topic_is_read_from_the_database() -> None:
    kept = [_dlq(-1, "e1", stored=0)]
    broker = [_dlq(0, "e1"), _dlq(1, "old")]  # "old": written before the copies were kept
    chosen = choose(broker, kept, {"dlq.g.t"}, {}, from_database=True)
    assert [r.ref for r in chosen.records] == ["dlq.g.t[0]@1", "dlq.g.t[0]@db1"]
    assert chosen.from_database == {"dlq.g.t": "--from-database"}
