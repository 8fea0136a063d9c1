"""The whole system as processes: `python -m services.stack run | run-bg | stop | status`.

`run` starts embedded PostgreSQL unless DATABASE_URL is set and Tansu unless KAFKA_BOOTSTRAP_SERVERS
is set, creates and migrates the databases, declares the topics, starts the registry (which loads
schemas/), the three APIs, the two relays and the two workers, waits for every /health, prints the
URLs and one "ready in N s" line, and on Ctrl-C or SIGTERM stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventbus.consumer.dlq import dlq_topic, parking_topic
from eventbus.migrate import ALL_DATABASES, upgrade
from eventbus.settings import REPO_ROOT
from eventbus.stack.broker import BrokerError, TansuBroker
from eventbus.stack.postgres import EmbeddedPostgres, EmbeddedPostgresError
from eventbus.stack.supervisor import ProcessSpec, StartupError, Supervisor, python_module
from eventbus.topics import TopicMismatch, TopicSpec, ensure_topics
from services.topology import BONUS_GROUP, HIRING_GROUP, TASKS, TOPICS


class StackSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore")

    database_url: str | None = None
    kafka_bootstrap_servers: str | None = None
    embedded_pg_port: int = 54329
    embedded_kafka_port: int = 19092
    stack_data_dir: Path = REPO_ROOT / ".data"
    host: str = "127.0.0.1"
    registry_port: int = 8000
    management_port: int = 8001
    hiring_port: int = 8002
    bonus_port: int = 8003
    management_relay_port: int = 8101
    hiring_relay_port: int = 8102
    bonus_worker_port: int = 8103
    hiring_worker_port: int = 8104
    ready_timeout: float = 120.0
    #: 1 on the embedded broker; 3 on the compose cluster (min.insync.replicas=2)
    topic_replication_factor: int = 1

    @property
    def registry_url(self) -> str:
        return f"http://{self.host}:{self.registry_port}"


def process_specs(s: StackSettings) -> list[ProcessSpec]:
    return [
        ProcessSpec("registry", python_module("registry"), s.registry_port, {"REGISTRY_PORT": str(s.registry_port)}),
        ProcessSpec("management", python_module("services.management"), s.management_port,
                    {"MANAGEMENT_PORT": str(s.management_port)}),
        ProcessSpec("hiring", python_module("services.hiring"), s.hiring_port, {"HIRING_PORT": str(s.hiring_port)}),
        ProcessSpec("bonus", python_module("services.bonus"), s.bonus_port, {"BONUS_PORT": str(s.bonus_port)}),
        ProcessSpec("management-relay", python_module("services.management.relay"), s.management_relay_port,
                    {"RELAY_PORT": str(s.management_relay_port)}),
        ProcessSpec("hiring-relay", python_module("services.hiring.relay"), s.hiring_relay_port,
                    {"RELAY_PORT": str(s.hiring_relay_port)}),
        ProcessSpec("bonus-worker", python_module("services.bonus.worker"), s.bonus_worker_port,
                    {"WORKER_PORT": str(s.bonus_worker_port)}),
        ProcessSpec("hiring-worker", python_module("services.hiring.worker"), s.hiring_worker_port,
                    {"WORKER_PORT": str(s.hiring_worker_port)}),
    ]


DAY_MS = 86_400_000
#: 7 d on the event topics, 14 d in DLQ and parking topics: 21 d < the workers' 30 d dedupe retention
#: (CONSUMER_DEDUPE_RETENTION_DAYS), so a replay near the end of a DLQ record's life is still deduplicated.
EVENT_RETENTION_MS = 7 * DAY_MS
DLQ_RETENTION_MS = 14 * DAY_MS


def all_topics(replication_factor: int = 1) -> list[TopicSpec]:
    """The event topics and every consumer group's DLQ and parking topics."""
    consumed = [(BONUS_GROUP, t) for t in TOPICS] + [(HIRING_GROUP, TASKS)]
    events = [TopicSpec(t.name, t.partitions, replication_factor, EVENT_RETENTION_MS) for t in TOPICS]
    dlqs = [TopicSpec(name(group, t.name), t.partitions, replication_factor, DLQ_RETENTION_MS)
            for group, t in consumed for name in (dlq_topic, parking_topic)]
    return events + dlqs


def initialise(database_url: str, bootstrap_servers: str, replication_factor: int) -> list[str]:
    """Create and migrate the databases and declare the topics; return the topics created."""
    for database in ALL_DATABASES:
        upgrade(database, database_url)
    return asyncio.run(ensure_topics(bootstrap_servers, all_topics(replication_factor)))


@dataclass
class Stack:
    settings: StackSettings
    postgres: EmbeddedPostgres | None = None
    broker: TansuBroker | None = None
    supervisor: Supervisor | None = None
    database_url: str = ""
    bootstrap_servers: str = ""

    @property
    def log_dir(self) -> Path:
        return self.settings.stack_data_dir / "logs"

    def urls(self) -> dict[str, str]:
        assert self.supervisor is not None
        return {name: f"http://{self.settings.host}:{spec.port}" for name, spec in self.supervisor.specs.items()}

    def up(self, progress: bool = True) -> float:
        """Start everything; return the seconds it took to be ready."""
        started = time.monotonic()
        say = print if progress else (lambda *_a, **_k: None)
        s = self.settings
        s.stack_data_dir.mkdir(parents=True, exist_ok=True)
        if s.database_url:
            self.database_url = s.database_url
            say(f"PostgreSQL: external ({_redact(self.database_url)})")
        else:
            self.postgres = EmbeddedPostgres(s.stack_data_dir / "pg", s.embedded_pg_port)
            self.database_url = self.postgres.start()
            say(f"PostgreSQL: embedded, {self.database_url} (data in {self.postgres.data_dir})")
        if s.kafka_bootstrap_servers:
            self.bootstrap_servers = s.kafka_bootstrap_servers
            say(f"Kafka: external ({self.bootstrap_servers})")
        else:
            self.broker = TansuBroker(s.embedded_kafka_port, self.log_dir / "tansu.log")
            self.bootstrap_servers = self.broker.start()
            say(f"Kafka: embedded Tansu, {self.bootstrap_servers} (memory storage)")
        created = initialise(self.database_url, self.bootstrap_servers, s.topic_replication_factor)
        say(f"databases migrated: {', '.join(ALL_DATABASES)}; topics declared ({len(created)} new)")
        self.supervisor = Supervisor(self.log_dir, {
            "DATABASE_URL": self.database_url,
            "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
            "REGISTRY_URL": s.registry_url,
            "HOST": s.host,
            "PYTHONUNBUFFERED": "1",
        })
        specs = process_specs(s)
        self.supervisor.start(specs[0])
        self.supervisor.wait_healthy(["registry"], s.ready_timeout)  # the others validate against it
        for spec in specs[1:]:
            self.supervisor.start(spec)
        self.supervisor.wait_healthy([sp.name for sp in specs[1:]], s.ready_timeout)
        return time.monotonic() - started

    def down(self) -> None:
        if self.supervisor is not None:
            self.supervisor.stop_all()
        if self.broker is not None:
            self.broker.stop()
        if self.postgres is not None:
            self.postgres.stop()


def _redact(url: str) -> str:
    _, sep, tail = url.partition("@")
    return ("postgresql://***@" + tail) if sep else url


# -- the CLI -------------------------------------------------------------------------------------
def _state_file(s: StackSettings) -> Path:
    return s.stack_data_dir / "run" / "stack.json"


def _read_state(s: StackSettings) -> dict[str, object] | None:
    try:
        state: dict[str, object] = json.loads(_state_file(s).read_text())
    except (OSError, ValueError):
        return None
    pid = state.get("pid")
    if not isinstance(pid, int) or not _alive(pid):
        return None
    return state


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _write_state(s: StackSettings, **state: object) -> None:
    path = _state_file(s)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"pid": os.getpid(), **state}))


def cmd_run(s: StackSettings) -> int:
    running = _read_state(s)
    if running:
        print(f"the stack is already running (pid {running['pid']}); `make stop` first", file=sys.stderr)
        return 1
    stop = False

    def on_signal(_sig: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stack = Stack(s)
    _write_state(s, ready=False)
    try:
        ready_in = stack.up()
        urls = stack.urls()
        _write_state(s, ready=True, urls=urls, ready_in=round(ready_in, 1))
        for name, url in urls.items():
            print(f"  {name:<17} {url}")
        print(f"logs: {stack.log_dir}/<process>.log")
        print(f"ready in {ready_in:.1f} s  (Ctrl-C stops everything)", flush=True)
        reported: set[str] = set()
        while not stop:
            time.sleep(0.3)
            assert stack.supervisor is not None
            if _restart_file(s).exists():
                _serve_restart(s, stack, reported)
            for name, code in stack.supervisor.exited().items():
                if name not in reported:
                    reported.add(name)
                    print(f"!! {name} exited with code {code}; see {stack.supervisor.log_path(name)}", flush=True)
        return 0
    except (StartupError, BrokerError, EmbeddedPostgresError, TopicMismatch) as exc:
        print(f"startup failed: {exc}", file=sys.stderr)
        return 1
    finally:
        print("stopping...", flush=True)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.down()
        _state_file(s).unlink(missing_ok=True)
        print("stopped", flush=True)


def _restart_file(s: StackSettings) -> Path:
    return s.stack_data_dir / "restart-request.json"


def _write_json(path: Path, body: object) -> None:
    """Readers never see a half-written file: write beside it, then rename over it."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(body))
    os.replace(partial, path)


def _serve_restart(s: StackSettings, stack: Stack, reported: set[str]) -> None:
    """Restart one process, with changed environment if asked (deploying a fix or a flag)."""
    path = _restart_file(s)
    try:
        request = json.loads(path.read_text())
        name, env = request["name"], {str(k): str(v) for k, v in request.get("env", {}).items()}
    except (OSError, ValueError, KeyError, AttributeError) as exc:
        print(f"!! refusing a bad restart request ({exc!r})", flush=True)
        _write_json(path, {"error": f"bad restart request ({exc!r})"})
        return
    supervisor = stack.supervisor
    assert supervisor is not None
    spec = supervisor.specs.get(name)
    if spec is None:
        _write_json(path, {**request, "error": f"no process {name!r}; known: {sorted(supervisor.specs)}"})
        return
    print(f"restarting {name}" + (f" with {env}" if env else ""), flush=True)
    supervisor.stop(name)
    supervisor.start(ProcessSpec(spec.name, spec.argv, spec.port, {**spec.env, **env}, spec.health_path))
    reported.discard(name)
    path.unlink(missing_ok=True)


def cmd_restart(s: StackSettings, name: str, env: list[str]) -> int:
    state = _read_state(s)
    if not state or not state.get("ready"):
        print("the stack is not running; `make run-bg` first", file=sys.stderr)
        return 1
    urls = state.get("urls")
    assert isinstance(urls, dict)
    if name not in urls:
        print(f"no process {name!r}; known: {', '.join(sorted(urls))}", file=sys.stderr)
        return 2
    pairs = {}
    for item in env:
        key, sep, value = item.partition("=")
        if not sep or not key:
            print(f"--env {item!r}: write NAME=VALUE", file=sys.stderr)
            return 2
        pairs[key] = value
    path = _restart_file(s)
    _write_json(path, {"name": name, "env": pairs})
    deadline = time.monotonic() + s.ready_timeout
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
        with contextlib.suppress(OSError, ValueError):
            error = json.loads(path.read_text()).get("error")
            if error:
                path.unlink(missing_ok=True)
                print(error, file=sys.stderr)
                return 2
    if path.exists():
        path.unlink(missing_ok=True)
        print(f"the stack did not take the restart request in {s.ready_timeout:.0f} s; is its `run` loop alive? "
              f"(see {s.stack_data_dir / 'logs' / 'stack.log'})", file=sys.stderr)
        return 1
    url = f"{urls[name]}/health"
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=2).status_code == 200:
                print(f"{name} restarted and healthy")
                return 0
        time.sleep(0.2)
    print(f"{name} is not healthy after the restart; see {s.stack_data_dir / 'logs' / (name + '.log')}",
          file=sys.stderr)
    return 1


def cmd_run_bg(s: StackSettings) -> int:
    if _read_state(s):
        print("the stack is already running; `make stop` first", file=sys.stderr)
        return 1
    log = s.stack_data_dir / "logs" / "stack.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        child = subprocess.Popen([sys.executable, "-m", "services.stack", "run"], stdout=out, stderr=subprocess.STDOUT,
                                 stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + s.ready_timeout + 30
    while time.monotonic() < deadline:
        if child.poll() is not None:
            print(f"the stack failed to start; see {log}:\n" + log.read_text(errors="replace")[-3000:], file=sys.stderr)
            return 1
        state = _read_state(s)
        if state and state.get("ready"):
            urls = state.get("urls")
            assert isinstance(urls, dict)
            for name, url in urls.items():
                print(f"  {name:<17} {url}")
            print(f"ready in {state['ready_in']} s (pid {child.pid}; `make stop` stops it; log {log})")
            return 0
        time.sleep(0.2)
    print(f"not ready in time; see {log}", file=sys.stderr)
    return 1


def cmd_stop(s: StackSettings) -> int:
    state = _read_state(s)
    if not state:
        print("the stack is not running")
        return 0
    pid = state["pid"]
    assert isinstance(pid, int)
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if _alive(pid):
        os.killpg(pid, signal.SIGKILL)
        print(f"the stack (pid {pid}) did not stop in 60 s and was killed")
        return 1
    print("stopped")
    return 0


def cmd_init(s: StackSettings) -> int:
    """For external servers (docker compose): databases, migrations and topics, then exit."""
    if not s.database_url or not s.kafka_bootstrap_servers:
        print("init needs DATABASE_URL and KAFKA_BOOTSTRAP_SERVERS (it does not start the embedded stack)",
              file=sys.stderr)
        return 2
    created = initialise(s.database_url, s.kafka_bootstrap_servers, s.topic_replication_factor)
    print(f"databases migrated: {', '.join(ALL_DATABASES)}; topics created: {', '.join(created) or 'none'}")
    return 0


def cmd_status(s: StackSettings) -> int:
    state = _read_state(s)
    print(json.dumps(state or {"running": False}, indent=2))
    return 0 if state else 1


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.stack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "run-bg", "stop", "status", "init", "restart"],
                        help="run: foreground; run-bg: background; stop; status; init: migrate and declare "
                             "topics on external servers; restart NAME: restart one process of a running stack")
    parser.add_argument("name", nargs="?", help="restart: the process, e.g. bonus-worker")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="restart: set this variable for the restarted process (repeatable)")
    args = parser.parse_args()
    settings = StackSettings()
    if args.command == "restart":
        if not args.name:
            parser.error("restart needs the process name, e.g. `restart bonus-worker`")
        sys.exit(cmd_restart(settings, args.name, args.env))
    commands = {"run": cmd_run, "run-bg": cmd_run_bg, "stop": cmd_stop, "status": cmd_status, "init": cmd_init}
    sys.exit(commands[args.command](settings))


if __name__ == "__main__":
    main()
