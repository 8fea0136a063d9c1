"""The whole system as processes: `python -m services.stack run | run-bg | stop | status | init | restart`.

`run` starts embedded PostgreSQL unless DATABASE_URL is set and Tansu unless KAFKA_BOOTSTRAP_SERVERS
is set, creates and migrates the databases, declares the topics, starts the registry (which loads
schemas/), the three APIs, the two relays and the two workers, waits for every /health, prints the
URLs and one "ready in N s" line, then keeps them running: whatever exits or stops answering its health
check is started again, with backoff, until it crash-loops (`eventbus.stack.supervision`; STACK_AUTO_RESTART=0
turns that off). On Ctrl-C or SIGTERM it stops everything it started.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import signal
import subprocess
import sys
import time
from typing import TYPE_CHECKING

from eventbus.stack.restart import request_restart
from eventbus.stack.state import pid_alive, read_state, remove_state, write_state
from eventbus.stack.status import check_stack, render
from eventbus.stack.target import shown_path, why_no_stack
from services.stack.settings import StackSettings

if TYPE_CHECKING:
    from services.stack.system import Stack

# `status`, `stop` and `restart` import only what they use: `status` answers in a fraction of a second, while
# `run` and `init` import the services' code (migrations, Kafka clients) inside their functions.


def cmd_run(s: StackSettings) -> int:
    from eventbus.stack.broker import BrokerError
    from eventbus.stack.postgres import EmbeddedPostgresError
    from eventbus.stack.supervisor import StartupError
    from eventbus.topics import TopicMismatch
    from services.stack.system import Stack
    from services.stages import StartRefused

    running = read_state(s.stack_data_dir)
    if running:
        print(f"the stack is already running (pid {running.pid}); `make stop` first", file=sys.stderr)
        return 1
    stop = False

    def on_signal(_sig: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    stack = Stack(s)
    started_at = time.time()
    write_state(s.stack_data_dir, ready=False, started_at=started_at)
    try:
        ready_in = round(stack.up(), 1)

        def save() -> None:
            record(s, stack, ready=True, ready_in=ready_in, started_at=started_at)

        save()
        urls = stack.urls()
        for name, url in urls.items():
            print(f"  {name:<17} {url}")
        print(f"logs: {stack.log_dir}/<process>.log")
        print(f"supervision: {s.restart_policy().describe()}")
        print(f"ready in {ready_in:.1f} s  (Ctrl-C stops everything)", flush=True)
        stack.supervise(lambda: stop, save)
        return 0
    except (StartupError, BrokerError, EmbeddedPostgresError, TopicMismatch, StartRefused) as exc:
        print(f"startup failed: {exc}", file=sys.stderr)
        return 1
    finally:
        print("stopping...", flush=True)
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        stack.down()
        remove_state(s.stack_data_dir)
        print("stopped", flush=True)


def record(s: StackSettings, stack: Stack, *, ready: bool, ready_in: float, started_at: float) -> None:
    """The state file: where the running stack's servers and processes are, for `status` and operator commands."""
    write_state(s.stack_data_dir, ready=ready, ready_in=ready_in, started_at=started_at,
                database_url=stack.database_url, bootstrap_servers=stack.bootstrap_servers,
                registry_url=stack.registry_url,
                processes={name: dataclasses.asdict(p) for name, p in stack.processes().items()},
                servers={name: dataclasses.asdict(v) for name, v in stack.servers().items()})


def cmd_restart(s: StackSettings, name: str, env: list[str], unset: list[str] | None = None,
                clear_env: bool = False) -> int:
    state = read_state(s.stack_data_dir)
    if not state or not state.ready:
        print("the stack is not running; `make run-bg` first", file=sys.stderr)
        return 1
    return request_restart(s.stack_data_dir, state.urls, name, env, s.ready_timeout, unset=unset,
                           clear_env=clear_env)


def cmd_run_bg(s: StackSettings) -> int:
    if read_state(s.stack_data_dir):
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
        state = read_state(s.stack_data_dir)
        if state and state.ready:
            for name, url in state.urls.items():
                print(f"  {name:<17} {url}")
            print(f"ready in {state.ready_in} s (pid {child.pid}; `make stop` stops it, `make status` checks it; "
                  f"log {log})")
            return 0
        time.sleep(0.2)
    print(f"not ready in time; see {log}", file=sys.stderr)
    return 1


def cmd_stop(s: StackSettings) -> int:
    state = read_state(s.stack_data_dir)
    if not state:
        print("the stack is not running")
        return 0
    pid = state.pid
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 60
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    if pid_alive(pid):
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
    from eventbus.migrate import ALL_DATABASES
    from services.stack.topology import initialise

    created = initialise(s.database_url, s.kafka_bootstrap_servers, s.topic_replication_factor, s.stack_start)
    print(f"databases migrated: {', '.join(ALL_DATABASES)}; topics created: {', '.join(created) or 'none'}")
    return 0


NOT_RUNNING = 3


def cmd_status(s: StackSettings, as_json: bool = False) -> int:
    """One line per server and process from live checks; exit 0 when all are healthy, 1 when any is not (or
    the stack is still starting), 3 when no stack runs."""
    state = read_state(s.stack_data_dir)
    if state is None:
        reason = why_no_stack(s.stack_data_dir)
        if as_json:
            print(json.dumps({"running": False, "reason": reason}))
        else:
            print(f"stack: not running: {reason}. Start it with `make run-bg` (or `make run`); STACK_DATA_DIR "
                  "picks the data folder of a stack started elsewhere")
        return NOT_RUNNING
    checks = asyncio.run(check_stack(state))
    healthy = state.ready and all(c.healthy for c in checks)
    if as_json:
        print(json.dumps({"running": True, "ready": state.ready, "healthy": healthy, "pid": state.pid,
                          "data_dir": str(state.data_dir), "checks": [dataclasses.asdict(c) for c in checks]},
                         indent=2))
    else:
        print("\n".join(render(state, checks, shown_path(s.stack_data_dir))))
    return 0 if healthy else 1


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m services.stack", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["run", "run-bg", "stop", "status", "init", "restart"],
                        help="run: foreground; run-bg: background; stop; status; init: migrate and declare "
                             "topics on external servers; restart NAME: restart one process of a running stack")
    parser.add_argument("name", nargs="?", help="restart: the process (e.g. bonus-worker), or postgresql or kafka")
    parser.add_argument("--env", action="append", default=[], metavar="NAME=VALUE",
                        help="restart: set this variable for the restarted process, and its later restarts "
                             "(repeatable)")
    parser.add_argument("--unset", action="append", default=[], metavar="NAME",
                        help="restart: drop a variable an earlier --env set (repeatable)")
    parser.add_argument("--clear-env", action="store_true", help="restart: drop every variable earlier --env set")
    parser.add_argument("--json", action="store_true", help="status: machine-readable output")
    args = parser.parse_args(argv)
    settings = StackSettings()
    if args.command == "restart":
        if not args.name:
            parser.error("restart needs the process name, e.g. `restart bonus-worker`")
        sys.exit(cmd_restart(settings, args.name, args.env, args.unset, args.clear_env))
    if args.command == "status":
        sys.exit(cmd_status(settings, args.json))
    commands = {"run": cmd_run, "run-bg": cmd_run_bg, "stop": cmd_stop, "init": cmd_init}
    sys.exit(commands[args.command](settings))


if __name__ == "__main__":
    main()
