"""What a long test process must give back after each test that a service process never has to.

FastStream 0.7 adds a ``logging.Filter`` to one shared logger for every broker it builds and
never removes it (``faststream/rabbit/broker/logging.py``: "TODO: generate unique logger names
to not share between brokers"). The filter holds the broker's context, and our services put
their whole container there (``broker.context.set_global("container", ...)``): engines, boto3
clients, the app. A service builds one broker per process; the suite builds hundreds, so every
test kept ~70k objects alive and each full garbage collection (the gateway runs one at start-up,
``bootstrap.running``) grew slower with every test: ~3 s of CPU per gateway test after 90 tests.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager

FASTSTREAM_LOGGERS = ("faststream.access.rabbit",)


@contextmanager
def broker_log_filters_released() -> Iterator[None]:
    """Drop the log filters brokers added meanwhile, keeping one so records keep their fields."""
    loggers = [logging.getLogger(name) for name in FASTSTREAM_LOGGERS]
    before = [list(logger.filters) for logger in loggers]
    try:
        yield
    finally:
        for logger, kept in zip(loggers, before, strict=True):
            added = [f for f in logger.filters if f not in kept]
            logger.filters[:] = kept or added[:1]
