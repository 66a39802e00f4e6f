"""`python -m mpr_catalog`: consume scan requests and bucket notifications until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import logging
import sys

from pydantic import ValidationError

from mpr_catalog.app import create_app
from mpr_catalog.settings import get_settings
from mpr_shared.logs import configure_logging


def main() -> None:
    try:
        settings = get_settings()
    except ValidationError as exc:
        sys.exit(f"catalog: invalid settings\n{exc}")
    configure_logging("catalog", settings.log_level)
    asyncio.run(create_app(settings).run(log_level=logging.INFO))


if __name__ == "__main__":
    main()
