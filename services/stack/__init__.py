"""The whole system as processes: `python -m services.stack run | run-bg | stop | status | init | restart`.

Modules: `settings` (StackSettings), `topology` (our processes and topics, and `initialise`), `system`
(`Stack`: start it all, keep it running, stop it), `cli` (the commands). The machinery that is not about our
system lives in `eventbus.stack`: embedded servers, the supervisor and the supervision (restarts, backoff,
crash loops), the state file and the restart protocol.

`Stack`, `all_topics`, `initialise` and `process_specs` are imported when first used, so the operator
commands (`status`, `stop`, `restart`) do not load the services' code.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from services.stack.cli import cmd_init, cmd_restart, cmd_run, cmd_run_bg, cmd_status, cmd_stop, main
from services.stack.settings import StackSettings

if TYPE_CHECKING:
    from services.stack.system import Stack
    from services.stack.topology import all_topics, initialise, process_specs

__all__ = ["Stack", "StackSettings", "all_topics", "cmd_init", "cmd_restart", "cmd_run", "cmd_run_bg", "cmd_status",
           "cmd_stop", "initialise", "main", "process_specs"]


def __getattr__(name: str) -> Any:
    if name == "Stack":
        from services.stack.system import Stack
        return Stack
    if name in ("all_topics", "initialise", "process_specs"):
        from services.stack import topology
        return getattr(topology, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
