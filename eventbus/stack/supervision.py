"""Keep a stack running: start again each process or server that exits or stops answering, with backoff
and a crash-loop limit. The stack's control process (`python -m services.stack run`) runs `Supervision.run`.

A `Unit` is one thing the stack runs: a service process (`ServiceUnit`, through `Supervisor`), the embedded
PostgreSQL (`PostgresUnit`) or the embedded broker (`BrokerUnit`). For each one:

- **exits** (any code, any signal): started again after a backoff, `backoff_initial` doubling up to
  `backoff_max`; the backoff goes back to its start once a restarted unit answers its health check.
- **stops answering** after it had answered: `health_failures` checks in a row refused or timed out ->
  killed and started again. Any HTTP answer counts as an answer: a 503 from /health means a *dependency*
  is down, and restarting the process would not bring it back. Until a (re)started unit first answers it
  has `start_timeout` seconds. A process stopped on purpose (SIGSTOP, a debugger: state T) is left alone.
- **crash-looping**: a unit that would be started more than `crash_loop_restarts` times within
  `crash_loop_window` seconds is not started again; the operator's `restart NAME` (fixed environment)
  clears that.
- a unit may name a hook run once it answers after a restart, and units to restart after the hook: the
  broker keeps its log in memory, so when it comes back the topics are declared again and the processes
  whose Kafka clients cannot survive a broker that lost its state are restarted.

`restart NAME --env K=V` requests (`eventbus.stack.restart`) are served here too; the overrides they give
stay in force for the unit's later restarts. Every change is said on the stack's stdout (`say`) and written
to the state file (`on_change`; `snapshot` gives a unit's `Supervised` fields).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import os
import signal
import subprocess
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx

from eventbus.stack.broker import TansuBroker
from eventbus.stack.postgres import EmbeddedPostgres
from eventbus.stack.replication import ReplicatedPostgres
from eventbus.stack.restart import finish_request, refuse_request, restart_file, take_request
from eventbus.stack.state import pid_alive
from eventbus.stack.supervisor import ProcessSpec, Supervisor


@dataclass(frozen=True)
class RestartPolicy:
    #: restart what exits or stops answering; off: only record it (`STACK_AUTO_RESTART=0`)
    auto_restart: bool = True
    backoff_initial: float = 0.5
    backoff_max: float = 30.0
    #: a unit started again more than this many times within the window is crash-looping
    crash_loop_restarts: int = 5
    crash_loop_window: float = 60.0
    #: seconds between health checks of a unit that answers (one that is starting is checked every 0.25 s)
    health_interval: float = 2.0
    health_timeout: float = 3.0
    #: refused or timed-out checks in a row that make a unit that answered before "not answering"
    health_failures: int = 3
    #: seconds a (re)started unit has to answer a first time
    start_timeout: float = 120.0

    def delay(self, attempt: int) -> float:
        return float(min(self.backoff_initial * 2 ** min(attempt, 30), self.backoff_max))

    def describe(self) -> str:
        if not self.auto_restart:
            return "automatic restarts are off (STACK_AUTO_RESTART=0): exits are recorded, nothing is restarted"
        return (f"a process or server that exits, or stops answering its health check {self.health_failures} times "
                f"in a row, is restarted (backoff {self.backoff_initial:g} s doubling to {self.backoff_max:g} s); "
                f"more than {self.crash_loop_restarts} restarts in {self.crash_loop_window:g} s: crash-looping, "
                "left down")


@dataclass(frozen=True)
class Exit:
    #: the exit status as subprocess gives it (negative: killed by that signal); None: not known
    code: int | None

    def describe(self) -> str:
        if self.code is None:
            return "gone (exit status unknown)"
        if self.code < 0:
            try:
                return f"killed by {signal.Signals(-self.code).name}"
            except ValueError:
                return f"killed by signal {-self.code}"
        return f"exited {self.code}"


class Outcome(enum.Enum):
    OK = "ok"
    #: an HTTP answer other than 200 (503: a dependency is down): alive
    ANSWERED = "answered"
    REFUSED = "connection refused"
    TIMEOUT = "no answer (timeout)"
    ERROR = "error"


@dataclass(frozen=True)
class Probe:
    outcome: Outcome
    detail: str = ""

    @property
    def alive(self) -> bool:
        return self.outcome in (Outcome.OK, Outcome.ANSWERED)

    def describe(self) -> str:
        return self.detail or self.outcome.value


async def http_probe(client: httpx.AsyncClient, url: str, timeout: float) -> Probe:
    try:
        response = await client.get(url, timeout=timeout)
    except httpx.ConnectError:
        return Probe(Outcome.REFUSED)
    except httpx.TimeoutException:
        return Probe(Outcome.TIMEOUT)
    except httpx.HTTPError as exc:
        return Probe(Outcome.ERROR, f"{type(exc).__name__}: {exc}"[:120])
    if response.status_code == 200:
        return Probe(Outcome.OK)
    return Probe(Outcome.ANSWERED, f"answered {response.status_code}")


async def tcp_probe(host: str, port: int, timeout: float) -> Probe:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    except ConnectionRefusedError:
        return Probe(Outcome.REFUSED)
    except TimeoutError:
        return Probe(Outcome.TIMEOUT)
    except OSError as exc:
        return Probe(Outcome.ERROR, f"{type(exc).__name__}: {exc}"[:120])
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return Probe(Outcome.OK)


def held(pid: int | None) -> bool:
    """Is the process stopped on purpose (SIGSTOP, a debugger: state T or t)?"""
    if pid is None:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    fields = stat.rsplit(")", 1)[-1].split()
    return bool(fields) and fields[0] in ("T", "t")


def _zombie_or_gone(pid: int) -> bool:
    if not pid_alive(pid):
        return True
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] in ("Z", "X")
    except (OSError, IndexError):
        return False


class Unit:
    """One thing the stack runs. `launch` and `halt` may block (they run in a thread); the others must not."""

    kind = "process"

    def __init__(self, name: str, *, after_restart: Callable[[], Awaitable[str]] | None = None,
                 restart_after: Iterable[str] = ()) -> None:
        self.name = name
        #: run once the unit answers after a restart; says what it did
        self.after_restart = after_restart
        #: units restarted after that (the broker: the processes whose Kafka clients cannot survive it)
        self.restart_after = tuple(restart_after)
        #: when the running instance started (epoch seconds)
        self.started_at = time.time()

    def launch(self, env: Mapping[str, str]) -> None:
        raise NotImplementedError

    def on_exit(self) -> str | None:
        """Run (in a thread) as soon as the supervision sees it down, before its restart's backoff: a replicated
        database's failover. Says what it did (None: nothing)."""
        return None

    def halt(self, timeout: float) -> Exit:
        """Stop it (and whatever it left behind) and return how it ended."""
        raise NotImplementedError

    def poll(self) -> Exit | None:
        """None while it runs."""
        raise NotImplementedError

    def pid(self) -> int | None:
        raise NotImplementedError

    async def probe(self, client: httpx.AsyncClient, timeout: float) -> Probe:
        raise NotImplementedError


class ServiceUnit(Unit):
    """A process of `supervisor`, checked by its /health."""

    def __init__(self, supervisor: Supervisor, spec: ProcessSpec, host: str = "127.0.0.1", **hooks: Any) -> None:
        super().__init__(spec.name, **hooks)
        self.supervisor = supervisor
        #: as the stack planned it; restart overrides are added at each launch
        self.spec = spec
        self.url = spec.health_url(host)
        self.started_at = supervisor.started_at.get(spec.name, self.started_at)

    def launch(self, env: Mapping[str, str]) -> None:
        self.supervisor.start(replace(self.spec, env={**self.spec.env, **env}))
        self.started_at = self.supervisor.started_at[self.name]

    def halt(self, timeout: float) -> Exit:
        self.supervisor.stop(self.name, timeout)
        process = self.supervisor.processes.get(self.name)
        return Exit(None if process is None else process.returncode)

    def poll(self) -> Exit | None:
        process = self.supervisor.processes.get(self.name)
        code = None if process is None else process.poll()
        return None if code is None else Exit(code)

    def pid(self) -> int | None:
        process = self.supervisor.processes.get(self.name)
        return None if process is None else process.pid

    async def probe(self, client: httpx.AsyncClient, timeout: float) -> Probe:
        return await http_probe(client, self.url, timeout)


class PostgresUnit(Unit):
    """The embedded PostgreSQL, started again on the same data folder (crash recovery replays its WAL)."""

    kind = "server"

    def __init__(self, pg: EmbeddedPostgres, **hooks: Any) -> None:
        super().__init__("postgresql", **hooks)
        self.pg = pg
        #: a postmaster the stack found running (not its child): watched by its pid
        self.adopted = pg.postmaster_pid() if pg.process is None else None
        self.last_pid = pg.process.pid if pg.process is not None else self.adopted

    def launch(self, env: Mapping[str, str]) -> None:
        self.pg.env = dict(env)
        self.start_server()
        self.adopted = self.pg.postmaster_pid() if self.pg.process is None else None
        self.last_pid = self.pg.process.pid if self.pg.process is not None else self.adopted
        self.started_at = time.time()

    def start_server(self) -> None:
        self.pg.start()

    def halt(self, timeout: float) -> Exit:
        process = self.pg.process
        if process is None:
            if self.adopted is not None and not _zombie_or_gone(self.adopted):
                self.pg.stop("fast")
            return Exit(None)
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGINT)  # "fast" shutdown
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout)
        # a postmaster killed outright leaves its backends behind for a moment: they hold the shared memory
        # a new postmaster needs, so they go first
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        self.pg.reap(kill=True)
        return Exit(process.returncode)

    def poll(self) -> Exit | None:
        process = self.pg.process
        if process is not None:
            code = process.poll()
            return None if code is None else Exit(code)
        if self.adopted is None or _zombie_or_gone(self.adopted):
            return Exit(None)
        return None

    def pid(self) -> int | None:
        """The postmaster's pid; the last one's while it is down."""
        return self.last_pid

    async def probe(self, client: httpx.AsyncClient, timeout: float) -> Probe:
        return await tcp_probe(self.pg.host, self.pg.port, timeout)


class NodeUnit(PostgresUnit):
    """A node of the replicated PostgreSQL (eventbus.stack.replication): when the primary goes down its standby
    is promoted at once; the old primary comes back as the new one's standby."""

    def __init__(self, pair: ReplicatedPostgres, name: str, **hooks: Any) -> None:
        super().__init__(pair.nodes[name], **hooks)
        self.name = name
        self.pair = pair

    def start_server(self) -> None:
        self.pair.relaunch(self.pg)

    def on_exit(self) -> str | None:
        return self.pair.failover(self.pg)


class BrokerUnit(Unit):
    """The embedded Tansu broker. It keeps its log in memory: it comes back empty."""

    kind = "server"

    def __init__(self, broker: TansuBroker, **hooks: Any) -> None:
        super().__init__("kafka", **hooks)
        self.broker = broker
        self.base_env = dict(broker.env)
        self.last: subprocess.Popen[bytes] | None = broker.process

    def launch(self, env: Mapping[str, str]) -> None:
        self.broker.env = {**self.base_env, **env}
        self.broker.start()
        self.last = self.broker.process
        self.started_at = time.time()

    def halt(self, timeout: float) -> Exit:
        self.broker.stop(timeout)
        return Exit(None if self.last is None else self.last.poll())

    def poll(self) -> Exit | None:
        if self.last is None:
            return None
        code = self.last.poll()
        return None if code is None else Exit(code)

    def pid(self) -> int | None:
        return None if self.last is None else self.last.pid

    async def probe(self, client: httpx.AsyncClient, timeout: float) -> Probe:
        return await tcp_probe(self.broker.host, self.broker.port, timeout)


#: held: stopped while the unit it depends on is down (the workers while the broker is), started after it
RUNNING, STARTING, WAITING, RESTARTING, CRASH_LOOPING, EXITED, HELD = (
    "running", "starting", "waiting", "restarting", "crash-looping", "exited", "held")


@dataclass
class Record:
    """What the supervision knows of one unit (the state file's `Supervised` fields, and its own)."""

    started_at: float
    state: str = RUNNING
    restarts: int = 0
    last_exit: str | None = None
    last_exit_code: int | None = None
    last_exit_at: float | None = None
    recovered_in: float | None = None
    crash_looping: bool = False
    overrides: dict[str, str] = field(default_factory=dict)
    #: the exit code, from the exit until the unit started again answers
    exited: int | None = None
    started_mono: float = field(default_factory=time.monotonic)
    #: answered once since its start (the stack's first start waits for that)
    answered: bool = True
    failures: int = 0
    #: automatic restarts so far without an answer in between (the backoff's exponent)
    attempt: int = 0
    #: monotonic times of the automatic restarts within the crash-loop window
    history: list[float] = field(default_factory=list)
    restart_at: float | None = None
    down_since: float | None = None
    after_restart_pending: bool = False
    held_said: bool = False
    probing: bool = False
    next_probe: float = 0.0
    #: health checks done (tests wait on it rather than on time)
    probes: int = 0
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Supervision:
    def __init__(self, units: Iterable[Unit], policy: RestartPolicy | None = None, *,
                 say: Callable[[str], None] = lambda line: print(line, flush=True),
                 on_change: Callable[[], None] = lambda: None, tick: float = 0.2) -> None:
        self.units = {u.name: u for u in units}
        self.policy = policy or RestartPolicy()
        self.say = say
        self.on_change = on_change
        self.tick = tick
        self.records = {name: Record(started_at=u.started_at,
                                     started_mono=time.monotonic() - max(0.0, time.time() - u.started_at))
                        for name, u in self.units.items()}
        #: loop iterations so far (tests wait on it rather than on time)
        self.steps = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._request: asyncio.Task[Any] | None = None
        self._client: httpx.AsyncClient | None = None

    # -- what the state file shows --

    def snapshot(self, name: str) -> dict[str, Any]:
        """The unit's `eventbus.stack.state.Supervised` fields."""
        rec = self.records[name]
        return {"state": rec.state, "started_at": rec.started_at, "restarts": rec.restarts,
                "last_exit": rec.last_exit, "last_exit_code": rec.last_exit_code, "last_exit_at": rec.last_exit_at,
                "recovered_in": rec.recovered_in, "crash_looping": rec.crash_looping,
                "overrides": dict(rec.overrides)}

    def pid(self, name: str) -> int | None:
        return self.units[name].pid()

    # -- the loop --

    async def run(self, should_stop: Callable[[], bool], data_dir: Path | None = None) -> None:
        """Watch every unit until `should_stop()`; serve restart requests left in `data_dir`."""
        async with httpx.AsyncClient() as client:
            self._client = client
            self.on_change()
            try:
                while not should_stop():
                    self.step()
                    if data_dir is not None:
                        self._serve(data_dir)
                    await asyncio.sleep(self.tick)
            finally:
                tasks = list(self._tasks)
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                self._client = None

    def step(self) -> None:
        self.steps += 1
        now = time.monotonic()
        for name, unit in self.units.items():
            rec = self.records[name]
            if rec.state in (RUNNING, STARTING):
                exited = unit.poll()
                if exited is not None:
                    pid = unit.pid()
                    self._exited(name, exited, unit.halt(1.0), pid=pid)
                elif not rec.probing and now >= rec.next_probe and self._client is not None:
                    rec.probing = True
                    self._spawn(self._probe(name, unit.pid()))
            elif rec.state == WAITING and rec.restart_at is not None and now >= rec.restart_at:
                rec.restart_at = None
                rec.state = RESTARTING
                self._spawn(self._restart(name))

    def _spawn(self, coroutine: Awaitable[Any]) -> asyncio.Task[Any]:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _exited(self, name: str, exited: Exit, cleaned: Exit | None = None, reason: str | None = None,
                pid: int | None = None) -> None:
        """Record an exit and decide: restart after a backoff, or crash-looping, or (restarts off) nothing."""
        rec, now = self.records[name], time.monotonic()
        code = exited.code if exited.code is not None else (cleaned.code if cleaned is not None else None)
        why = reason or Exit(code).describe()
        rec.last_exit, rec.last_exit_code, rec.last_exit_at = why, code, time.time()
        rec.exited = code
        rec.down_since = rec.down_since if rec.down_since is not None else now
        rec.after_restart_pending = False
        head = f"!! {name} {why} (pid {pid or self.units[name].pid()}, up {_duration(now - rec.started_mono)})"
        rec.history = [t for t in rec.history if now - t < self.policy.crash_loop_window]
        self._spawn(self._on_exit(name))  # a failover is not a restart: it happens with restarts off too
        if not self.policy.auto_restart:
            rec.state = EXITED
            self.say(f"{head}; automatic restarts are off")
            self.on_change()
            return
        self._hold_dependents(name, f"{name} went down")
        if len(rec.history) >= self.policy.crash_loop_restarts:
            rec.state, rec.crash_looping = CRASH_LOOPING, True
            self.say(f"{head}; {name} is CRASH-LOOPING ({len(rec.history)} restarts in the last "
                     f"{self.policy.crash_loop_window:g} s): not restarting it. Fix it, then "
                     f"`make restart NAME={name}` (ARGS=\"--env K=V\" / \"--unset K\")")
        else:
            delay = self.policy.delay(rec.attempt)
            rec.attempt += 1
            rec.state, rec.restart_at = WAITING, now + delay
            self.say(f"{head}; restarting it in {delay:g} s")
        self.on_change()

    async def _on_exit(self, name: str) -> None:
        try:
            said = await asyncio.to_thread(self.units[name].on_exit)
        except Exception as exc:
            said = f"!! what follows {name}'s exit failed ({type(exc).__name__}: {exc})"
        if said:
            self.say(said)
            self.on_change()

    def _hold_dependents(self, name: str, why: str) -> None:
        """Stop the units that cannot survive `name`'s restart now, rather than once it is back: the workers'
        consumers would otherwise join the new broker's groups, and their members would hold the next join
        for a session timeout after they are stopped."""
        held = [n for n in self.units[name].restart_after if self.records[n].state in (RUNNING, STARTING, WAITING)]
        if not held:
            return
        self.say(f"stopping {', '.join(held)} until {name} is back")
        for other in held:
            self.records[other].state, self.records[other].restart_at = HELD, None
            self._spawn(self._hold(other, why))

    async def _hold(self, name: str, why: str) -> None:
        rec, unit = self.records[name], self.units[name]
        async with rec.lock:
            if rec.state != HELD:
                return
            live = unit.poll() is None
            # a short grace: with its broker gone a Faust worker's clean stop only waits for it (about 9 s),
            # and a kill is safe (each batch's effect commits with its dedupe rows)
            ended = await asyncio.to_thread(unit.halt, 2.0)
            if live:
                rec.last_exit, rec.last_exit_code, rec.last_exit_at = f"stopped: {why}", ended.code, time.time()
                rec.exited, rec.down_since = ended.code, time.monotonic()
            self.on_change()

    async def _restart(self, name: str, *, cause: str | None = None, manual: bool = False,
                       env: Mapping[str, str] | None = None, unset: Iterable[str] = (),
                       clear_env: bool = False) -> None:
        """Start `name` again: after its exit (cause None: counts toward the crash-loop limit), or now, stopping
        the running one (cause: why; manual: the operator's, which clears crash-looping and the backoff)."""
        rec, unit = self.records[name], self.units[name]
        if cause is not None:
            rec.restart_at = None  # a restart after a backoff is not needed any more
        async with rec.lock:
            if cause is None and rec.state != RESTARTING:
                return  # restarted by someone else (the operator) while this one waited for the lock
            if cause is not None:
                rec.state = RESTARTING
                self._hold_dependents(name, f"{name} {cause}")
                self.on_change()
                live = unit.poll() is None
                ended = await asyncio.to_thread(unit.halt, 10.0)
                if live:
                    rec.last_exit, rec.last_exit_code, rec.last_exit_at = f"stopped: {cause}", ended.code, time.time()
                    rec.exited = ended.code
                    rec.down_since = time.monotonic()
            if manual:
                rec.history.clear()
                rec.attempt, rec.crash_looping = 0, False
            if clear_env:
                rec.overrides.clear()
            for key in unset:
                rec.overrides.pop(key, None)
            rec.overrides.update(env or {})
            if cause is None:
                rec.history.append(time.monotonic())
            rec.state = RESTARTING
            try:
                await asyncio.to_thread(unit.launch, dict(rec.overrides))
            except Exception as exc:  # the server did not start (port taken, recovery failed): an exit like any
                rec.restarts += 1
                self._exited(name, Exit(None), unit.halt(1.0), reason=f"failed to start: {exc}"[:300])
                return
            rec.restarts += 1
            rec.state, rec.started_at, rec.started_mono = STARTING, unit.started_at, time.monotonic()
            rec.answered, rec.failures, rec.held_said, rec.next_probe = False, 0, False, 0.0
            rec.after_restart_pending = unit.after_restart is not None or bool(unit.restart_after)
            overrides = f" with {' '.join(f'{k}={v}' for k, v in rec.overrides.items())}" if rec.overrides else ""
            self.say(f"{name} started again (pid {unit.pid()}, restart {rec.restarts}{', ' + cause if cause else ''})"
                     f"{overrides}")
            self.on_change()

    async def _probe(self, name: str, pid: int | None) -> None:
        rec, unit = self.records[name], self.units[name]
        assert self._client is not None
        try:
            result = await unit.probe(self._client, self.policy.health_timeout)
        finally:
            rec.probing = False
            rec.probes += 1
        if rec.state not in (RUNNING, STARTING) or unit.pid() != pid:
            return  # it changed while we asked
        now = time.monotonic()
        if result.alive:
            rec.failures, rec.next_probe = 0, now + self.policy.health_interval
            if rec.held_said:
                rec.held_said = False
            if not rec.answered:
                rec.answered, rec.attempt, rec.exited = True, 0, None
                # a unit with a follow-up stays "starting" until it is done (the stack is not whole before)
                rec.state = STARTING if rec.after_restart_pending else RUNNING
                back = ""
                if rec.down_since is not None:
                    rec.recovered_in = round(now - rec.down_since, 2)
                    back = f", {rec.recovered_in:.1f} s after it went down"
                    rec.down_since = None
                self.say(f"{name} answers again (pid {pid}{back})")
                self.on_change()
            if rec.after_restart_pending and result.outcome is Outcome.OK:
                rec.after_restart_pending = False
                self._spawn(self._after_restart(name))
            return
        rec.next_probe = now + (self.policy.health_interval if rec.answered else 0.25)
        if rec.answered:
            rec.failures += 1
            if rec.failures < self.policy.health_failures:
                return
            why = f"health timeout ({rec.failures} checks in a row: {result.describe()})"
        elif now - rec.started_mono > self.policy.start_timeout:
            why = f"health timeout (no answer {self.policy.start_timeout:g} s after its start: {result.describe()})"
        else:
            return
        if held(pid):
            if not rec.held_said:
                rec.held_said = True
                self.say(f"{name} does not answer, but it is stopped (SIGSTOP or a debugger): left alone while held")
            return
        if not self.policy.auto_restart:
            if not rec.held_said:
                rec.held_said = True
                self.say(f"!! {name} {why}; automatic restarts are off")
            return
        self._spawn(self._kill_unresponsive(name, why))

    async def _kill_unresponsive(self, name: str, why: str) -> None:
        rec, unit = self.records[name], self.units[name]
        async with rec.lock:
            if rec.state not in (RUNNING, STARTING):
                return
            rec.state = RESTARTING
            pid = unit.pid()
            self.say(f"!! {name} {why}: killing it (pid {pid})")
            ended = await asyncio.to_thread(unit.halt, 5.0)
            self._exited(name, ended, reason=why, pid=pid)

    async def _after_restart(self, name: str) -> None:
        """The unit's follow-up once it answers after a restart, then the restarts of the units that depend on
        it; the unit is "running" once they are under way."""
        unit, rec = self.units[name], self.records[name]
        started = rec.started_mono
        if unit.after_restart is not None:
            while True:
                if rec.state != STARTING or rec.started_mono != started:
                    return  # down again: its next start runs this again
                try:
                    self.say(f"{name} is back: {await unit.after_restart()}")
                    break
                except Exception as exc:
                    self.say(f"!! {name} is back but its follow-up failed ({type(exc).__name__}: {exc}); "
                             "trying again in 1 s")
                    await asyncio.sleep(1.0)
        if rec.state != STARTING or rec.started_mono != started:
            return
        again = [n for n in unit.restart_after if self.records[n].state not in (CRASH_LOOPING, EXITED)]
        for other in again:  # what was held starts now; what runs (it came up meanwhile) starts again
            self.records[other].state = RESTARTING
        if again:
            self.say(f"restarting {', '.join(again)} after {name} came back (their Kafka clients cannot survive a "
                     "broker that lost its state)")
            for other in again:
                self._spawn(self._restart(other, cause=f"{name} restarted"))
        rec.state = RUNNING
        self.on_change()

    # -- restart requests (`python -m services.stack restart NAME`) --

    def _serve(self, data_dir: Path) -> None:
        if self._request is not None or not restart_file(data_dir).exists():
            return
        request = take_request(data_dir)
        if request is None:
            return
        if request.name not in self.units:
            refuse_request(data_dir, request, f"no process {request.name!r} the stack runs; known: "
                                              f"{', '.join(sorted(self.units))}")
            return
        self.say(f"restarting {request.name} (operator)" + (f" with {request.env}" if request.env else "")
                 + (f" without {list(request.unset)}" if request.unset else "")
                 + (" with no earlier override" if request.clear_env else ""))
        task = self._spawn(self._restart(request.name, cause="restarted by the operator", manual=True,
                                         env=request.env, unset=request.unset, clear_env=request.clear_env))
        self._request = task

        def done(finished: asyncio.Task[Any]) -> None:
            self._request = None
            if finished.cancelled():
                return
            error = finished.exception()
            if error is not None:
                refuse_request(data_dir, request, f"the restart failed: {type(error).__name__}: {error}")
            else:
                finish_request(data_dir)

        task.add_done_callback(done)

    # -- for callers outside the loop (tests, the stack) --

    async def restart(self, name: str, *, cause: str = "restarted by the operator", manual: bool = True,
                      env: Mapping[str, str] | None = None) -> None:
        await self._restart(name, cause=cause, manual=manual, env=env)


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m" if hours else f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"
