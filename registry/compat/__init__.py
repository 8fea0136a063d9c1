"""JSON Schema compatibility: is every instance one schema accepts accepted by another, and if not, why.

`check(writer, reader)` proves (on a supported subset of JSON Schema 2020-12) that the reader accepts
everything the writer allows, and otherwise lists the reasons with their locations. `verdict`
applies Confluent's compatibility modes over a subject's history.
"""

from registry.compat.engine import IDENTITY_PATHS, Policy, Reason, check
from registry.compat.modes import Mode, Verdict, verdict

__all__ = ["IDENTITY_PATHS", "Mode", "Policy", "Reason", "Verdict", "check", "verdict"]
