"""AWS APIs emulated by moto's server mode, on 127.0.0.1, started by the tests themselves."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from moto.server import ThreadedMotoServer


@contextlib.contextmanager
def moto_server(port: int = 0) -> Iterator[str]:
    """moto's server on 127.0.0.1 (``port`` 0: any free one); yields its endpoint URL. Its
    backends live in this process, so servers started one after the other share state."""
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        host, bound = server.get_host_and_port()
        yield f"http://{host}:{bound}"
    finally:
        server.stop()
