"""The replicated PostgreSQL's refusals, before any server runs: a clone cut short never starts (it would
start as a primary), and a node with no usable folder waits for its peer instead of starting empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventbus.stack.postgres import EmbeddedPostgres, EmbeddedPostgresError
from eventbus.stack.replication import ReplicatedPostgres


def test_a_clone_cut_short_never_starts(tmp_path: Path) -> None:
    node = EmbeddedPostgres(tmp_path / "pg-b", 1)
    node.data_dir.mkdir()
    (node.data_dir / "PG_VERSION").write_text("18\n")
    node.cloning_marker.touch()
    assert not node.usable
    with pytest.raises(EmbeddedPostgresError, match="clone that was cut short"):
        node.start()


def test_a_node_without_a_usable_folder_waits_for_its_peer(tmp_path: Path) -> None:
    pair = ReplicatedPostgres(tmp_path, (1, 2))
    with pytest.raises(EmbeddedPostgresError, match="no usable data folder and its peer is down"):
        pair.relaunch(pair.nodes["postgresql-b"])
    assert not (pair.nodes["postgresql-b"].data_dir / "PG_VERSION").exists()  # no empty primary made


def test_the_standby_that_failed_is_not_promoted_over(tmp_path: Path) -> None:
    """A standby's exit is no failover: nothing to promote."""
    pair = ReplicatedPostgres(tmp_path, (1, 2))
    b = pair.nodes["postgresql-b"]
    b.data_dir.mkdir(parents=True)
    (b.data_dir / "standby.signal").touch()
    assert pair.failover(b) is None and pair.failovers == []
