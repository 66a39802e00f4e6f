"""``python -m mpr_gateway``: serve the gateway with uvicorn on GATEWAY_HOST:GATEWAY_PORT."""

from __future__ import annotations

import uvicorn

from mpr_gateway.api.app import create_app
from mpr_gateway.bootstrap import bootstrap
from mpr_gateway.settings import GatewaySettings
from mpr_shared.logs import configure_logging
from mpr_shared.settings import load_settings


def main() -> None:
    settings = load_settings(GatewaySettings, "gateway")
    configure_logging("gateway", settings.log_level)
    # uvicorn handles SIGTERM/SIGINT: it stops accepting, drains, then runs the lifespan exit.
    uvicorn.run(
        create_app(bootstrap(settings)),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_config=None,
        access_log=settings.access_log,
        proxy_headers=False,
        # uvicorn[standard]'s C event loop and HTTP parser (named, so a missing one fails).
        loop="uvloop",
        http="httptools",
    )


if __name__ == "__main__":
    main()
