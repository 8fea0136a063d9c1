from __future__ import annotations

from eventbus.settings import CommonSettings
from services.bonus.domain import CreditRule


class BonusSettings(CommonSettings):
    bonus_port: int = 8003
    #: the credit rule (README, "Bonus rule"): points per task outcome, credited to the task's creator
    bonus_completed_credit: int = 10
    bonus_failed_credit: int = 2
    bonus_rating_step: int = 2
    #: manager details fetched from management (COMM-070 before) kept as the fallback when it is down
    bonus_manager_cache_size: int = 10_000

    def credit_rule(self) -> CreditRule:
        return CreditRule(completed=self.bonus_completed_credit, failed=self.bonus_failed_credit,
                          rating_step=self.bonus_rating_step)
