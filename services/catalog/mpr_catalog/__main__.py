"""`python -m mpr_catalog`: consume scan requests and bucket notifications until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal
import sys

from pydantic import ValidationError

from mpr_catalog.bootstrap import bootstrap, running
from mpr_catalog.settings import CatalogSettings, get_settings
from mpr_shared.logs import configure_logging


def main() -> None:
    try:
        settings = get_settings()
    except ValidationError as exc:
        sys.exit(f"catalog: invalid settings\n{exc}")
    configure_logging("catalog", settings.log_level)
    asyncio.run(serve(settings))


async def serve(settings: CatalogSettings) -> None:
    async with running(bootstrap(settings)):
        await _signalled()


async def _signalled() -> None:
    """Return on the first SIGTERM or SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()


if __name__ == "__main__":
    main()
