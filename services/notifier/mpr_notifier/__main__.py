"""`python -m mpr_notifier`: serve the SSE stream and consume events until SIGTERM/SIGINT."""

from __future__ import annotations

import logging

import uvicorn

from mpr_notifier.api.app import create_app
from mpr_notifier.bootstrap import bootstrap
from mpr_notifier.settings import NotifierSettings
from mpr_shared.logs import configure_logging
from mpr_shared.settings import load_settings


def main() -> None:
    settings = load_settings(NotifierSettings, "notifier")
    configure_logging("notifier", settings.log_level)
    # httpx logs every webhook request at INFO; handlers log the outcome once per event.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    uvicorn.run(
        create_app(bootstrap(settings)),
        host=settings.notifier_host,
        port=settings.notifier_port,
        log_config=None,  # keep configure_logging's format
        # Open SSE streams end on shutdown (sse-starlette watches uvicorn); this bounds the rest.
        timeout_graceful_shutdown=10,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
