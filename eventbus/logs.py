"""One log format for every process."""

from __future__ import annotations

import logging


def setup_logging(level: str, name: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format=f"%(asctime)s %(levelname)s {name} %(name)s: %(message)s",
        force=True,
    )
    for noisy in ("aiokafka", "httpx"):  # httpx logs every request at INFO: the links' calls are counted instead
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
