"""The supervision's rules without processes: the backoff, how an exit is told, what the state file keeps of a
supervised process (and how an older or damaged one reads), and how `status` shows it."""

from __future__ import annotations

import json
import time
from pathlib import Path

from eventbus.stack.state import ProcessState, ServerState, StackState, read_state_file, state_file, write_state
from eventbus.stack.status import Check, render
from eventbus.stack.supervision import Exit, RestartPolicy


def test_the_backoff_doubles_from_half_a_second_to_thirty() -> None:
    assert [RestartPolicy().delay(n) for n in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    assert RestartPolicy(backoff_initial=0.1, backoff_max=0.4).delay(1000) == 0.4


def test_the_policy_says_what_it_does() -> None:
    assert "more than 5 restarts in 60 s: crash-looping" in RestartPolicy().describe()
    assert "0.5 s doubling to 30 s" in RestartPolicy().describe()
    assert "automatic restarts are off" in RestartPolicy(auto_restart=False).describe()


def test_an_exit_is_told_by_its_code_or_signal() -> None:
    assert [Exit(c).describe() for c in (0, 1, -9, -15, None)] == [
        "exited 0", "exited 1", "killed by SIGKILL", "killed by SIGTERM", "gone (exit status unknown)"]
    assert Exit(-200).describe() == "killed by signal 200"


def test_the_state_file_keeps_what_the_supervision_knows(tmp_path: Path) -> None:
    process = ProcessState("http://127.0.0.1:1", 42, None, state="running", started_at=1000.0, restarts=3,
                           last_exit="killed by SIGKILL", last_exit_code=-9, last_exit_at=990.0, recovered_in=1.2,
                           overrides={"FLAG": "x"})
    server = ServerState("127.0.0.1:2", True, 7, state="crash-looping", restarts=6, last_exit="exited 1",
                         crash_looping=True)
    write_state(tmp_path, ready=True, processes={"svc": process.__dict__}, servers={"kafka": server.__dict__})
    read = read_state_file(tmp_path)
    assert read is not None
    assert read.processes["svc"] == process and read.servers["kafka"] == server


def test_an_older_or_damaged_state_file_reads_with_defaults(tmp_path: Path) -> None:
    path = state_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"pid": 1, "processes": {
        "old": {"url": "http://a", "pid": 5, "exited": -9},
        "odd": {"url": "http://b", "restarts": "many", "started_at": True, "overrides": ["x"], "state": 3}}}))
    read = read_state_file(tmp_path)
    assert read is not None
    assert read.processes["old"] == ProcessState("http://a", 5, -9)
    odd = read.processes["odd"]
    assert (odd.restarts, odd.started_at, odd.overrides, odd.state) == (0, None, {}, None)


def _check(name: str, **fields: object) -> Check:
    base: dict[str, object] = {"address": f"http://127.0.0.1/{name}", "healthy": True, "detail": "ok", "pid": "10",
                               "state": "running", "uptime": 65.0, "restarts": 0}
    return Check(name, **(base | fields))  # type: ignore[arg-type]


def test_status_shows_uptime_restarts_and_the_last_exit(tmp_path: Path) -> None:
    state = StackState(data_dir=tmp_path, pid=1, ready=True, ready_in=4.0, started_at=time.time() - 70)
    checks = [_check("api"),
              _check("worker", restarts=2, last_exit="killed by SIGKILL", last_exit_at=time.time() - 5,
                     recovered_in=1.6, uptime=4.0),
              _check("relay", healthy=False, detail="CRASH-LOOPING (exited 1; not restarted any more); now DOWN: "
                     "connection refused", pid="11 (exited 1)", state="crash-looping", uptime=None, restarts=6,
                     last_exit="exited 1", crash_looping=True, overrides={"RELAY_BATCH_SIZE": "oops"}),
              Check("kafka", "10.0.0.1:9092", True, "ok (port open)", "- (external)")]
    lines = render(state, checks, ".")
    assert lines[1].split() == ["NAME", "ADDRESS", "PID", "HEALTH", "UPTIME", "RESTARTS", "LAST", "EXIT"]
    rows = {line.split()[0]: line for line in lines[2:6]}
    assert rows["api"].split()[1:7] == ["http://127.0.0.1/api", "10", "ok", "1m", "05s", "0"]
    assert rows["api"].endswith(" -")
    assert "killed by SIGKILL, 5s ago; back in 1.6 s" in rows["worker"] and rows["worker"].split()[4:6] == ["4s", "2"]
    assert "CRASH-LOOPING" in rows["relay"] and rows["relay"].split()[-4:] == ["down", "6", "exited", "1"]
    assert rows["kafka"].split()[-3:] == ["-", "-", "-"]  # external: the stack does not supervise it
    assert lines[6].startswith("1 of 4 unhealthy: relay")
    assert lines[7] == ("relay is crash-looping: the stack stopped restarting it (last: exited 1). Fix it, then "
                        "`make restart NAME=relay` (overrides in force: RELAY_BATCH_SIZE=oops; ARGS=\"--unset K\" "
                        "removes one)")
