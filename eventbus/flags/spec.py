"""What a flag is: a name, a kind, the values it may take, its default (the seed's "before" state)."""

from __future__ import annotations

import enum
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

#: a flag's value as stored (JSON): a scalar, or a sorted list for set kinds
FlagValue = Any


class FlagError(ValueError):
    """A flag name or value an operator gave is not acceptable; the message lists what is."""


class Kind(enum.StrEnum):
    CHOICE = "choice"  # one of `allowed` (strings, ints or None for "off")
    BOOL = "bool"
    INT_SET = "int-set"  # a set of ints, each in `allowed` (accepted event versions)
    STR_LIST = "str-list"  # any strings (e.g. paused topics)


def _render(value: FlagValue) -> str:
    if value is None:
        return "off"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ",".join(str(v) for v in value) or "(none)"
    return str(value)


@dataclass(frozen=True)
class FlagSpec:
    """`name` is `<service>.<flag>`: the service part says in which database the flag lives."""

    name: str
    kind: Kind
    default: FlagValue
    description: str
    allowed: tuple[Any, ...] = ()
    #: an environment variable that may give the first value (only when the flag has never been set)
    env: str | None = None
    #: the playbook steps that change it (documentation for `make flags`)
    changed_by: Sequence[str] = field(default_factory=tuple)

    @property
    def service(self) -> str:
        return self.name.split(".", 1)[0]

    @property
    def short(self) -> str:
        return self.name.split(".", 1)[1]

    def allowed_text(self) -> str:
        if self.kind is Kind.BOOL:
            return "true, false"
        if self.kind is Kind.STR_LIST:
            return "a comma-separated list of names, or 'none'"
        values = ", ".join(_render(v) for v in self.allowed)
        return f"a comma-separated subset of {{{values}}}" if self.kind is Kind.INT_SET else values

    def render(self, value: FlagValue) -> str:
        return _render(value)

    def parse(self, text: str) -> FlagValue:
        """An operator's text -> a value of this flag; FlagError naming the allowed values when it is not one."""
        raw = text.strip()
        try:
            if self.kind is Kind.BOOL:
                lowered = raw.lower()
                if lowered in ("true", "on", "1", "yes"):
                    return True
                if lowered in ("false", "off", "0", "no"):
                    return False
                raise FlagError("not a boolean")
            if self.kind is Kind.INT_SET:
                if raw.lower() in ("", "none", "[]"):
                    return self.validate([])
                return self.validate(sorted({int(part) for part in raw.strip("[]").split(",") if part.strip()}))
            if self.kind is Kind.STR_LIST:
                if raw.lower() in ("", "none", "[]"):
                    return []
                return self.validate(sorted({part.strip() for part in raw.split(",") if part.strip()}))
            for candidate in self.allowed:
                if _render(candidate) == raw or (candidate is None and raw.lower() in ("null", "none")):
                    return candidate
            raise FlagError("not an allowed value")
        except (FlagError, ValueError) as exc:
            raise FlagError(f"{self.name}: {raw!r} is not a value of this flag ({exc}); "
                            f"allowed: {self.allowed_text()}") from None

    def validate(self, value: FlagValue) -> FlagValue:
        """The canonical form of `value`, or FlagError."""
        ok: bool
        if self.kind is Kind.BOOL:
            ok = isinstance(value, bool)
        elif self.kind is Kind.INT_SET:
            ok = isinstance(value, list) and all(
                isinstance(v, int) and not isinstance(v, bool) and v in self.allowed for v in value)
            value = sorted(set(value)) if ok else value
        elif self.kind is Kind.STR_LIST:
            ok = isinstance(value, list) and all(isinstance(v, str) and v and "\x00" not in v for v in value)
            value = sorted(set(value)) if ok else value
        else:
            ok = any(value == a and type(value) is type(a) for a in self.allowed)
        if not ok:
            raise FlagError(f"{self.name}: {value!r} is not a value of this flag; allowed: {self.allowed_text()}")
        return value

    def validate_one(self, value: Any) -> Any:
        """One value as a set kind holds it (retiring versions of an int-set), or a whole value otherwise."""
        if self.kind is Kind.INT_SET:
            if not isinstance(value, int) or isinstance(value, bool) or value not in self.allowed:
                raise FlagError(f"{self.name}: {value!r} is not one of {self.allowed_text()}")
            return value
        return self.validate(value)

    def initial(self) -> FlagValue:
        """The first value: the environment variable when set and valid, else the default."""
        if self.env and os.environ.get(self.env):
            return self.parse(os.environ[self.env])
        return self.default


def choice(name: str, allowed: Sequence[Any], default: Any, description: str, **kw: Any) -> FlagSpec:
    return FlagSpec(name, Kind.CHOICE, default, description, tuple(allowed), **kw)


def boolean(name: str, default: bool, description: str, **kw: Any) -> FlagSpec:
    return FlagSpec(name, Kind.BOOL, default, description, (False, True), **kw)


def int_set(name: str, allowed: Sequence[int], default: Sequence[int], description: str, **kw: Any) -> FlagSpec:
    return FlagSpec(name, Kind.INT_SET, sorted(default), description, tuple(allowed), **kw)


def str_list(name: str, default: Sequence[str], description: str, **kw: Any) -> FlagSpec:
    return FlagSpec(name, Kind.STR_LIST, sorted(default), description, **kw)
