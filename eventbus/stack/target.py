"""Which system an operator command talks to: one resolver for every operator CLI.

Each address comes from, in this order: the command's flag, the environment variable every process reads
(DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS, REGISTRY_URL), or the running stack's state file
(`$STACK_DATA_DIR/run/stack.json`, `.data/run/stack.json` by default). Nothing else: no default port,
so a command never silently talks to another stack than the one the operator started. `describe()` is
the first line each command prints; `need()` says what to do when an address cannot be found.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from eventbus.db import hosts_of
from eventbus.stack.state import StackState, data_dir_from_env, read_state, read_state_file, state_file

#: what each address is called in messages, and the environment variable that gives it
ADDRESSES = {"database": "DATABASE_URL", "kafka": "KAFKA_BOOTSTRAP_SERVERS", "registry": "REGISTRY_URL"}


class TargetError(Exception):
    """No address for what the command needs; the message says how to give one."""


@dataclass(frozen=True)
class Target:
    data_dir: Path
    stack: StackState | None
    #: address name -> (value, where it came from: a flag, a variable or "stack")
    found: dict[str, tuple[str, str]] = field(default_factory=dict)
    #: address name -> the flag that sets it in this command (for messages)
    flags: dict[str, str] = field(default_factory=dict)
    #: why no stack was found, for messages ("" when one was)
    no_stack_reason: str = ""

    @property
    def database_url(self) -> str | None:
        return self.found.get("database", (None, ""))[0]

    @property
    def bootstrap_servers(self) -> str | None:
        return self.found.get("kafka", (None, ""))[0]

    @property
    def registry_url(self) -> str | None:
        return self.found.get("registry", (None, ""))[0]

    def need(self, name: str) -> str:
        """The address, or TargetError naming every way to give it."""
        if name in self.found:
            return self.found[name][0]
        ways = [f"pass {self.flags[name]}"] if name in self.flags else []
        ways.append(f"set {ADDRESSES[name]}")
        if self.stack is not None and not self.stack.ready:
            raise TargetError(f"the stack in {shown_path(self.data_dir)} (pid {self.stack.pid}) is still starting: "
                              f"wait until `make run-bg` says ready, or {' / '.join(ways)}")
        raise TargetError(f"no {name} to talk to: {self.no_stack_reason}. Start the stack (`make run-bg`), "
                          f"or {' / '.join(ways)}; STACK_DATA_DIR picks the data folder of a stack started elsewhere")

    def describe(self, *names: str) -> str:
        """`stack: .data (pid 1234), database 127.0.0.1:54329, kafka 127.0.0.1:19092`: what the command talks to."""
        if self.stack is not None:
            starting = "" if self.stack.ready else ", starting"
            head = f"stack: {shown_path(self.data_dir)} (pid {self.stack.pid}{starting})"
        else:
            head = f"stack: none running in {shown_path(self.data_dir)}"
        parts = []
        for name in names or tuple(self.found):
            if name not in self.found:
                parts.append(f"no {name}")
                continue
            value, origin = self.found[name]
            part = f"{name} {address(name, value)}"
            if origin != "stack":
                ours = self._from_stack(name)
                part += f" (from {origin}" + (f"; the stack's is {address(name, ours)})" if ours and ours != value
                                              else ")")
            parts.append(part)
        if not parts:
            return head
        return head + (", " if self.stack is not None else "; ") + ", ".join(parts)

    def _from_stack(self, name: str) -> str | None:
        if self.stack is None:
            return None
        return {"database": self.stack.database_url, "kafka": self.stack.bootstrap_servers,
                "registry": self.stack.registry_url}[name]


def resolve(*, database: str | None = None, kafka: str | None = None, registry: str | None = None,
            flags: Mapping[str, str] | None = None, data_dir: Path | None = None,
            environ: Mapping[str, str] | None = None) -> Target:
    """The addresses given by flags (the keyword arguments), else the environment, else the running stack."""
    env = dict(os.environ if environ is None else environ)
    data_dir = data_dir or data_dir_from_env(env)
    stack = read_state(data_dir)
    why = "" if stack is not None else why_no_stack(data_dir)
    from_stack = {"database": stack.database_url, "kafka": stack.bootstrap_servers,
                  "registry": stack.registry_url} if stack is not None and stack.ready else {}
    given = {"database": database, "kafka": kafka, "registry": registry}
    flag_names = dict(flags or {})
    found: dict[str, tuple[str, str]] = {}
    for name, variable in ADDRESSES.items():
        if given[name]:
            found[name] = (str(given[name]), flag_names.get(name, "the command line"))
        elif env.get(variable):
            found[name] = (env[variable], variable)
        elif from_stack.get(name):
            found[name] = (str(from_stack[name]), "stack")
    return Target(data_dir=data_dir, stack=stack, found=found, flags=flag_names, no_stack_reason=why)


def why_no_stack(data_dir: Path) -> str:
    path = state_file(data_dir)
    stale = read_state_file(data_dir)
    if stale is not None:
        return f"the stack that wrote {shown_path(path)} (pid {stale.pid}) is gone"
    return f"no stack runs in {shown_path(data_dir)} (no {shown_path(path)})"


def address(name: str, value: str) -> str:
    """What to show of an address: host:port of a database URL (never its password), as is otherwise."""
    if name == "database":
        return ",".join(f"{host}:{port}" for host, port in hosts_of(value))
    return value


def shown_path(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve())) or "."
    except ValueError:
        return str(path)
