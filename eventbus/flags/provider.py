"""The flags as an OpenFeature provider: processes read switches through OpenFeature's client, so a user can
plug flagd, Unleash or Flipt in instead of the PostgreSQL store. Resolution is from the in-memory snapshot
(no I/O per evaluation); the producer's in-transaction read stays with `LiveFlags.in_transaction`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagResolutionDetails, Reason
from openfeature.hook import Hook
from openfeature.provider import AbstractProvider, Metadata

from eventbus.flags.live import LiveFlags
from eventbus.flags.spec import Kind


class PostgresFlagProvider(AbstractProvider):
    def __init__(self, flags: LiveFlags) -> None:
        super().__init__()
        self.flags = flags

    def get_metadata(self) -> Metadata:
        return Metadata(name="eventbus-postgres-flags")

    def get_provider_hooks(self) -> list[Hook]:
        return []

    def _resolve(self, key: str, default: Any, kind: type | tuple[type, ...]) -> FlagResolutionDetails[Any]:
        if key not in self.flags.specs:
            return FlagResolutionDetails(default, reason=Reason.ERROR, error_code=ErrorCode.FLAG_NOT_FOUND,
                                         error_message=f"unknown flag {key}")
        value = self.flags.value(key)
        if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
            return FlagResolutionDetails(default, reason=Reason.ERROR, error_code=ErrorCode.TYPE_MISMATCH,
                                         error_message=f"{key} is {type(value).__name__}")
        row = self.flags.rows.get(key)
        return FlagResolutionDetails(value, reason=Reason.STATIC if row else Reason.DEFAULT,
                                     variant=str(row.change_id) if row else "default")

    def resolve_boolean_details(self, flag_key: str, default_value: bool,
                                evaluation_context: EvaluationContext | None = None) -> FlagResolutionDetails[bool]:
        return self._resolve(flag_key, default_value, bool)

    def resolve_string_details(self, flag_key: str, default_value: str,
                               evaluation_context: EvaluationContext | None = None) -> FlagResolutionDetails[str]:
        return self._resolve(flag_key, default_value, str)

    def resolve_integer_details(self, flag_key: str, default_value: int,
                                evaluation_context: EvaluationContext | None = None) -> FlagResolutionDetails[int]:
        return self._resolve(flag_key, default_value, int)

    def resolve_float_details(self, flag_key: str, default_value: float,
                              evaluation_context: EvaluationContext | None = None) -> FlagResolutionDetails[float]:
        return self._resolve(flag_key, default_value, (int, float))

    def resolve_object_details(  # type: ignore[override]
        self, flag_key: str, default_value: Sequence[Any] | dict[str, Any],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Any]:
        """Sets, lists, and choices that are numbers or off: OpenFeature's typed API has no such type, so they
        resolve as an object `{"value": ...}` (what `Switches` reads)."""
        details = self._resolve(flag_key, default_value, (list, type(None), str, int))
        if details.error_code is None:
            return FlagResolutionDetails({"value": details.value}, reason=details.reason, variant=details.variant)
        return details


class Switches:
    """How a process reads its switches: through OpenFeature, whose provider here is the PostgreSQL store's
    snapshot (another provider — flagd, Unleash, Flipt — can stand in for it). Reads in a producer's
    transaction, where the cut-over must be exact, stay with `in_transaction`."""

    def __init__(self, flags: LiveFlags, domain: str) -> None:
        self.flags = flags
        self.client = openfeature_client(flags, domain)

    def value(self, name: str) -> Any:
        spec = self.flags.spec(name)
        if spec.kind is Kind.BOOL:
            return self.client.get_boolean_value(name, bool(spec.default))
        if spec.kind is Kind.CHOICE and all(isinstance(a, str) for a in spec.allowed):
            return self.client.get_string_value(name, str(spec.default))
        resolved: Any = self.client.get_object_value(name, {"value": spec.default})
        return resolved["value"]

    async def in_transaction(self, conn: Any, names: Sequence[str]) -> dict[str, Any]:
        return await self.flags.in_transaction(conn, names)

    @property
    def version(self) -> int:
        return self.flags.version


def openfeature_client(flags: LiveFlags, domain: str) -> OpenFeatureClient:
    """An OpenFeature client bound to this process's store (one provider per domain: the service)."""
    api.set_provider(PostgresFlagProvider(flags), domain=domain)
    return api.get_client(domain)
