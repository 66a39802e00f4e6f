"""`python -m mpr_notifier`: serve the SSE stream and consume events until SIGTERM/SIGINT."""

from __future__ import annotations

import logging

import uvicorn
from pydantic import ValidationError

from mpr_notifier.api.app import create_app
from mpr_notifier.bootstrap import bootstrap
from mpr_notifier.settings import NotifierSettings
from mpr_shared.logs import configure_logging


def load_settings() -> NotifierSettings:
    """The settings, or exit with what is wrong and without the values (they hold secrets)."""
    try:
        return NotifierSettings()
    except ValidationError as exc:
        problems = (
            f"  {'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}"
            for e in exc.errors(include_input=False, include_url=False)
        )
        raise SystemExit("invalid notifier settings:\n" + "\n".join(problems)) from None


def main() -> None:
    settings = load_settings()
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
