"""Seed 004's five migrations as playbooks (one YAML file each, here), with the gates and actions that know
this system's data (`kinds`). `python -m services.playbooks list | plan | run | status | rollback`."""

from __future__ import annotations

from pathlib import Path

from eventbus.playbook.actions import FLAG_SPECS
from eventbus.playbook.loader import load_dir
from eventbus.playbook.model import Playbook
from services import flags
from services.playbooks import kinds  # noqa: F401  (registers this system's gates and actions)

DIRECTORY = Path(__file__).resolve().parent
FLAG_SPECS.update(flags.BY_NAME)


def playbooks() -> dict[str, Playbook]:
    return load_dir(DIRECTORY)
