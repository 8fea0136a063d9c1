"""The step machine: run a playbook's steps in order until done or until a gate blocks, resume a run a killed
runner left, roll back reversible steps in reverse order, and say where every playbook stands."""

from __future__ import annotations

import asyncio
import getpass
import os
import socket
import time
import traceback
from collections.abc import Mapping
from typing import Any

import asyncpg

from eventbus.playbook import store
from eventbus.playbook.actions import ACTIONS, ActionFailed
from eventbus.playbook.context import Context
from eventbus.playbook.gates import GATES, SNAPSHOT
from eventbus.playbook.migrations import MigrationRefused
from eventbus.playbook.model import Call, Playbook, Step
from eventbus.playbook.verdict import GateResult, Verdict, unknown

DONE, REFUSED, BLOCKED, FAILED, PENDING = 0, 2, 3, 4, 5
STATE_CODES = {"done": DONE, "blocked": BLOCKED, "failed": FAILED}
#: what a failing gate's data says is left, for progress and an estimate
PROGRESS_KEYS = ("left", "unpublished", "behind")


def runner_name() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "operator"
    return f"{user}@{socket.gethostname()}:{os.getpid()}"


class Runner:
    def __init__(self, ctx: Context, playbooks: Mapping[str, Playbook], *, name: str | None = None,
                 poll: float = 1.0, wait: float | None = None) -> None:
        self.ctx = ctx
        self.playbooks = playbooks
        self.name = name or runner_name()
        self.poll = poll
        #: overrides every step's wait (WAIT=0: look once, answer at once)
        self.wait = wait

    def playbook(self, name: str) -> Playbook:
        found = self.playbooks.get(name)
        if found is None:
            raise KeyError(f"no playbook {name!r}; known: {', '.join(sorted(self.playbooks))} (make playbook-list)")
        return found

    async def _connect(self) -> asyncpg.Connection:
        return await asyncpg.connect(self.ctx.url_of_playbooks(), timeout=10,
                                     server_settings={"application_name": f"playbook-runner {self.name}"[:63]})

    # -- gates ------------------------------------------------------------------------------------------
    async def evaluate(self, calls: tuple[Call, ...], wait: float, what: str) -> list[GateResult]:
        """Every gate's answer; while some do not pass and `wait` allows, poll them, showing progress."""
        started = time.monotonic()
        wait = wait if self.wait is None else self.wait
        first_left: dict[str, tuple[float, float]] = {}
        shown = 0.0
        while True:
            results = [await self._one(call) for call in calls]
            failing = [r for r in results if not r.passed]
            elapsed = time.monotonic() - started
            if not failing or elapsed >= wait:
                return results
            if elapsed - shown >= 5 or shown == 0:
                shown = elapsed or 0.001
                self.ctx.say(f"    waiting for {what} ({elapsed:.0f} s of {wait:.0f} s): "
                             f"{failing[0].gate}: {failing[0].evidence[:160]}{self._estimate(failing, first_left)}")
            await asyncio.sleep(self.poll)

    @staticmethod
    def _estimate(failing: list[GateResult], first: dict[str, tuple[float, float]]) -> str:
        for result in failing:
            left = next((result.data[k] for k in PROGRESS_KEYS if k in result.data), None)
            if isinstance(left, dict):
                left = sum(left.values())
            if not isinstance(left, int | float):
                continue
            now = time.monotonic()
            t0, left0 = first.setdefault(result.gate, (now, float(left)))
            if now > t0 and left0 > left:
                rate = (left0 - left) / (now - t0)
                return f" [{left:g} left, ~{left / rate:.0f} s to go]"
            return f" [{left:g} left]"
        return ""

    async def _one(self, call: Call) -> GateResult:
        fn = GATES.get(call.kind)
        if fn is None:
            return unknown(call.kind, f"no gate named {call.kind}", "fix the playbook file")
        try:
            return await fn(self.ctx, call.args)
        except Exception as exc:  # a gate that cannot look answers "cannot tell", never pass
            return unknown(call.describe(), f"the gate failed to look: {exc!r}", "see the runner's output")

    def report(self, results: list[GateResult], indent: str = "    ") -> None:
        for r in results:
            mark = {Verdict.PASS: "ok  ", Verdict.FAIL: "FAIL", Verdict.UNKNOWN: "????"}[r.verdict]
            self.ctx.say(f"{indent}[{mark}] {r.gate}: {r.evidence}")
            if not r.passed and r.fix:
                self.ctx.say(f"{indent}       fix: {r.fix}")

    # -- running ---------------------------------------------------------------------------------------
    async def run(self, name: str, *, step: int | None = None, to: int | None = None) -> int:
        playbook = self.playbook(name)
        conn = await self._connect()
        try:
            if not await store.try_lock(conn, name):
                holder = await store.lock_holder(conn, name)
                self.ctx.say(f"refused: {name} is being run by {holder or 'another runner'} right now; wait for "
                             "it to finish (make playbook-status shows where it is)")
                return REFUSED
            try:
                return await self._run_locked(conn, playbook, step, to)
            finally:
                await store.unlock(conn, name)
        finally:
            await conn.close()

    async def _run_locked(self, conn: asyncpg.Connection, playbook: Playbook, only: int | None,
                          to: int | None) -> int:
        run = await store.active_run(conn, playbook.name)
        if run is None:
            last = await store.last_run(conn, playbook.name)
            if last is not None and last.state == "done" and last.direction == "forward":
                self.ctx.say(f"{playbook.name} is done (run {last.id}, finished {last.finished_at:%Y-%m-%d %H:%M:%S})")
                return DONE
            missing = [r for r in playbook.requires if not await store.done(conn, r)]
            if missing:
                self.ctx.say(f"refused: {playbook.name} needs {', '.join(missing)} done first: "
                             + "; ".join(f"make playbook-run NAME={m}" for m in missing))
                return REFUSED
            if only is not None and only != playbook.steps[0].number:
                self.ctx.say(f"refused: step {only} is out of order: {playbook.name} starts at step "
                             f"{playbook.steps[0].number}")
                return REFUSED
            run = await store.start_run(conn, playbook, self.name)
            await store.log(conn, run.id, None, self.name, "run started")
            self.ctx.say(f"{playbook.name}: run {run.id} started by {self.name}")
        elif run.direction == "rollback":
            self.ctx.say(f"refused: {playbook.name} is being rolled back (run {run.id}); finish it with "
                         f"make playbook-rollback NAME={playbook.name}")
            return REFUSED
        else:
            self.ctx.say(f"{playbook.name}: resuming run {run.id} (started {run.started_at:%H:%M:%S} by "
                         f"{run.started_by}, {run.state})")
        self.ctx.run_started_at = run.started_at
        states = {s.number: s for s in await store.steps(conn, run.id)}
        self.ctx.outcomes = {n: s.outcome for n, s in states.items()}
        pending = [s for s in playbook.steps if states[s.number].state != "done"]
        if only is not None:
            if not pending or only not in [s.number for s in playbook.steps]:
                self.ctx.say(f"refused: {playbook.name} has no pending step {only}")
                return REFUSED
            if states[only].state == "done":
                self.ctx.say(f"step {only} is already done (at {states[only].finished_at:%H:%M:%S})")
                return DONE
            if pending[0].number != only:
                self.ctx.say(f"refused: step {only} is out of order: step {pending[0].number} "
                             f"({pending[0].title}) is next")
                return REFUSED
        await store.set_run_state(conn, run.id, "running")
        for step in pending:
            if to is not None and step.number > to:
                break
            if only is not None and step.number != only:
                break
            code = await self._step(conn, run.id, playbook, step, states[step.number].outcome)
            if code != DONE:
                await store.set_run_state(conn, run.id, "blocked" if code == BLOCKED else "failed")
                return code
        left = [s for s in await store.steps(conn, run.id) if s.state != "done"]
        if not left:
            await store.set_run_state(conn, run.id, "done")
            await store.log(conn, run.id, None, self.name, "run done")
            self.ctx.say(f"{playbook.name}: done")
            return DONE
        await store.set_run_state(conn, run.id, "blocked")
        self.ctx.say(f"{playbook.name}: stopped before step {left[0].number} as asked; "
                     f"make playbook-run NAME={playbook.name} goes on")
        return DONE

    async def _step(self, conn: asyncpg.Connection, run_id: int, playbook: Playbook, step: Step,
                    outcome: dict[str, Any]) -> int:
        started = time.monotonic()
        self.ctx.say(f"step {step.number}: {step.title}")
        self.ctx.step = step.number
        outcome.setdefault("done_actions", [])
        outcome["runner"] = f"playbook {playbook.name} step {step.number} ({self.name})"
        outcome["reason"] = f"{playbook.name} step {step.number}: {step.title}"
        self.ctx.outcome = outcome

        async def save() -> None:
            await store.save_step(conn, run_id, step.number, outcome=outcome)

        self.ctx.save_outcome = save
        await store.begin_step(conn, run_id, step.number, self.name)
        for key in [k for k in outcome if k.startswith(SNAPSHOT)]:
            del outcome[key]  # an earlier attempt's snapshots: this one measures afresh
        if not outcome.get("acted"):
            gates = await self.evaluate(step.gates, step.wait, "the gates")
            await store.save_step(conn, run_id, step.number, gates=[g.as_dict() for g in gates])
            self.report(gates)
            if not all(g.passed for g in gates):
                await store.save_step(conn, run_id, step.number, state="blocked")
                await store.log(conn, run_id, step.number, self.name, "blocked by its gates")
                self.ctx.say(f"  blocked: step {step.number} did nothing. Fix what the gates say, then "
                             f"make playbook-run NAME={playbook.name}")
                return BLOCKED
            for index, call in enumerate(step.actions):
                if index in outcome["done_actions"]:
                    continue
                try:
                    result = await ACTIONS[call.kind].run(self.ctx, call.args)
                except (ActionFailed, MigrationRefused) as exc:
                    return await self._failed(conn, run_id, playbook, step, str(exc))
                except Exception as exc:
                    detail = "".join(traceback.format_exception_only(type(exc), exc)).strip()
                    return await self._failed(conn, run_id, playbook, step, f"{call.describe()} failed: {detail}")
                outcome.setdefault("actions", {})[str(index)] = result
                outcome["done_actions"].append(index)
                await save()
            outcome["acted"] = True
            await save()
        if step.code:
            self.ctx.say(f"    code step: {step.code}")
        checks = await self.evaluate(step.checks, step.wait, "the checks")
        await store.save_step(conn, run_id, step.number, checks=[c.as_dict() for c in checks])
        self.report(checks)
        if not all(c.passed for c in checks):
            await store.save_step(conn, run_id, step.number, state="blocked")
            await store.log(conn, run_id, step.number, self.name, "acted; its checks do not pass yet")
            self.ctx.say(f"  blocked after acting: fix what the checks say, then make playbook-run "
                         f"NAME={playbook.name} (the step's actions are not repeated)")
            return BLOCKED
        await store.save_step(conn, run_id, step.number, state="done", outcome=outcome)
        await store.log(conn, run_id, step.number, self.name, f"done in {time.monotonic() - started:.1f} s")
        self.ctx.say(f"  done ({time.monotonic() - started:.1f} s)")
        return DONE

    async def _failed(self, conn: asyncpg.Connection, run_id: int, playbook: Playbook, step: Step,
                      error: str) -> int:
        await store.save_step(conn, run_id, step.number, state="failed", error=error)
        await store.log(conn, run_id, step.number, self.name, f"failed: {error}")
        self.ctx.say(f"  FAILED: {error}\n  fix it, then make playbook-run NAME={playbook.name} "
                     "(actions already done are not repeated)")
        return FAILED

    # -- rollback --------------------------------------------------------------------------------------
    async def rollback(self, name: str, to: int | None = None) -> int:
        playbook = self.playbook(name)
        conn = await self._connect()
        try:
            if not await store.try_lock(conn, name):
                holder = await store.lock_holder(conn, name)
                self.ctx.say(f"refused: {name} is being run by {holder or 'another runner'}")
                return REFUSED
            try:
                return await self._rollback_locked(conn, playbook, to)
            finally:
                await store.unlock(conn, name)
        finally:
            await conn.close()

    async def _rollback_locked(self, conn: asyncpg.Connection, playbook: Playbook, to: int | None) -> int:
        run = await store.active_run(conn, playbook.name) or await store.last_run(conn, playbook.name)
        if run is None or run.state == "rolled-back":
            self.ctx.say(f"{playbook.name}: nothing to roll back (no run{'' if run is None else ' left'})")
            return DONE
        dependants = [p.name for p in self.playbooks.values() if playbook.name in p.requires
                      and (await store.active_run(conn, p.name) or await store.done(conn, p.name))]
        if dependants:
            self.ctx.say(f"refused: {', '.join(dependants)} builds on {playbook.name}: roll that back first")
            return REFUSED
        await store.reopen_for_rollback(conn, run.id)
        self.ctx.run_started_at = run.started_at
        states = {s.number: s for s in await store.steps(conn, run.id)}
        self.ctx.outcomes = {n: s.outcome for n, s in states.items()}
        for step in reversed(playbook.steps):
            if to is not None and step.number <= to:
                break
            state = states[step.number]
            acted = state.state == "done" or state.outcome.get("done_actions")
            if state.state in ("pending", "undone") or not acted:
                continue
            if step.irreversible:
                await store.set_run_state(conn, run.id, "blocked")
                self.ctx.say(f"refused: step {step.number} ({step.title}) cannot be undone: {step.irreversible}. "
                             f"Steps after it are rolled back; {playbook.name} stays at step {step.number}.")
                return REFUSED
            self.ctx.say(f"undo step {step.number}: {step.title}")
            self.ctx.step, self.ctx.outcome = step.number, state.outcome
            if step.undo_gates:
                gates = await self.evaluate(step.undo_gates, step.wait, "the undo's gates")
                self.report(gates)
                if not all(g.passed for g in gates):
                    await store.set_run_state(conn, run.id, "blocked")
                    self.ctx.say(f"  blocked: step {step.number} cannot be undone now; fix what the gates say, "
                                 f"then make playbook-rollback NAME={playbook.name}")
                    return BLOCKED
            for index in reversed(state.outcome.get("done_actions", [])):
                call = step.actions[index]
                undo = ACTIONS[call.kind].undo
                if undo is None:
                    continue
                try:
                    await undo(self.ctx, call.args, state.outcome.get("actions", {}).get(str(index), {}))
                except (ActionFailed, MigrationRefused) as exc:
                    await store.set_run_state(conn, run.id, "failed")
                    self.ctx.say(f"  FAILED to undo: {exc}")
                    return FAILED
            # a later run of the step starts afresh (its cursors and snapshots belonged to the undone run of it)
            await store.save_step(conn, run.id, step.number, state="undone",
                                  outcome={"undone_run": {k: v for k, v in state.outcome.items() if k != "undone_run"}})
            await store.log(conn, run.id, step.number, self.name, "undone")
        if to is not None and any(states[s.number].state == "done" for s in playbook.steps if s.number <= to):
            await store.resume_forward(conn, run.id)
            self.ctx.say(f"{playbook.name}: rolled back to step {to}; make playbook-run NAME={playbook.name} goes on "
                         "from there")
            return DONE
        await store.set_run_state(conn, run.id, "rolled-back")
        self.ctx.say(f"{playbook.name}: rolled back")
        return DONE

    # -- where everything stands -------------------------------------------------------------------------
    async def status(self, names: list[str] | None = None) -> list[dict[str, Any]]:
        conn = await self._connect()
        try:
            rows = []
            for name in names or list(self.playbooks):
                playbook = self.playbook(name)
                run = await store.active_run(conn, name) or await store.last_run(conn, name)
                body: dict[str, Any] = {"playbook": name, "title": playbook.title, "steps": len(playbook.steps),
                                        "requires": list(playbook.requires)}
                if run is None:
                    body |= {"state": "not started", "done": 0}
                    missing = [r for r in playbook.requires if not await store.done(conn, r)]
                    if missing:
                        body["waiting_for"] = missing
                else:
                    states = await store.steps(conn, run.id)
                    current = next((s for s in states if s.state != "done"), None)
                    body |= {"state": run.state, "direction": run.direction, "run": run.id,
                             "started_at": run.started_at.isoformat(), "started_by": run.started_by,
                             "finished_at": run.finished_at.isoformat() if run.finished_at else None,
                             "done": sum(s.state == "done" for s in states)}
                    if current is not None and run.state != "rolled-back":
                        body["current_step"] = {"number": current.number, "title": current.title,
                                                "state": current.state, "attempts": current.attempts,
                                                "error": current.error}
                        failing = [g for g in current.gates + current.checks if g.get("verdict") != "pass"]
                        if current.state in ("blocked", "failed") and failing:
                            body["current_step"]["failing"] = failing
                rows.append(body)
            return rows
        finally:
            await conn.close()


def status_code(rows: list[dict[str, Any]]) -> int:
    """The worst state: failed (4) > blocked (3) > in progress or not started (5) > done (0)."""
    states = [r["state"] for r in rows]
    if "failed" in states:
        return FAILED
    if "blocked" in states:
        return BLOCKED
    if any(s != "done" for s in states):
        return PENDING
    return DONE
