"""A loopback TCP forwarder that can fail like a server going away: cut every connection once
the client has sent a given number of bytes, refuse new ones, then come back on the same port."""

from __future__ import annotations

import asyncio
import contextlib
import socket


class CuttableProxy:
    """Forwards 127.0.0.1:<port> to ``target``; ``cut_after`` arms an outage, ``restore``
    ends it."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.sent = 0  # client → server bytes since the last cut_after
        self.cut = asyncio.Event()
        self._limit: int | None = None
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task] = set()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)

    def cut_after(self, sent_bytes: int) -> None:
        """Go down once the clients have sent ``sent_bytes`` more bytes (an upload under way)."""
        self.sent, self._limit = 0, sent_bytes
        self.cut.clear()

    async def restore(self) -> None:
        await self.start()

    async def stop(self) -> None:
        await self._go_down()
        for task in self._tasks:
            task.cancel()

    async def _go_down(self) -> None:
        """Refuse new connections and reset the open ones, as a dead server would."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()
        self.cut.set()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, up_writer}
        for pipe in (self._pipe(reader, up_writer, upstream=True), self._pipe(up_reader, writer)):
            task = asyncio.create_task(pipe)
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self, src: asyncio.StreamReader, dst: asyncio.StreamWriter, upstream: bool = False
    ) -> None:
        with contextlib.suppress(Exception):
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
                if upstream and self._limit is not None:
                    self.sent += len(data)
                    if self.sent >= self._limit:
                        self._limit = None
                        await self._go_down()
                        return
        with contextlib.suppress(Exception):
            dst.close()
