"""Staged migrations as executable, gated playbooks.

A playbook is data (a YAML file): an ordered list of steps in the words of its source document, each with
gates checked against the live system before it acts, idempotent actions, checks after, and an undo (derived
from its actions) or an irreversible mark. Gates answer pass / fail / cannot tell, with evidence and the fix;
missing data is never a pass. Run state lives in PostgreSQL: one active run per playbook, each step's state,
attempts and reports; a killed runner resumes where it was.

- `model`, `loader`: the playbook files;
- `verdict`: what a gate answers;
- `context`: what gates and actions reach (databases, broker, registry, the running stack);
- `gates`, `actions`: the generic kinds; a system adds its own (services/playbooks/kinds.py);
- `store`, `runner`: run state and the step machine; `cli`: `python -m services.playbooks ...`.
"""
