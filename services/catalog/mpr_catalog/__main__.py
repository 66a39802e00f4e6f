"""`python -m mpr_catalog`: consume scan requests and bucket notifications until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import signal

from mpr_catalog.bootstrap import bootstrap, running
from mpr_catalog.settings import CatalogSettings
from mpr_shared.logs import configure_logging
from mpr_shared.settings import load_settings


def main() -> None:
    settings = load_settings(CatalogSettings, "catalog")
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
