"""The whole system as processes: `python -m services.stack run | run-bg | stop | status | init | restart`.

Modules: `settings` (StackSettings), `topology` (our processes and topics, and `initialise`), `system`
(`Stack`: start and stop it all), `cli` (the commands). The machinery that is not about our system lives
in `eventbus.stack`: embedded servers, the supervisor, the state file and the restart protocol.
"""

from services.stack.cli import cmd_init, cmd_restart, cmd_run, cmd_run_bg, cmd_status, cmd_stop, main
from services.stack.settings import StackSettings
from services.stack.system import Stack
from services.stack.topology import all_topics, initialise, process_specs

__all__ = ["Stack", "StackSettings", "all_topics", "cmd_init", "cmd_restart", "cmd_run", "cmd_run_bg", "cmd_status",
           "cmd_stop", "initialise", "main", "process_specs"]
