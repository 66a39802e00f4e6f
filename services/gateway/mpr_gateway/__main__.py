"""``python -m mpr_gateway``: serve the gateway with uvicorn on GATEWAY_HOST:GATEWAY_PORT."""

from __future__ import annotations

import uvicorn

from mpr_gateway.app import create_app
from mpr_gateway.settings import GatewaySettings
from mpr_shared.logs import configure_logging


def main() -> None:
    settings = GatewaySettings()
    configure_logging("gateway", settings.log_level)
    # uvicorn handles SIGTERM/SIGINT: it stops accepting, drains, then runs the lifespan exit.
    uvicorn.run(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_config=None,
        access_log=False,
        proxy_headers=False,
    )


if __name__ == "__main__":
    main()
