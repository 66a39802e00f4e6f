"""``python -m mpr_transcoder``: run one transcoder replica until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio

from mpr_shared.logs import configure_logging
from mpr_transcoder.app import build_app
from mpr_transcoder.settings import get_settings


def main() -> None:
    settings = get_settings()
    configure_logging("transcoder", settings.log_level)
    asyncio.run(build_app(settings).run())


if __name__ == "__main__":
    main()
