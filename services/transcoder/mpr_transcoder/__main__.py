"""``python -m mpr_transcoder``: run one transcoder replica until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio

from mpr_shared.logs import configure_logging
from mpr_shared.settings import load_settings
from mpr_transcoder.bootstrap import bootstrap, serve
from mpr_transcoder.settings import TranscoderSettings


def main() -> None:
    settings = load_settings(TranscoderSettings, "transcoder")
    configure_logging("transcoder", settings.log_level)
    asyncio.run(serve(bootstrap(settings)))


if __name__ == "__main__":
    main()
