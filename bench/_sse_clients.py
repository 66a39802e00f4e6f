"""N concurrent SSE clients in one process, connected as the dashboard's pages connect
(GET /api/events?api_key=..., with the gateway's Origin). Prints "ready" once every stream
is open, then, after ``--events`` job.progress events each (or ``--seconds``), one JSON line:
{"received": {event_id: [arrival epoch seconds, ...]}, "clients": N, "complete": int}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import defaultdict

import httpx
from httpx_sse import aconnect_sse


async def client(
    http: httpx.AsyncClient,
    url: str,
    origin: str,
    wanted: int,
    opened: asyncio.Event,
    received: dict[str, list[float]],
) -> bool:
    count = 0
    async with aconnect_sse(http, "GET", url, headers={"Origin": origin}) as source:
        source.response.raise_for_status()
        opened.set()
        async for sse in source.aiter_sse():
            if sse.event != "job.progress":
                continue
            received[sse.id].append(time.time())
            count += 1
            if count >= wanted:
                return True
    return False


async def main(url: str, origin: str, clients: int, events: int, seconds: float) -> None:
    received: dict[str, list[float]] = defaultdict(list)
    limits = httpx.Limits(max_connections=clients + 1)
    async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=None), limits=limits) as http:
        opened = [asyncio.Event() for _ in range(clients)]
        tasks = [
            asyncio.create_task(client(http, url, origin, events, o, received)) for o in opened
        ]
        async with asyncio.timeout(30):
            await asyncio.gather(*(o.wait() for o in opened))
        print("ready", flush=True)
        done, pending = await asyncio.wait(tasks, timeout=seconds)
        for task in pending:
            task.cancel()
    complete = sum(1 for t in done if not t.cancelled() and t.exception() is None and t.result())
    print(json.dumps({"received": received, "clients": clients, "complete": complete}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("url")
    parser.add_argument("--origin", required=True)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    asyncio.run(main(args.url, args.origin, args.clients, args.events, args.seconds))
    sys.stdout.flush()
