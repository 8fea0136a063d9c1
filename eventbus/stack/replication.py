"""A replicated embedded PostgreSQL: a primary and a synchronous standby from the same binaries (seeds 000 and
002), with failover done by the stack's supervision (`NodeUnit`), so no step is manual.

- **Acknowledged means on both nodes.** The primary runs with `synchronous_standby_names='*'` and
  `synchronous_commit=remote_apply`: a commit returns once the standby has flushed and applied its WAL, so a
  read on the standby (`read_url`: the bonus balance and ledger) sees every acknowledged write.
- **While no standby is connected, commits wait** (seed 000's answer, Patroni's `synchronous_mode_strict`). The
  supervision brings the standby back in about a second. A client that gives up while a commit waits gets an
  error, not an acknowledgement. The transaction may still be committed on the primary: PostgreSQL's warning
  "canceling wait for synchronous replication". The APIs' writes are idempotent by id, so a retry answers 409 or
  the same result.
- **Clients find the writable node themselves.** They use a multi-host URL with `target_session_attrs=read-write`
  (`url`); `read_url` prefers the standby for read-only work.
- **Failover.** When the primary's postmaster exits, its standby is promoted at once (`failover`). When the
  supervision restarts the old primary (`relaunch`), its folder is cloned again from the new primary
  (pg_basebackup) and it starts as that primary's standby. What the old primary held beyond the standby was
  never acknowledged, so it is dropped with the folder.
- **Roles are kept in the folders** (`standby.signal`), so a stopped stack starts again with the same roles.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

from eventbus.stack.postgres import EmbeddedPostgres, EmbeddedPostgresError

#: what makes the pair replicate synchronously (given to both nodes: a promoted standby is a primary like the first)
SYNC_OPTIONS = {
    "wal_level": "replica",
    "max_wal_senders": "10",
    "hot_standby": "on",
    "synchronous_standby_names": "*",
    # a commit returns once the standby has applied it: a read there sees every acknowledged write
    "synchronous_commit": "remote_apply",
    # enough WAL kept for a standby that was down a while to catch up by streaming
    "wal_keep_size": "512MB",
    # a standby notices a dead primary's connection quickly (it is promoted anyway; this keeps its log honest)
    "wal_receiver_timeout": "5s",
}

NODE_NAMES = ("postgresql-a", "postgresql-b")


def alive(node: EmbeddedPostgres) -> bool:
    """The node's postmaster runs (our child's exit status when it is ours: a zombie is not alive)."""
    if node.process is not None:
        return node.process.poll() is None
    return node.running()


class ReplicatedPostgres:
    def __init__(self, data_dir: Path, ports: tuple[int, int], *, host: str = "127.0.0.1",
                 say: Callable[[str], None] = lambda line: None) -> None:
        self.host = host
        self.nodes = {name: EmbeddedPostgres(data_dir / f"pg-{name.rpartition('-')[2]}", port, host=host,
                                             options=SYNC_OPTIONS)
                      for name, port in zip(NODE_NAMES, ports, strict=True)}
        self.say = say
        #: failovers done since the start: (when, monotonic seconds; the node promoted)
        self.failovers: list[tuple[float, str]] = []
        self._lock = threading.RLock()

    def _url(self, attrs: str) -> str:
        hosts = ",".join(f"{n.host}:{n.port}" for n in self.nodes.values())
        return f"postgresql://postgres@{hosts}/postgres?target_session_attrs={attrs}"

    @property
    def url(self) -> str:
        """Every node; a connection lands on the writable one."""
        return self._url("read-write")

    @property
    def read_url(self) -> str:
        """Every node; a connection lands on the standby while one answers, else on the primary."""
        return self._url("prefer-standby")

    def name_of(self, node: EmbeddedPostgres) -> str:
        return next(name for name, n in self.nodes.items() if n is node)

    def peer(self, node: EmbeddedPostgres) -> EmbeddedPostgres:
        return next(n for n in self.nodes.values() if n is not node)

    def role(self, node: EmbeddedPostgres) -> str:
        return "standby" if node.is_standby else "primary"

    def primary(self) -> EmbeddedPostgres | None:
        """The running node that takes writes."""
        return next((n for n in self.nodes.values() if alive(n) and not n.is_standby), None)

    def start(self) -> str:
        """Start both nodes (the first start makes the first node primary and clones the second from it); return
        `url`."""
        with self._lock:
            a, b = self.nodes.values()
            fresh = [n for n in (a, b) if not (n.data_dir / "PG_VERSION").exists()]
            primary = next((n for n in (a, b) if n not in fresh and not n.is_standby), a)
            standby = self.peer(primary)
            primary.start()
            if standby in fresh or not standby.is_standby:  # new, or a second primary (never both: rebuilt)
                standby.clone_from(primary.host, primary.port)
            standby.start()
            return self.url

    def failover(self, dead: EmbeddedPostgres) -> str | None:
        """`dead`'s postmaster exited: when it was the primary and its standby runs, promote the standby; say what
        was done (None: nothing to do)."""
        with self._lock:
            peer = self.peer(dead)
            if dead.is_standby or alive(dead) or not alive(peer) or not peer.is_standby:
                return None
            started = time.monotonic()
            peer.promote()
            self.failovers.append((time.monotonic(), self.name_of(peer)))
            return (f"FAILOVER: {self.name_of(peer)} promoted to primary in {time.monotonic() - started:.2f} s "
                    f"({self.name_of(dead)} went down)")

    def relaunch(self, node: EmbeddedPostgres) -> None:
        """Start `node` again after it went down: as the standby of its peer when the peer is (now) the primary,
        cloned from it; else on its own folder (its peer is down too, or it was the standby)."""
        with self._lock:
            peer = self.peer(node)
            if not node.usable and not alive(peer):
                raise EmbeddedPostgresError(f"{self.name_of(node)} has no usable data folder and its peer is down: "
                                            "it is cloned once the peer runs again")
            if (not node.is_standby or not node.usable) and alive(peer):
                if peer.is_standby:
                    self.failover(node)
                if peer.is_standby:
                    raise EmbeddedPostgresError(f"{self.name_of(peer)} could not be promoted")
                self.say(f"{self.name_of(node)}: cloning it from the new primary {self.name_of(peer)} "
                         f"to follow it")
                node.reap(kill=True)
                node.clone_from(peer.host, peer.port)
            node.start()

    def stop(self) -> None:
        """The standby last: the primary's last commits wait for it."""
        nodes = sorted(self.nodes.values(), key=lambda n: n.is_standby)
        for node in nodes:
            node.stop()
