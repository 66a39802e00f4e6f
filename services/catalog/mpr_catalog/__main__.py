"""`python -m mpr_catalog`: consume scan requests and bucket notifications until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging

from mpr_catalog.app import create_app
from mpr_catalog.settings import get_settings
from mpr_shared.logs import configure_logging


def main() -> None:
    settings = get_settings()
    configure_logging("catalog", settings.log_level)
    asyncio.run(create_app(settings).run(log_level=logging.INFO))


if __name__ == "__main__":
    main()
