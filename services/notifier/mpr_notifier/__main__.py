"""`python -m mpr_notifier`: serve the SSE stream and consume events until SIGTERM/SIGINT."""

from __future__ import annotations

import uvicorn

from mpr_notifier.app import create_app
from mpr_notifier.settings import get_settings
from mpr_shared.logs import configure_logging


def main() -> None:
    settings = get_settings()
    configure_logging("notifier", settings.log_level)
    uvicorn.run(
        create_app(settings),
        host=settings.notifier_host,
        port=settings.notifier_port,
        log_config=None,  # keep configure_logging's format
        # Open SSE streams end on shutdown (sse-starlette watches uvicorn); this bounds the rest.
        timeout_graceful_shutdown=10,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
