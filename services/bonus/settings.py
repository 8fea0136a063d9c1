from __future__ import annotations

from eventbus.settings import CommonSettings
from services.bonus.domain import CreditRule


class BonusSettings(CommonSettings):
    bonus_port: int = 8003
    #: the credit rule (README, "Bonus rule"): points per task outcome, credited to the task's creator
    bonus_completed_credit: int = 10
    bonus_failed_credit: int = 2
    #: ManagerCreated versions this worker applies; others are dead-lettered as UnsupportedEvent (replay them
    #: once the worker accepts them). A staged migration upgrades consumers before producers switch.
    bonus_manager_created_versions: frozenset[int] = frozenset({0, 1, 2})

    def credit_rule(self) -> CreditRule:
        return CreditRule(completed=self.bonus_completed_credit, failed=self.bonus_failed_credit)
