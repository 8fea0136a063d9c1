"""`python -m services.bonus.worker`: the bonus consumer group."""

from eventbus.consumer.main import serve
from services.bonus.consumers import handlers
from services.bonus.settings import BonusSettings
from services.topology import BONUS_GROUP, TOPICS

if __name__ == "__main__":
    settings = BonusSettings()
    serve(BONUS_GROUP, "bonus", TOPICS, handlers(settings.credit_rule(), settings.bonus_manager_created_versions))
